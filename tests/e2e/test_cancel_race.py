"""Submit, then cancel at once, against a real worker that claims each job as it arrives: a cancel that meets
the claim answers 202 (or 409 once the job has ended), never 503. On Postgres such a cancel used to deadlock
with the claim (the claim held the tenant's row FOR UPDATE, the cancel's notification row needs a key-share
lock on it while the cancel holds the job), and the database aborted one of them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.database import Database
from db.migrate import upgrade
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.api.test_jobs_api import _register_model
from tests.conftest import make_settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
ROUNDS = 80
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def stack(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[tuple[str, dict[str, str], str]]:
    """The API and one real worker; a key and a registered model (whose file is missing, so a job that the
    worker does claim fails at once and the worker is soon free for the next claim)."""
    settings = make_settings(tmp_path, database_url, broker_url=redis_url, webhook_allowed_hosts=["127.0.0.1"])
    upgrade(settings.database_url)
    db = Database(settings)
    model = _register_model(db)
    auth = {"Authorization": f"Bearer {db.keys.create('acme')}"}
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, tmp_path / "worker.log", queues="predict").start()
    try:
        wait_http(f"{api.url}/readyz")
        yield api.url, auth, model
    finally:
        worker.stop()
        api.stop()
        db.dispose()


def _finished(client: httpx.Client, job_id: str, timeout_s: float) -> dict:
    """The job once it has finished: long-polls (each at most the API's ``max_wait_s``) until then."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": 30, "until": "finished"}).json()
        if job["status"] in FINISHED or time.monotonic() > deadline:
            return job


def test_cancels_right_after_submits_never_fail(stack: tuple[str, dict[str, str], str]) -> None:
    url, auth, model = stack
    body = {
        "type": "predict",
        "spec": {"model": model, "inputs": [[1.0, 2.0, 3.0, 4.0]]},
        "callback_url": "http://127.0.0.1:9/hook",
    }
    cancels: Counter[int] = Counter()
    ended: Counter[str] = Counter()
    with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
        assert client.post("/v1/webhook-secret").status_code == 201
        warm = client.post("/v1/jobs", json=body).json()  # the worker is live: it claims the job, which fails
        warm = _finished(client, warm["id"], timeout_s=240)  # the worker's first claim waits for TensorFlow
        assert (warm["status"], warm["error"]["code"]) == ("failed", "invalid_request"), warm
        for round_ in range(ROUNDS):
            job = client.post("/v1/jobs", json=body)
            assert job.status_code == 202, job.text
            time.sleep((round_ % 20) * 0.002)  # 0 to 38 ms: the cancel lands before, in and after the claim
            cancel = client.post(f"/v1/jobs/{job.json()['id']}/cancel")
            cancels[cancel.status_code] += 1
            assert cancel.status_code in (202, 409), cancel.text
            # The next round starts once the worker is done with this job, so that each cancel meets a claim.
            final = _finished(client, job.json()["id"], timeout_s=120)
            assert final["status"] in FINISHED, final
            ended[final["status"]] += 1
    assert cancels[202] + cancels[409] == ROUNDS, (cancels, ended)
    assert ended["cancelled"] >= 1, (cancels, ended)
    print(f"cancels by status {dict(cancels)}, jobs by end {dict(ended)}")  # shown with -s
