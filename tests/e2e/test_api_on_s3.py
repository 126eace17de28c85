"""``tensorq api`` (gunicorn's gevent worker) on the S3 artifact store: fsspec's S3 calls run off the hub
(``tensorq.green_fsspec``), so uploads, reads and deletes work while long-polls are parked, and the parked
long-polls still wake on their jobs' changes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from db.database import Database
from db.migrate import upgrade
from db.newjob import NewJob
from tensorq.core.store import filesystem
from tensorq.localstack import ApiProcess
from tests.conftest import make_settings, session_s3

WAITERS = 20


@pytest.fixture
def served_on_s3(tmp_path: Path, database_url: str) -> Iterator[tuple[ApiProcess, Database, Path]]:
    """The API in a process of its own on a fresh prefix of the session's S3 server; the server's folder."""
    server = session_s3()
    store = server.settings(uuid.uuid4().hex[:12])
    lake = f"{store['artifact_url']}-lake/"
    settings = make_settings(
        tmp_path, database_url, scratch_dir=tmp_path / "scratch", dataset_url_prefixes=[lake], **store
    )
    upgrade(settings.database_url)
    db = Database(settings)
    api = ApiProcess(settings, tmp_path / "api.log").start()
    yield api, db, server.folder
    api.stop()
    db.dispose()


def _wait_until_finished(url: str, key: str, job_id: str, statuses: list[str]) -> None:
    with httpx.Client(timeout=90, headers={"Authorization": f"Bearer {key}"}) as client:
        while True:
            answer = client.get(f"{url}/v1/jobs/{job_id}", params={"wait": 30, "until": "finished"})
            answer.raise_for_status()
            if answer.json()["status"] in ("succeeded", "failed", "cancelled"):
                statuses.append(answer.json()["status"])
                return


def test_uploads_reads_and_deletes_on_s3_while_long_polls_are_parked(
    served_on_s3: tuple[ApiProcess, Database, Path],
) -> None:
    api, db, bucket_folder = served_on_s3
    key = db.keys.create("acme")
    tenant = db.keys.ensure_tenant("acme")
    job_ids = [
        db.jobs.submit(NewJob(tenant, "predict", {"model": "m", "inputs": [[0.0]]})).job.id for _ in range(WAITERS)
    ]
    statuses: list[str] = []
    waiters = [
        threading.Thread(target=_wait_until_finished, args=(api.url, key, job_id, statuses)) for job_id in job_ids
    ]
    for waiter in waiters:
        waiter.start()
    headers = {"Authorization": f"Bearer {key}"}
    table = "a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(200))
    with httpx.Client(timeout=60, headers=headers) as client:
        uploaded = client.post(f"{api.url}/v1/datasets", files={"file": ("t.csv", table.encode())}, data={"name": "t"})
        assert uploaded.status_code == 201, uploaded.text
        dataset = uploaded.json()
        stored = [p for p in bucket_folder.rglob("*") if p.is_file() and p.read_bytes() == table.encode()]
        assert len(stored) == 1, "the upload is one object in the bucket"
        read = client.get(f"{api.url}/v1/datasets/{dataset['id']}")
        assert read.status_code == 200
        assert read.json()["size_bytes"] == len(table)
        assert all(waiter.is_alive() for waiter in waiters), "a long-poll answered before its job changed"
        for job_id in job_ids:
            db.jobs.cancel(tenant, job_id)
        for waiter in waiters:
            waiter.join(timeout=120)
        assert statuses == ["cancelled"] * WAITERS
        deleted = client.delete(f"{api.url}/v1/datasets/{dataset['id']}")
        assert deleted.status_code == 200, deleted.text
        assert not stored[0].exists(), "the object is gone from the bucket"


def test_a_dataset_by_reference_is_registered_on_s3_by_the_served_api(
    served_on_s3: tuple[ApiProcess, Database, Path],
) -> None:
    """pyarrow reads a Parquet shard's footer and first rows through an fsspec file in its own I/O threads:
    their S3 calls must not be handed to the hub's pool from there (the request hung for good)."""
    api, db, _ = served_on_s3
    settings = api.settings
    lake = settings.dataset_url_prefixes[0]
    fs, folder, _ = filesystem(f"{lake}events", settings)
    for shard in range(2):
        table = pa.table({"a": list(range(100)), "label": [row % 2 for row in range(100)]})
        with fs.open(f"{folder}/part-{shard}.parquet", "wb") as handle:
            pq.write_table(table, handle, row_group_size=25)
    key = db.keys.create("acme")
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(2):
            registered = client.post(f"{api.url}/v1/datasets/references", json={"url": f"{lake}events/*.parquet"})
            assert registered.status_code == 201, registered.text
            assert registered.json()["info"]["rows"] == 200
        uploaded = client.post(f"{api.url}/v1/datasets", files={"file": ("t.csv", b"a,label\n1,0\n2,1\n")})
        assert uploaded.status_code == 201, uploaded.text
