"""A client generated from /openapi.json by openapi-python-client (--fail-on-warning) drives a real stack:
train, wait, predict, explain, events, cancel and an error, every answer parsed into the document's types."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
PACKAGE = "tensorq_generated_client"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[dict[str, Any]]:
    """Postgres, a Redis of its own, the API in a thread and one real worker process."""
    name = f"tensorq_gen_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    home = tmp_path_factory.mktemp("generated")
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, url, broker_url=redis_server.url)
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log", gpu="none").start()
    wait_http(f"{api.url}/readyz")
    try:
        yield {"api": api, "key": db.keys.create("acme"), "home": home}
    finally:
        worker.stop()
        api.stop()
        db.dispose()
        redis_server.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def generated(stack: dict[str, Any]) -> Any:
    """The client package openapi-python-client makes from the served document, with warnings as errors."""
    home: Path = stack["home"]
    document = home / "openapi.json"
    document.write_text(json.dumps(httpx.get(f"{stack['api'].url}/openapi.json").json()))
    out = home / "client" / PACKAGE
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(document),
            "--fail-on-warning",
            "--meta",
            "none",
            "--output-path",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr
    sys.path.insert(0, str(out.parent))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out.parent))


def test_a_generated_client_round_trip(stack: dict[str, Any], generated: Any) -> None:
    jobs = importlib.import_module(f"{PACKAGE}.api.jobs")
    models = importlib.import_module(f"{PACKAGE}.models")
    for name in ("submit_job", "get_job", "job_events", "cancel_job"):
        importlib.import_module(f"{PACKAGE}.api.jobs.{name}")
    client = generated.AuthenticatedClient(base_url=stack["api"].url, token=stack["key"], timeout=httpx.Timeout(60))
    finished = models.GetJobUntil.FINISHED

    def wait(job_id: str) -> Any:
        for _ in range(40):
            job = jobs.get_job.sync(job_id, client=client, wait=25, until=finished)
            if job.status.value in ("succeeded", "failed", "cancelled"):
                return job
        raise TimeoutError(job_id)

    spec = models.TrainSpec(
        architecture=models.TrainSpecArchitecture.MLP, dataset="builtin:iris", epochs=3, model_name="iris-gen", seed=1
    )
    answer = jobs.submit_job.sync_detailed(client=client, body=models.TrainSubmission(type_="train", spec=spec))
    assert answer.status_code == 202
    assert isinstance(answer.parsed, models.TrainJob)
    assert answer.headers["Location"] == f"/v1/jobs/{answer.parsed.id}"
    train = wait(answer.parsed.id)
    assert isinstance(train, models.TrainJob), train
    assert train.status == models.JobStatus.SUCCEEDED, train
    assert isinstance(train.result, models.TrainResult)
    assert len(train.result.history["loss"]) == 3
    model = train.result.model_id

    predict = jobs.submit_job.sync(
        client=client,
        body=models.PredictSubmission(
            type_="predict", spec=models.PredictSpec(model=model, inputs=[[5.1, 3.5, 1.4, 0.2]])
        ),
    )
    predicted = wait(predict.id)
    assert isinstance(predicted, models.PredictJob)
    assert isinstance(predicted.result, models.PredictResult)
    assert predicted.result.rows == 1
    assert len(predicted.result.classes) == 1

    explain = jobs.submit_job.sync(
        client=client,
        body=models.ExplainSubmission(
            type_="explain", spec=models.ExplainSpec(model=model, inputs=[[5.1, 3.5, 1.4, 0.2]], steps=16)
        ),
    )
    explained = wait(explain.id)
    assert isinstance(explained, models.ExplainJob)
    assert isinstance(explained.result, models.ExplainResult)
    assert explained.result.method == models.ExplainResultMethod.INTEGRATED_GRADIENTS
    assert len(explained.result.attributions[0]) == 4

    events = jobs.job_events.sync(train.id, client=client)
    assert isinstance(events, models.EventList)
    states = [e for e in events.events if isinstance(e, models.StateEvent)]
    assert [e.to_status.value for e in states] == ["queued", "running", "succeeded"]
    assert states[1].data.worker  # the claiming worker, typed
    progress = [e for e in events.events if isinstance(e, models.ProgressEvent)]
    assert progress
    assert progress[-1].data.epoch == 3
    assert "loss" in progress[-1].data.additional_properties

    long = models.TrainSpec(architecture=models.TrainSpecArchitecture.MLP, dataset="builtin:iris", epochs=5000)
    queued = jobs.submit_job.sync(client=client, body=models.TrainSubmission(type_="train", spec=long))
    cancelled = jobs.cancel_job.sync_detailed(queued.id, client=client)
    assert cancelled.status_code == 202
    assert isinstance(cancelled.parsed, models.TrainJob)
    assert wait(queued.id).status == models.JobStatus.CANCELLED
    again = jobs.cancel_job.sync_detailed(queued.id, client=client)
    assert again.status_code == 409
    assert isinstance(again.parsed, models.ErrorResponse)

    missing = jobs.get_job.sync_detailed(str(uuid.uuid4()), client=client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorResponse)
    assert missing.parsed.error.code == "not_found"
    bad = jobs.submit_job.sync_detailed(
        client=client,
        body=models.TrainSubmission(
            type_="train", spec=models.TrainSpec(architecture=models.TrainSpecArchitecture.MLP, dataset="builtin:nope")
        ),
    )
    assert bad.status_code == 400
    assert isinstance(bad.parsed, models.ErrorResponse)
    assert bad.parsed.error.details[0]["field"] == "spec.dataset"
