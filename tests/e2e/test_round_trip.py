"""The whole path on real parts: HTTP API -> Postgres -> Redis -> a real Celery worker process -> TensorFlow."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[dict]:
    """Postgres database, a Redis of its own, the API in a thread and one real worker process."""
    name = f"tensorq_e2e_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    home = tmp_path_factory.mktemp("e2e")
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, url, broker_url=redis_server.url)
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log").start()
    wait_http(f"{api.url}/readyz")
    client = TensorQClient(api.url, db.keys.create("acme"))
    try:
        yield {"client": client, "db": db, "settings": settings, "api": api, "worker": worker, "home": home}
    finally:
        client.close()
        worker.stop()
        api.stop()
        db.dispose()
        redis_server.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        log = home / "worker.log"
        if log.exists():
            print(log.read_text()[-4000:])


@pytest.fixture(scope="module")
def trained(stack: dict) -> dict:
    """A CNN trained on digits through the API."""
    client: TensorQClient = stack["client"]
    job = client.submit(
        "train",
        {
            "architecture": "cnn",
            "dataset": "builtin:digits",
            "epochs": 6,
            "validation_split": 0.15,
            "test_split": 0.15,
            "seed": 3,
            "model_name": "digits",
        },
    )
    return client.wait(job.id, timeout=600)


def test_training_succeeds_with_progress_history_and_one_model_version(stack: dict, trained: dict) -> None:
    client: TensorQClient = stack["client"]
    assert trained.status == "succeeded", trained.error
    result = trained.result
    assert result["version"] == 1
    assert len(result["history"]["loss"]) == 6
    assert result["metrics"]["test_accuracy"] > 0.9
    assert trained.attempts == 1
    assert trained.started_at
    assert trained.finished_at
    events = client.events(trained.id)
    states = [(e.from_status, e.to_status) for e in events if e.kind == "state"]
    assert states == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    epochs = [e.data["epoch"] for e in events if e.kind == "progress"]
    assert epochs == [1, 2, 3, 4, 5, 6]
    model = client.model(result["model_id"])
    assert [v.training_job_id for v in model.versions] == [trained.id]
    keras_file = client.download_model(result["model_id"], stack["home"] / "digits.keras")
    assert keras_file.read_bytes()[:2] == b"PK"


def test_a_downloaded_model_uploads_back_as_a_new_model_that_predicts(stack: dict, trained: dict) -> None:
    client: TensorQClient = stack["client"]
    keras_file = client.download_model(trained.result["model_id"], stack["home"] / "again.keras")
    imported = client.wait(client.upload_model(keras_file, name="digits-again").id, timeout=300)
    assert imported.type == "import", imported.error
    assert imported.status == "succeeded", imported.error
    assert imported.result["model_name"] == "digits-again"
    assert imported.result["model_id"] != trained.result["model_id"]
    inputs = load_digits().images[-5:].tolist()
    ours, theirs = (
        client.run("predict", {"model": model, "inputs": inputs}, timeout=300)
        for model in (imported.result["model_id"], trained.result["model_id"])
    )
    assert ours.status == theirs.status == "succeeded", ours.error
    np.testing.assert_allclose(ours.result["outputs"], theirs.result["outputs"], atol=1e-5)


def test_predict_on_raw_inputs(stack: dict, trained: dict) -> None:
    digits = load_digits()
    images, labels = digits.images[-20:], digits.target[-20:]
    job = stack["client"].run("predict", {"model": trained.result["model_id"], "inputs": images.tolist()}, timeout=300)
    assert job.status == "succeeded", job.error
    probabilities = np.array(job.result["outputs"])
    assert probabilities.shape == (20, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert (np.array(job.result["classes"]) == labels).mean() >= 0.85


def test_explain_gives_attributions_completeness_and_a_heatmap(stack: dict, trained: dict) -> None:
    client: TensorQClient = stack["client"]
    images = load_digits().images[:2]
    job = client.run(
        "explain",
        {"model": trained.result["model_id"], "inputs": images.tolist(), "steps": 128},
        timeout=300,
    )
    assert job.status == "succeeded", job.error
    result = job.result
    assert np.array(result["attributions"]).shape == (2, 8, 8, 1)
    assert result["quality"]["completeness_gap"] < 0.05
    assert result["artifacts"] == ["heatmap_0.png", "heatmap_1.png"]
    png = client.artifact(job.id, "heatmap_0.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 1000


def test_a_message_delivered_three_times_runs_once(stack: dict, trained: dict) -> None:
    from tensorq.core.routing import route_for
    from worker.celery_app import make_celery

    client: TensorQClient = stack["client"]
    job = client.submit("predict", {"model": trained.result["model_id"], "inputs": [np.zeros((8, 8)).tolist()]})
    app = make_celery(stack["settings"])
    route = route_for("predict")
    for _ in range(3):
        app.send_task(route.task, args=[job.id], queue=route.queue)
    done = client.wait(job.id, timeout=120)
    time.sleep(2)  # let the duplicates arrive and be refused
    claims = [e for e in client.events(job.id) if e.to_status == "running"]
    assert done.status == "succeeded"
    assert len(claims) == 1
    assert client.job(job.id).attempts == 1


def test_cancel_a_running_training_job(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    job = client.submit(
        "train", {"architecture": "mlp", "dataset": "builtin:breast_cancer", "epochs": 5000, "batch_size": 8}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = client.job(job.id, wait=5)
        if current.status == "running" and (current.progress or {}).get("epoch", 0) >= 1:
            break
    client.cancel(job.id)
    done = client.wait(job.id, timeout=60)
    assert done.status == "cancelled"
    assert done.result is None
    assert stack["db"].jobs.versions_of_job(job.id) == []


def test_a_job_that_cannot_run_fails_with_its_message(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    dataset = client._call(  # noqa: SLF001 - upload from memory
        "POST", "/v1/datasets", files={"file": ("t.csv", io.BytesIO(b"a,b,label\n1,x,0\n2,y,0\n"))}
    ).json()  # one class: a table the API takes, refused by the worker when it builds the model
    job = client.run(
        "train",
        {
            "architecture": "mlp",
            "dataset": dataset["id"],
            "label_column": "label",
            "validation_split": 0.0,
            "epochs": 1,
        },
        timeout=120,
    )
    assert job.status == "failed"
    assert job.error.code == "invalid_request"
    assert "two classes" in job.error.message


def test_tensorflow_lives_in_the_pool_child_not_the_forking_parent(stack: dict, trained: dict) -> None:
    parent = stack["worker"].proc.pid
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert children, "the prefork pool has a child process"

    def loaded_tensorflow(pid: str | int) -> bool:
        return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()

    assert not loaded_tensorflow(parent)
    assert any(loaded_tensorflow(child) for child in children)


def test_a_name_and_an_alias_resolve_in_the_worker_after_a_fresh_api_start(stack: dict, trained: dict) -> None:
    client: TensorQClient = stack["client"]
    version = trained.result["version"]
    assert client.set_alias("digits", "production", version).aliases == {"production": version}
    # A second API built from the same settings (its own engine, nothing in memory from the first) and a new key.
    fresh = ApiThread(stack["settings"]).start()
    try:
        wait_http(f"{fresh.url}/readyz")
        with TensorQClient(fresh.url, stack["db"].keys.create("acme")) as again:
            assert again.model("digits@production").aliases == {"production": version}
            image = np.zeros((8, 8)).tolist()
            predicted = again.run("predict", {"model": "digits@production", "inputs": [image]}, timeout=300)
            assert predicted.status == "succeeded", predicted.error
            assert predicted.result["model_name"] == "digits"
            assert predicted.result["version"] == version
            assert predicted.result["model_ref"] == "digits@production"
            explained = again.run("explain", {"model": f"digits:{version}", "inputs": [image], "steps": 8}, timeout=300)
            assert explained.status == "succeeded", explained.error
            assert explained.result["version"] == version
            assert explained.result["baseline"] == "zeros"
            events = again.model_events("digits")
            assert [(e.kind, e.data["to_version"]) for e in events] == [("alias_set", version)]
    finally:
        fresh.stop()
