"""Resumable uploads through ``tensorq api`` (gunicorn's gevent worker) on each store: the client sends a file
in parts (through the API, and on S3 straight to the bucket by presigned URL), the dataset is registered, and
the API process never holds the file: its peak RSS grows by less than half the file's size."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.core.settings import Settings
from tensorq.localstack import ApiProcess
from tests.conftest import make_settings, session_s3

PART = 4 * 1024 * 1024
FILE_BYTES = 96 * 1024 * 1024  # over max_upload_bytes (64 MiB): described from a sample, as datasets that large are


@pytest.fixture(params=["file", "s3"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ApiProcess, Database, Settings]]:
    """The API in a process of its own (SQLite: the database does not matter here) on each store, 4 MiB parts."""
    store = session_s3().settings(uuid.uuid4().hex[:12]) if request.param == "s3" else {}
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        scratch_dir=tmp_path / "scratch",
        upload_chunk_bytes=PART,
        **store,
    )
    upgrade(settings.database_url)
    db = Database(settings)
    api = ApiProcess(settings, tmp_path / "api.log").start()
    yield api, db, settings
    api.stop()
    db.dispose()


def _peak_rss_kib(group_leader: int) -> int:
    """The largest peak RSS (VmHWM) among the API's processes (gunicorn's master and its worker)."""
    peaks = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != group_leader:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, ProcessLookupError):
            continue
        peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks)


def _table(path: Path, size: int) -> None:
    """A CSV of about ``size`` bytes."""
    row = b"".join(f"{i},{i * 3},{'cat' if i % 3 else 'dog'},{'x' * 40}\n".encode() for i in range(1000))
    with path.open("wb") as out:
        out.write(b"a,b,label,note\n")
        while out.tell() < size:
            out.write(row)


def test_a_file_of_many_parts_goes_through_the_served_api_in_parts(
    served: tuple[ApiProcess, Database, Settings], tmp_path: Path
) -> None:
    api, db, settings = served
    key = db.keys.create("acme")
    path = tmp_path / "big.csv"
    _table(path, FILE_BYTES)
    size = path.stat().st_size
    warm = tmp_path / "warm.csv"
    _table(warm, 1000)
    assert api.proc is not None
    with TensorQClient(api.url, key, timeout=120) as tq:
        tq.upload_dataset(warm)  # the API's own imports and pools, before its peak is read
        before = _peak_rss_kib(api.proc.pid)
        through_api = tq.upload_dataset(path, name="big", chunked=True, direct=False)
        grown = (_peak_rss_kib(api.proc.pid) - before) * 1024
        assert (through_api.name, through_api.size_bytes, through_api.format) == ("big", size, "csv")
        assert through_api.info["sample_rows"] > 0
        if settings.store_url().startswith("s3://"):
            parts: list[int] = []
            direct = tq.upload_dataset(path, name="direct", chunked=True, on_part=lambda i, n: parts.append(i))
            assert direct.size_bytes == size
            assert sorted(parts) == list(range(-(-size // PART)))
    ready = httpx.get(f"{api.url}/readyz", timeout=30).json()
    assert ready["checks"]["storage"] == "ok"
    print(f"API peak RSS grew {grown / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB upload in parts")
    assert grown < size / 2, "the API held much of the file"
