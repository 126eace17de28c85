"""Table rows as records on real parts, on both databases: HTTP API -> SQL -> Redis -> a real worker process ->
TensorFlow. A table model predicts and explains records exactly as it does rows in column order; a missing key
is a null cell; records jobs share a micro-batch with row jobs of the same version."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.client_types import Job
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.ml.mixed_table import mixed_csv
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROWS = [[30, 20.5, "Paris", "2"], [52, 80.0, "Lille", "1"], [41, None, None, "3"]]
RECORDS = [
    {"plan": "2", "city": "Paris", "income": 20.5, "age": 30},
    {"age": 52, "income": 80.0, "city": "Lille", "plan": "1"},
    {"age": 41, "plan": "3"},  # income and city missing: the nulls of ROWS[2]
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A database, a Redis of its own, the API in a thread and one real worker whose micro-batches wait 1.5 s."""
    home = tmp_path_factory.mktemp(f"records-{request.param}")
    admin, name = None, f"tensorq_records_{uuid.uuid4().hex[:8]}"
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{home / 'tq.sqlite3'}"
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, url, broker_url=redis_server.url, batch_wait_ms=1500)
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log").start()
    wait_http(f"{api.url}/readyz")
    client = TensorQClient(api.url, db.keys.create("acme"))
    try:
        (home / "churn.csv").write_bytes(mixed_csv())
        dataset = client.upload_dataset(home / "churn.csv").id
        spec = {"architecture": "mlp", "epochs": 20, "batch_size": 16, "seed": 1, "dataset": dataset}
        trained = client.run("train", spec | {"label_column": "label", "register_as": "churn"}, timeout=600)
        assert trained.status == "succeeded", trained.error
        yield {"client": client}
    finally:
        client.close()
        worker.stop()
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


def _together(client: TensorQClient, job_type: str, specs: list[dict]) -> list[Job]:
    """Submit ``specs`` in one batch and wait for each; every job succeeded, all in one micro-batch."""
    jobs = client.submit_many([{"type": job_type, "spec": spec} for spec in specs])
    done = [client.wait(job.id, timeout=300) for job in jobs]
    assert [job.status for job in done] == ["succeeded"] * len(done), [job.error for job in done]
    assert len({job.started_at for job in done}) == 1  # one claim: one pass
    return done


def test_records_predict_what_rows_do_in_one_micro_batch(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    by_rows, by_records, one_gap, one_null = _together(
        client,
        "predict",
        [
            {"model": "churn", "inputs": ROWS},
            {"model": "churn", "inputs": RECORDS},
            {"model": "churn", "inputs": [{"age": 41}]},
            {"model": "churn", "inputs": [[41, None, None, None]]},
        ],
    )
    assert by_records.spec["inputs"] == ROWS  # queued in the model's column order
    assert by_records.result["outputs"] == by_rows.result["outputs"]
    assert by_records.result["labels"] == by_rows.result["labels"]
    assert one_gap.result["outputs"] == one_null.result["outputs"]
    alone = client.run("predict", {"model": "churn", "inputs": RECORDS}, timeout=300)
    assert alone.result["outputs"] == by_rows.result["outputs"]


def test_records_explain_what_rows_do(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    spec = {"model": "churn", "method": "integrated_gradients", "steps": 32}
    by_rows, by_records = _together(client, "explain", [spec | {"inputs": ROWS}, spec | {"inputs": RECORDS}])
    assert by_records.result["attributions"] == by_rows.result["attributions"]
    assert by_records.result["feature_names"] == ["age", "income", "city", "plan"]
    assert by_records.result["targets"] == by_rows.result["targets"]
