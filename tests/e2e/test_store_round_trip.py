"""The table round trip on each artifact store, with a real worker: upload, train, predict (a stored artifact),
explain, download, delete. On S3 (``rclone serve s3``) the API and the worker share no folder: each has its own
scratch, and the worker its own model cache; a training killed mid-way resumes on another "host" from the
checkpoint in the store."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings, session_s3
from tests.ml.mixed_table import mixed_csv
from tests.reliability.harness import wait_for, worker_ready
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _host(settings: Settings, home: Path, name: str) -> Settings:
    """``settings`` as seen on another host: its own scratch and model cache folders."""
    return settings.model_copy(
        update={"scratch_dir": home / name / "scratch", "model_cache_dir": home / name / "cache"}
    )


@pytest.fixture(scope="module", params=["file-sqlite", "s3-postgres"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A store and a database, a Redis of its own, the API in a thread and one real worker on another "host"."""
    kind, database = request.param.split("-")
    home = tmp_path_factory.mktemp(f"store-{kind}")
    admin, name = None, f"tensorq_store_{uuid.uuid4().hex[:8]}"
    if database == "postgres":
        server = request.getfixturevalue("postgres_server")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{home / 'tq.sqlite3'}"
    fields = session_s3().settings(uuid.uuid4().hex[:12]) if kind == "s3" else {}
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(
        home,
        url,
        broker_url=redis_server.url,
        max_inline_rows=50,
        lease_s=6.0,
        heartbeat_s=1.0,
        worker_stale_s=5.0,
        publish_grace_s=5.0,
        **fields,
    )
    upgrade(url)
    db = Database(settings)
    api = ApiThread(_host(settings, home, "api")).start()
    worker = WorkerProcess(_host(settings, home, "worker-1"), home / "worker.log", gpu="none").start()
    wait_http(f"{api.url}/readyz")
    key = db.keys.create("acme")
    client = TensorQClient(api.url, key)
    workers = [worker]
    try:
        yield {
            "client": client,
            "db": db,
            "settings": settings,
            "home": home,
            "kind": kind,
            "workers": workers,
            "tenant": db.keys.authenticate(key).tenant_id,
        }
    finally:
        client.close()
        for each in workers:
            each.stop()
        api.stop()
        db.dispose()
        redis_server.stop()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        log = home / "worker.log"
        if log.exists():
            print(log.read_text()[-4000:])


@pytest.fixture(scope="module")
def trained(stack: dict) -> dict:
    """A table model trained on an uploaded CSV."""
    client: TensorQClient = stack["client"]
    home: Path = stack["home"]
    (home / "churn.csv").write_bytes(mixed_csv())
    dataset = client.upload_dataset(home / "churn.csv").id
    spec = {"architecture": "mlp", "epochs": 4, "batch_size": 16, "seed": 1, "dataset": dataset}
    job = client.run("train", spec | {"label_column": "label", "register_as": "churn"}, timeout=600)
    assert job.status == "succeeded", job.error
    return {"job": job, "dataset": dataset}


def test_train_predict_explain_download_and_delete_through_the_store(stack: dict, trained: dict) -> None:
    client: TensorQClient = stack["client"]
    store = ArtifactStore.from_settings(stack["settings"])
    job = trained["job"]
    version = stack["db"].models.resolve(stack["tenant"], "churn")
    assert store.inside(version.path)
    assert store.size(version.path) > 0
    assert version.path.startswith("s3://") == (stack["kind"] == "s3")
    if stack["kind"] == "s3":  # nothing on the shared folder of old; the worker's scratch copy is gone
        assert not (Path(stack["settings"].artifact_dir) / "jobs").exists()
        assert not list((stack["home"] / "worker-1" / "scratch" / "jobs").glob("*/*"))

    predicted = client.run("predict", {"model": "churn", "dataset": trained["dataset"]}, timeout=300)
    assert predicted.status == "succeeded", predicted.error
    assert predicted.result["artifacts"] == ["predictions.csv"]
    rows = list(csv.reader(io.StringIO(client.artifact(predicted.id, "predictions.csv").decode())))
    assert rows[0][:2] == ["row", "class"]
    assert len(rows) == 241
    if stack["kind"] == "s3":  # the version was fetched once into the worker's model cache
        assert [p.name for p in (stack["home"] / "worker-1" / "cache").glob("*.keras")] == [f"{version.id}.keras"]

    inputs = [["30", "20.5", "Paris", "2"], ["52", "80.0", "Lille", "1"]]
    explained = client.run("explain", {"model": "churn", "inputs": inputs}, timeout=300)
    assert explained.status == "succeeded", explained.error
    assert len(explained.result["attributions"]) == 2

    downloaded = client.download_model("churn", stack["home"] / "churn.keras")
    with store.open(version.path) as handle:
        assert downloaded.read_bytes() == handle.read()

    freed_job = client.delete_job(predicted.id).freed_bytes
    assert freed_job > 0
    assert store.listing(store.job_location(predicted.id)) == {}
    size = store.size(version.path)
    assert client.delete_model("churn").freed_bytes == size
    assert not store.exists(version.path)
    client.delete_job(job.id)  # its checkpoints go with it
    assert store.listing(store.job_location(job.id)) == {}


def test_a_training_killed_mid_way_resumes_on_another_host_from_the_stored_checkpoint(stack: dict) -> None:
    if stack["kind"] != "s3":
        pytest.skip("the file store's resume is drill 1 (tests/reliability/test_drills.py)")
    client: TensorQClient = stack["client"]
    [first] = stack["workers"]
    wait_for(lambda: worker_ready(first), timeout=120, what="worker ready")
    spec = {"architecture": "cnn", "dataset": "builtin:digits", "epochs": 5, "batch_size": 8, "seed": 5}
    job = client.submit("train", spec)
    wait_for(
        lambda: (j := client.job(job.id, wait=1)).status == "running" and (j.progress or {}).get("epoch", 0) >= 2,
        timeout=300,
        what="epoch 2",
    )
    first.kill()
    second = WorkerProcess(_host(stack["settings"], stack["home"], "worker-2"), stack["home"] / "worker-2.log").start()
    stack["workers"].append(second)
    try:
        done = client.wait(job.id, timeout=400)
        assert done.status == "succeeded", done.error
        assert len(done.result["history"]["loss"]) == 5
        events = client.events(job.id)
        second_claim = max(i for i, e in enumerate(events) if e.to_status == "running")
        resumed = [e.data["epoch"] for e in events[second_claim:] if e.kind == "progress"]
        assert resumed[0] >= 3
        assert resumed[-1] == 5
    finally:
        second.stop()
