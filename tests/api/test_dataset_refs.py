"""Datasets by reference, on a local lake (file://) and an S3 one (``rclone serve s3``): registered by URL from
their metadata and a bounded sample, refused with a coded 403 outside the allowed prefixes (never read), and
trained and predicted on by a real worker; a corrupt shard fails the job naming it."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from db.database import Database
from db.jobs import NewJob
from tensorq.core.settings import Settings
from tensorq.core.store import filesystem
from tests.conftest import make_settings, session_s3
from tests.ml.mixed_table import mixed_csv
from worker.runner import JobRunner


@pytest.fixture(params=["file", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty folder of a data lake: a local folder, or a fresh prefix of the S3 server."""
    if request.param == "file":
        (tmp_path / "lake").mkdir()
        return f"file://{tmp_path / 'lake'}"
    return f"s3://tensorq/lake-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, lake: str) -> Settings:
    """Settings that allow the lake's folder ``allowed/`` (and reach the S3 server whatever the store)."""
    s3 = session_s3().settings("unused")
    s3.pop("artifact_url")
    return make_settings(
        tmp_path, database_url, dataset_url_prefixes=[f"{lake}/allowed/"], scratch_dir=tmp_path / "scratch", **s3
    )


def _put(settings: Settings, url: str, data: bytes) -> None:
    fs, path, _ = filesystem(url, settings)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)


def _parquet_shards(settings: Settings, folder: str, parts: int = 3) -> int:
    table = pacsv.read_csv(io.BytesIO(mixed_csv()), convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    size = -(-table.num_rows // parts)
    for i in range(parts):
        buffer = io.BytesIO()
        pq.write_table(table.slice(i * size, size), buffer)
        _put(settings, f"{folder}/part-{i}.parquet", buffer.getvalue())
    return table.num_rows


def _register(client, auth, url: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/datasets/references", json={"url": url, "name": "events"}, headers=auth)


def test_a_glob_of_parquet_shards_is_described_from_footers_and_a_sample(client, auth, settings, lake) -> None:
    rows = _parquet_shards(settings, f"{lake}/allowed/events")
    response = _register(client, auth, f"{lake}/allowed/events/*.parquet")
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    assert dataset["format"] == "parquet"
    assert dataset["size_bytes"] == 0  # nothing stored: no quota used
    assert dataset["info"]["rows"] == rows
    assert dataset["info"]["shards"] == 3
    assert [c["name"] for c in dataset["schema"]] == ["age", "income", "city", "plan", "label"]
    assert len(dataset["preview"]["rows"]) > 0
    deleted = client.delete(f"/v1/datasets/{dataset['id']}", headers=auth).get_json()
    assert deleted["freed_bytes"] == 0
    fs, path, _ = filesystem(f"{lake}/allowed/events", settings)
    assert len(fs.find(path)) == 3  # the shards are not ours: deleting the dataset leaves them


def test_a_folder_of_csv_shards_has_its_sample_profiled(client, auth, settings, lake) -> None:
    lines = mixed_csv().splitlines(keepends=True)
    _put(settings, f"{lake}/allowed/csv/a.csv", b"".join(lines[:100]))
    _put(settings, f"{lake}/allowed/csv/b.csv", lines[0] + b"".join(lines[100:]))
    response = _register(client, auth, f"{lake}/allowed/csv")
    assert response.status_code == 201, response.get_json()
    info = response.get_json()["info"]
    assert info["shards"] == 2
    assert info["rows"] is None
    assert info["sample_rows"] == 99


@pytest.mark.parametrize(
    "where",
    [
        "{lake}/elsewhere/x.parquet",
        "{lake}/allowed-not/x.parquet",
        "{lake}/allowed/../secret/x.parquet",
        "http://example.com/x.parquet",
        "/etc/passwd",
        "file:///etc/passwd",
    ],
)
def test_a_url_outside_the_allowed_prefixes_is_403_and_never_read(client, auth, settings, lake, where) -> None:
    _put(settings, f"{lake}/elsewhere/x.parquet", b"not read")
    response = _register(client, auth, where.format(lake=lake))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "dataset_url_forbidden"
    assert client.get("/v1/datasets", headers=auth).get_json()["datasets"] == []


def test_a_tenant_override_narrows_the_allowed_prefixes(tmp_path, database_url, lake, publisher) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app

    s3 = session_s3().settings("unused")
    s3.pop("artifact_url")
    settings = make_settings(
        tmp_path,
        database_url,
        dataset_url_prefixes=[f"{lake}/allowed/"],
        tenant_dataset_url_prefixes={"acme": [f"{lake}/acme-only/"]},
        **s3,
    )
    _parquet_shards(settings, f"{lake}/allowed/events", parts=1)
    _parquet_shards(settings, f"{lake}/acme-only/events", parts=1)
    db = Database(settings)
    from db.migrate import upgrade

    upgrade(settings.database_url)
    client = create_app(settings, database=db, publisher=publisher).test_client()
    acme = {"Authorization": f"Bearer {db.keys.create('acme')}"}
    globex = {"Authorization": f"Bearer {db.keys.create('globex')}"}
    assert _register(client, acme, f"{lake}/allowed/events").status_code == 403
    assert _register(client, acme, f"{lake}/acme-only/events").status_code == 201
    assert _register(client, globex, f"{lake}/allowed/events").status_code == 201
    assert _register(client, globex, f"{lake}/acme-only/events").status_code == 403
    db.dispose()


def _run(settings: Settings, db: Database, job_type: str, spec: dict):  # type: ignore[no-untyped-def]
    tenant = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(tenant, job_type, spec)).job.id
    JobRunner(settings, db).run(job_id)
    return db.jobs.get_any(job_id)


def test_a_worker_trains_and_predicts_on_shards_and_names_a_corrupt_one(client, auth, settings, db, lake) -> None:
    if settings.database_url.startswith("sqlite") != lake.startswith("file://"):
        pytest.skip("each database runs this with one lake (SQLite with file://, Postgres with S3): a training each")
    rows = _parquet_shards(settings, f"{lake}/allowed/events")
    dataset = _register(client, auth, f"{lake}/allowed/events/").get_json()["id"]
    spec = {"architecture": "mlp", "dataset": dataset, "label_column": "label", "epochs": 2, "seed": 1}
    trained = _run(settings, db, "train", spec | {"register_as": "events"})
    assert trained.status == "succeeded", trained.error
    version = db.jobs.versions_of_job(trained.id)[0]
    assert version.lineage["dataset"]["url"] == f"{lake}/allowed/events/"
    predicted = _run(settings, db, "predict", {"model": "events", "dataset": dataset})
    assert predicted.status == "succeeded", predicted.error
    assert predicted.result["rows"] == rows
    fs, path, _ = filesystem(f"{lake}/allowed/events/part-1.parquet", settings)
    data = fs.cat_file(path)
    with fs.open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])  # truncated after registration
    streaming = settings.model_copy(update={"stream_above_mb": 0})  # streamed (docs/data.md) or loaded whole
    for each in (settings, streaming):
        failed = _run(each, db, "train", spec)
        assert failed.status == "failed"
        assert failed.error["code"] == "corrupt_shard"
        assert "part-1.parquet" in failed.error["message"]
        assert lake.split("://", 1)[1] not in str(failed.error)
