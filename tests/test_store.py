"""The artifact store on both kinds: a local folder (file://) and an S3 server (``rclone serve s3``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tensorq.core.errors import StorageUnavailable
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore
from tests.services import S3_BUCKET, S3_KEY, S3_SECRET, free_port


@pytest.fixture
def store(tmp_path: Path, store_fields: dict[str, object]) -> ArtifactStore:
    """An empty store of each kind."""
    return ArtifactStore.from_settings(Settings(artifact_dir=tmp_path / "artifacts", **store_fields))


def _write(store: ArtifactStore, location: str, data: bytes) -> None:
    with store.open(location, "wb") as handle:
        handle.write(data)


def test_bytes_written_read_listed_and_fetched(store: ArtifactStore, tmp_path: Path) -> None:
    location = store.location("datasets", "t1", "a.csv")
    _write(store, location, b"x,y\n1,2\n")
    source = tmp_path / "local.bin"
    source.write_bytes(b"0123456789")
    stored = store.put(source, store.job_location("j1", "model.keras"))
    assert source.read_bytes() == b"0123456789"  # a copy: the source stays
    assert stored == store.job_location("j1", "model.keras")
    assert store.exists(location)
    assert store.size(location) == 8
    with store.open(location) as handle:
        assert handle.read() == b"x,y\n1,2\n"
    assert store.listing(store.location("datasets")) == {location: 8}
    with store.fetch(stored) as local:
        assert local.read_bytes() == b"0123456789"
        fetched = local
    assert fetched.exists() == store.local  # the file store lends the file itself; a copy is removed after
    assert not store.exists(store.location("datasets", "t1", "missing.csv"))
    assert store.size(store.location("datasets", "t1", "missing.csv")) == 0


def test_a_moved_put_consumes_its_source(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.part"
    source.write_bytes(b"abc")
    store.put(source, store.location("uploads", "u.keras"), move=True)
    assert not source.exists()
    assert store.size(store.location("uploads", "u.keras")) == 3


def test_deletes_free_bytes_and_keep_what_is_kept(store: ArtifactStore) -> None:
    model = store.job_location("j1", "model.keras")
    for name, data in (("model.keras", b"m" * 100), ("checkpoint.keras", b"c" * 40), ("predictions.csv", b"p" * 7)):
        _write(store, store.job_location("j1", name), data)
    assert store.remove_folder(store.job_location("j1"), keep=[model]) == 47
    assert store.listing(store.job_location("j1")) == {model: 100}
    assert store.remove_file(model) == 100
    assert store.listing(store.job_location("j1")) == {}
    assert store.remove_file(model) == 0  # already gone


def test_nothing_outside_the_root_is_read_or_deleted(store: ArtifactStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    elsewhere = [str(outside), store.location("..", "elsewhere", "x"), f"s3://{S3_BUCKET}-other/x", "/etc/passwd"]
    for location in elsewhere:
        assert not store.inside(location)
        assert store.remove_file(location) == 0
        assert store.remove_folder(location) == 0
        with pytest.raises(FileNotFoundError):
            store.open(location).__enter__()
    assert outside.read_text() == "keep me"


def _s3(endpoint: str, key: str, secret: str, tmp_path: Path) -> ArtifactStore:
    settings = Settings(
        artifact_url=f"s3://{S3_BUCKET}/p",
        s3_endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_region="us-east-1",
        store_timeout_s=1.0,
        scratch_dir=tmp_path / "scratch",
    )
    return ArtifactStore.from_settings(settings)


def test_an_unreachable_store_is_unavailable_without_path_or_secret(tmp_path: Path) -> None:
    store = _s3(f"http://127.0.0.1:{free_port()}", S3_KEY, S3_SECRET, tmp_path)
    for attempt in (store.check, lambda: store.size(store.location("datasets", "t", "a.csv"))):
        with pytest.raises(StorageUnavailable) as caught:
            attempt()
        text = json.dumps(caught.value.to_dict())
        assert caught.value.code == "storage_unavailable"
        assert "cannot be reached" in text
        assert S3_SECRET not in text
        assert S3_KEY not in text
        assert "datasets" not in text


def test_wrong_keys_are_refused_as_unavailable_without_the_secret(tmp_path: Path) -> None:
    from tests.conftest import session_s3

    store = _s3(session_s3().endpoint_url, S3_KEY, "a-wrong-secret-of-the-right-length-000", tmp_path)
    with pytest.raises(StorageUnavailable) as caught:
        _write(store, store.location("x.bin"), b"x")
    text = json.dumps(caught.value.to_dict())
    assert "refused the credentials" in text
    assert "wrong-secret" not in text
    assert S3_KEY not in text


def test_the_model_cache_keeps_recent_versions_within_its_bound(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from db.records import ModelVersionRecord
    from tests.conftest import session_s3
    from worker.model_cache import ModelCache

    store = ArtifactStore.from_settings(
        Settings(scratch_dir=tmp_path / "scratch", **session_s3().settings(f"cache-{time.time_ns()}"))
    )

    def version(vid: str, size: int) -> ModelVersionRecord:
        location = store.job_location(f"job-{vid}", "model.keras")
        _write(store, location, vid.encode() * size)
        when = datetime.now(UTC)
        return ModelVersionRecord(vid, "m", "m", "t", 1, None, location, None, {}, {}, when)

    cache = ModelCache(store, tmp_path / "cache", max_bytes=250)
    v1, v2, v3 = version("a", 100), version("b", 100), version("c", 100)
    first = cache.path(v1)
    mtime = first.stat().st_mtime_ns
    assert first.read_bytes() == b"a" * 100
    assert first.name == "a.keras"
    cache.path(v2)
    _write(store, v1.path, b"changed")  # a cached version is served from its cache, not fetched again
    time.sleep(0.01)
    assert cache.path(v1).read_bytes() == b"a" * 100
    assert first.stat().st_mtime_ns == mtime
    cache.path(v3)  # over the bound: the least recently used (v2) goes
    assert sorted(p.name for p in cache.entries()) == ["a.keras", "c.keras"]
    assert cache.path(v2).read_bytes() == b"b" * 100  # fetched again on its next use
    assert sum(p.stat().st_size for p in cache.entries()) <= 250
