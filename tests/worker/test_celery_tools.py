"""Celery's own tools on a real TensorQ worker process, real Redis and Postgres: `celery -A worker.celery_app
inspect` finds the worker, `control revoke` cancels jobs through the store, and task events tell the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.localstack import ApiThread, settings_env
from tests.conftest import make_settings
from tests.reliability.harness import Cluster, wait_for
from tests.services import RedisServer, free_port
from worker.celery_app import make_celery

FLOWER_USER, FLOWER_PASSWORD = "admin", "flower-test-password"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
LONG_TRAIN = {"architecture": "mlp", "dataset": "builtin:digits", "epochs": 400, "batch_size": 16, "seed": 1}


class EventLog:
    """Every Celery event the broker carries, captured by a receiver thread (what Flower sees)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._receiver: Any = None
        threading.Thread(target=self._run, name="celery-events", daemon=True).start()

    def _run(self) -> None:
        with self.app.connection() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self.events.append})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def of(self, task_id: str) -> list[str]:
        """The types of the task events of ``task_id``, in order."""
        return [e["type"] for e in list(self.events) if e.get("uuid") == task_id]

    def stop(self) -> None:
        """Stop capturing."""
        if self._receiver is not None:
            self._receiver.should_stop = True


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[dict[str, Any]]:
    """A cluster (API thread, one `tensorq worker` on the CPU) with default settings for events."""
    name = f"tensorq_tools_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    home = tmp_path_factory.mktemp("tools")
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, url, broker_url=redis_server.url, heartbeat_s=1.0)
    assert settings.task_events  # on by default
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    client = TensorQClient(api.url, db.keys.create("acme"))
    cluster = Cluster(settings, db, db, redis_server, None, api, client, home)  # type: ignore[arg-type]
    events = EventLog(make_celery(settings))
    flower = start_flower(settings, home / "flower.log")
    worker = cluster.start_worker()
    try:
        yield {"cluster": cluster, "worker": worker, "events": events, "flower": flower}
    finally:
        flower[0].terminate()
        flower[0].wait(timeout=30)
        events.stop()
        worker.stop()
        cluster.client.close()
        api.stop()
        db.dispose()
        redis_server.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def start_flower(settings: Any, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Flower on the app as the docs start it (basic auth); returns the process and its URL."""
    port = free_port()
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "flower", f"--port={port}", "--address=127.0.0.1"]
        + [f"--basic-auth={FLOWER_USER}:{FLOWER_PASSWORD}"],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), timeout=60, what="flower")
    return proc, url


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def celery(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """``celery -A worker.celery_app ARGS`` in a fresh process that knows only the TENSORQ_* environment."""
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_inspect_ping_and_active_find_the_worker_by_its_unique_name(tools: dict[str, Any]) -> None:
    cluster: Cluster = tools["cluster"]
    node = f"tensorq-cpu-{tools['worker'].proc.pid}@"
    ping = celery(cluster.settings, "inspect", "ping", "--timeout", "5")
    assert ping.returncode == 0, ping.stderr
    assert node in ping.stdout
    assert "pong" in ping.stdout

    job = cluster.client.submit("train", LONG_TRAIN)
    cluster.wait_epoch(job.id, 1)
    active = celery(cluster.settings, "inspect", "active", "--json", "--timeout", "5")
    assert active.returncode == 0, active.stderr
    replies = json.loads(active.stdout)
    [(name, tasks)] = replies.items()
    assert name.startswith(node)
    assert [t["id"] for t in tasks] == [job.id]  # the Celery task id is the job id
    assert tasks[0]["args"] == [job.id]
    cluster.client.cancel(job.id)
    assert cluster.wait_status(job.id, {"cancelled"}).status == "cancelled"


def test_revoke_cancels_queued_and_running_jobs_through_the_store(tools: dict[str, Any]) -> None:
    cluster: Cluster = tools["cluster"]
    events: EventLog = tools["events"]
    running = cluster.client.submit("train", LONG_TRAIN)
    cluster.wait_epoch(running.id, 1)
    queued = cluster.client.submit("train", LONG_TRAIN)  # waits in Redis: the one pool process is busy

    revoked = celery(cluster.settings, "control", "revoke", "--timeout", "10", queued.id)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert cluster.client.job(queued.id).status == "cancelled"  # at once, not when the message is read

    revoked = celery(cluster.settings, "control", "revoke", "--timeout", "10", running.id)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert "cancel requested" in revoked.stdout
    assert cluster.wait_status(running.id, {"cancelled", "succeeded", "failed"}).status == "cancelled"

    # What Flower sees: both tasks end REVOKED, neither SUCCESS; the queued message is discarded unrun.
    wait_for(lambda: "task-revoked" in events.of(queued.id), timeout=60, what="the queued task revoked")
    wait_for(lambda: "task-revoked" in events.of(running.id), timeout=30, what="the running task revoked")
    assert "task-succeeded" not in events.of(running.id) + events.of(queued.id)
    assert "task-started" not in events.of(queued.id)
    assert cluster.client.job(queued.id).attempts == 0


def test_a_failed_job_is_a_failed_task_and_revoking_a_finished_job_is_refused(tools: dict[str, Any]) -> None:
    cluster: Cluster = tools["cluster"]
    events: EventLog = tools["events"]
    job = cluster.client.submit("train", LONG_TRAIN, timeout_s=1)
    failed = cluster.wait_status(job.id, {"failed", "succeeded", "cancelled"})
    assert failed.status == "failed"
    assert failed.error.code == "timeout"
    wait_for(lambda: "task-failed" in events.of(job.id), timeout=30, what="task-failed")
    assert {"task-sent", "task-received", "task-started"} <= set(events.of(job.id))
    assert "task-succeeded" not in events.of(job.id)
    failure = next(e for e in events.events if e.get("uuid") == job.id and e["type"] == "task-failed")
    assert "JobFailed" in failure["exception"]
    assert "timeout" in failure["exception"]

    refused = celery(cluster.settings, "control", "revoke", "--timeout", "10", job.id)
    assert "refused" in refused.stdout + refused.stderr
    assert cluster.client.job(job.id).status == "failed"
    unknown = celery(cluster.settings, "control", "revoke", "--timeout", "10", str(uuid.uuid4()))
    assert "no such job" in unknown.stdout + unknown.stderr


def test_flower_shows_the_worker_and_each_task_in_its_jobs_state(tools: dict[str, Any]) -> None:
    """Run last: by now the module's jobs have ended succeeded, cancelled (revoked) and failed."""
    _, url = tools["flower"]
    auth = (FLOWER_USER, FLOWER_PASSWORD)
    assert httpx.get(f"{url}/api/tasks", timeout=10).status_code == 401  # authentication on
    workers = httpx.get(f"{url}/api/workers", params={"refresh": "true"}, auth=auth, timeout=30).json()
    assert [name for name in workers if name.startswith(f"tensorq-cpu-{tools['worker'].proc.pid}@")]
    tasks = httpx.get(f"{url}/api/tasks", auth=auth, timeout=10).json()
    jobs = tools["cluster"].client.jobs(limit=50)
    states = {job.id: tasks.get(job.id, {}).get("state") for job in jobs.jobs}
    expected = {"succeeded": "SUCCESS", "failed": "FAILURE", "cancelled": "REVOKED"}
    assert {job.id: expected[job.status] for job in jobs.jobs} == states
    assert "FAILURE" in states.values()
    assert "REVOKED" in states.values()
