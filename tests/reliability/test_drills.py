"""The reliability drills: real Redis, real Postgres, real `tensorq worker` processes, real faults.

After every drill the cluster fixture checks the invariants over the whole database: each job in
exactly one terminal state along a legal path of the state machine, no lease left held, at most one
model version per training job.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
import redis
from sqlalchemy import text

from tensorq.client import Event
from tensorq.core.routing import route_for
from tests.reliability.harness import Cluster, claims, kill_pool_children, state_events, wait_for
from tests.storage import read_only
from worker.celery_app import make_celery
from worker.drain import child_pids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SLOW_TRAIN = {
    "architecture": "cnn",
    "dataset": "builtin:digits",
    "epochs": 6,
    "batch_size": 8,
    "validation_split": 0.1,
    "seed": 5,
}


def _stamp(event: Event) -> datetime:
    return event.created_at


def _report(record_property, name: str, **figures: float) -> None:  # type: ignore[no-untyped-def]
    for key, value in figures.items():
        record_property(f"{name}.{key}", round(value, 2))
    print(f"\n[drill] {name}: " + ", ".join(f"{k}={v:.1f}s" for k, v in figures.items()))


def _tiny_model(cluster: Cluster) -> str:
    job = cluster.client.run("train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 3}, timeout=120)
    assert job.status == "succeeded", job.error
    return job.result["model_id"]


def test_drill_1_kill_9_during_epoch_3_resumes_from_the_checkpoint(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    first = cluster.start_worker()
    job = cluster.client.submit("train", SLOW_TRAIN)
    cluster.wait_epoch(job.id, 2)
    first.kill()
    killed_at = datetime.now(UTC)
    cluster.start_worker()
    done = cluster.wait_status(job.id, {"succeeded", "failed"}, timeout=240)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    assert len(done.result["history"]["loss"]) == 6
    events = cluster.client.events(job.id)
    second_claim = max(i for i, e in enumerate(events) if e.to_status == "running")
    resumed_epochs = [e.data["epoch"] for e in events[second_claim:] if e.kind == "progress"]
    assert resumed_epochs[0] == 3
    assert resumed_epochs[-1] == 6
    assert len(cluster.db.jobs.versions_of_job(job.id)) == 1
    recovery = (_stamp(events[second_claim]) - killed_at).total_seconds()
    _report(record_property, "kill9", drill=time.monotonic() - started, kill_to_resumed=recovery)


def test_drill_2_sigterm_hands_the_job_back_without_counting_it(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    first = cluster.start_worker()
    job = cluster.client.submit("train", SLOW_TRAIN)
    cluster.wait_epoch(job.id, 2)
    assert first.proc is not None
    stopping = time.monotonic()
    first.proc.terminate()
    assert first.proc.wait(timeout=60) == 0
    exit_time = time.monotonic() - stopping
    handed = cluster.client.job(job.id)
    assert handed.status == "queued"
    assert handed.attempts == 0
    cluster.start_worker()
    done = cluster.wait_status(job.id, {"succeeded", "failed"}, timeout=240)
    assert done.status == "succeeded", done.error
    assert done.attempts == 1
    reasons = [
        e.data["reason"]
        for e in state_events(cluster, job.id)
        if e.from_status == "running" and e.to_status == "queued"
    ]
    assert reasons == ["worker_shutdown"]
    assert len(done.result["history"]["loss"]) == 6
    _report(record_property, "sigterm", drill=time.monotonic() - started, worker_exit_after_sigterm=exit_time)


def test_drill_3_a_message_delivered_three_times_while_running_runs_once(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    cluster.start_worker()
    cluster.start_worker(queues="train")
    job = cluster.client.submit("train", {**SLOW_TRAIN, "epochs": 3})
    cluster.wait_epoch(job.id, 1)
    app = make_celery(cluster.settings)
    route = route_for("train")
    for _ in range(3):
        app.send_task(route.task, args=[job.id], queue=route.queue)
    done = cluster.wait_status(job.id, {"succeeded", "failed"}, timeout=240)
    wait_for(lambda: cluster.redis.queued_messages() == 0, timeout=60, what="duplicates consumed")
    assert done.status == "succeeded"
    assert claims(cluster, job.id) == 1
    _report(record_property, "duplicates", drill=time.monotonic() - started)


def test_drill_4_redis_restart_loses_no_job_and_runs_none_twice(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    cluster.start_worker()
    model = _tiny_model(cluster)
    # Long enough to still hold the only pool child while the 20 predicts are submitted and Redis restarts.
    running = cluster.client.submit("train", {**SLOW_TRAIN, "epochs": 10})
    cluster.wait_status(running.id, {"running"})
    queued = [
        cluster.client.submit("predict", {"model": model, "inputs": [[5.1, 3.5, 1.4, 0.2]]}).id for _ in range(20)
    ]
    assert cluster.redis.queued_messages() >= 20
    cluster.redis.restart()
    restarted = time.monotonic()
    assert cluster.redis.queued_messages() == 0
    for job_id in [running.id, *queued]:
        done = cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=240)
        assert done.status == "succeeded", done.error
        assert claims(cluster, job_id) == 1
    _report(
        record_property,
        "redis_restart",
        drill=time.monotonic() - started,
        restart_to_all_done=time.monotonic() - restarted,
    )


def test_drill_5_postgres_outages_at_submit_and_mid_training(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster(lease_s=30.0)
    cluster.proxy.cut()
    import httpx

    response = httpx.post(
        f"{cluster.api.url}/v1/jobs",
        json={"type": "train", "spec": SLOW_TRAIN},
        headers={"Authorization": cluster.client._http.headers["Authorization"]},
    )  # noqa: SLF001
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    with cluster.admin_db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM jobs")).scalar() == 0
    assert cluster.redis.queued_messages() == 0
    cluster.proxy.restore()

    cluster.start_worker()
    job = cluster.client.submit("train", SLOW_TRAIN)
    cluster.wait_epoch(job.id, 2)
    cluster.proxy.cut()
    time.sleep(10)
    cluster.proxy.restore()
    back = time.monotonic()
    done = cluster.wait_status(job.id, {"succeeded", "failed"}, timeout=240)
    assert done.status == "succeeded", done.error
    assert len(done.result["history"]["loss"]) == 6
    _report(record_property, "postgres_outage", drill=time.monotonic() - started, back_to_done=time.monotonic() - back)


def test_drill_6_cancels_hold_across_worker_restarts(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    queued = cluster.client.submit("train", SLOW_TRAIN)
    assert cluster.client.cancel(queued.id).status == "cancelled"

    worker = cluster.start_worker()
    running = cluster.client.submit("train", SLOW_TRAIN)
    cluster.wait_epoch(running.id, 1)
    cluster.client.cancel(running.id)
    assert cluster.wait_status(running.id, {"cancelled", "succeeded", "failed"}).status == "cancelled"

    orphan = cluster.client.submit("train", SLOW_TRAIN)
    cluster.wait_epoch(orphan.id, 1)
    worker.kill()
    cluster.client.cancel(orphan.id)
    cluster.start_worker()
    assert cluster.wait_status(orphan.id, {"cancelled", "succeeded", "failed"}).status == "cancelled"
    time.sleep(3)
    for job in (queued, running, orphan):
        assert cluster.client.job(job.id).status == "cancelled"
        assert cluster.db.jobs.versions_of_job(job.id) == []
        assert claims(cluster, job.id) <= 1
    _report(record_property, "cancels", drill=time.monotonic() - started)


def test_drill_7_a_job_that_always_crashes_its_worker_fails_with_worker_lost(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    worker = cluster.start_worker()
    job = cluster.client.submit("train", SLOW_TRAIN, max_attempts=2)
    stop = threading.Event()
    killed: list[int] = []

    def crash_on_every_claim() -> None:
        seen = 0
        while not stop.is_set():
            current = cluster.db.jobs.get_any(job.id)
            if current.status == "running" and current.attempts > seen:
                seen = current.attempts
                killed.extend(kill_pool_children(worker))
            time.sleep(0.05)

    crasher = threading.Thread(target=crash_on_every_claim, daemon=True)
    crasher.start()
    try:
        done = cluster.wait_status(job.id, {"succeeded", "failed"}, timeout=240)
    finally:
        stop.set()
    assert done.status == "failed"
    assert done.error.code == "worker_lost"
    assert done.attempts == 2
    assert len(killed) == 2
    time.sleep(3)
    assert claims(cluster, job.id) == 2
    _report(record_property, "crash_loop", drill=time.monotonic() - started)


def test_drill_8_a_job_over_its_timeout_fails_and_the_worker_moves_on(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    cluster.start_worker()
    model = _tiny_model(cluster)
    slow = cluster.client.submit("train", {**SLOW_TRAIN, "epochs": 200}, timeout_s=4)
    after = cluster.client.submit("predict", {"model": model, "inputs": [[6.0, 2.9, 4.5, 1.5]]})
    done = cluster.wait_status(slow.id, {"succeeded", "failed"}, timeout=120)
    assert done.status == "failed"
    assert done.error.code == "timeout"
    ran = (done.finished_at - done.started_at).total_seconds()
    assert 4 <= ran < 15
    nxt = cluster.wait_status(after.id, {"succeeded", "failed"}, timeout=60)
    assert nxt.status == "succeeded"
    assert np.argmax(nxt.result["outputs"][0]) in (0, 1, 2)
    _report(record_property, "timeout", drill=time.monotonic() - started, timeout_overshoot=ran - 4)


def test_drill_9_the_artifact_store_goes_read_only_mid_training(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    cluster.start_worker()
    job = cluster.client.submit("train", SLOW_TRAIN, max_attempts=2)
    cluster.wait_epoch(job.id, 2)
    # The same files stay visible; every write now fails (EROFS as root, EACCES otherwise).
    with read_only(cluster.settings.artifact_dir / "jobs"):
        done = cluster.wait_status(job.id, {"succeeded", "failed"}, timeout=180)
    assert done.error is not None
    assert (done.status, done.attempts, done.error.code) == ("failed", 2, "storage_unavailable"), done.error
    assert str(cluster.settings.artifact_dir) not in done.error.message + json.dumps(done.error.details)
    reasons = [e.data.get("reason") for e in cluster.client.events(job.id) if e.to_status == "queued" and e.data]
    assert reasons == ["storage_unavailable"]
    after = cluster.client.run("train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2}, timeout=120)
    assert after.status == "succeeded", after.error
    _report(record_property, "read_only_store", drill=time.monotonic() - started)


def test_drill_10_kill_9_of_the_only_worker_with_predict_jobs_waiting(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    first = cluster.start_worker()
    model = _tiny_model(cluster)
    waiting = [
        cluster.client.submit("predict", {"model": model, "inputs": [[5.1, 3.5, 1.4, 0.2]]}).id for _ in range(30)
    ]
    wait_for(lambda: cluster.client.job(waiting[0]).status == "succeeded", timeout=60, what="a first predict done")
    first.kill()
    killed = time.monotonic()
    cluster.start_worker()
    for job_id in waiting:
        done = cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=180)
        assert done.status == "succeeded", done.error
        assert claims(cluster, job_id) <= 2
    _report(
        record_property, "kill9_predicts", drill=time.monotonic() - started, kill_to_all_done=time.monotonic() - killed
    )


def test_drill_11_a_redis_outage_window_with_api_calls_during_it(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    cluster.start_worker()
    model = _tiny_model(cluster)
    headers = {"Authorization": f"Bearer {cluster.admin_db.keys.create('acme')}"}
    body = {"type": "predict", "spec": {"model": model, "inputs": [[5.1, 3.5, 1.4, 0.2]]}}
    busy = cluster.client.submit("train", {**SLOW_TRAIN, "epochs": 3})
    cluster.wait_status(busy.id, {"running"})
    queued = [cluster.client.submit(body["type"], body["spec"]).id for _ in range(5)]  # their messages will be lost
    cluster.redis.stop()  # no persistence: every queue and the rate limiter's counts are lost
    accepted, statuses = [busy.id, *queued], []
    with httpx.Client(base_url=cluster.api.url, headers=headers, timeout=30) as http:
        for _ in range(6):
            response = http.post("/v1/jobs", json=body)
            statuses.append(response.status_code)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) > 0, response.text
        assert all(http.get(f"/v1/jobs/{job_id}").status_code == 200 for job_id in accepted)
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 503
    assert 500 not in statuses
    assert 503 in statuses
    cluster.redis.start()
    restarted = time.monotonic()
    for job_id in accepted:
        done = cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=120)
        assert done.status == "succeeded", done.error
        assert claims(cluster, job_id) == 1
    _report(
        record_property, "redis_outage", drill=time.monotonic() - started, back_to_done=time.monotonic() - restarted
    )


def _held(cluster: Cluster) -> set[str]:
    """The jobs whose messages a consumer took and has not acknowledged (kombu's ``unacked`` hash)."""
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        return {json.loads(entry)[0]["headers"]["id"] for entry in client.hvals("unacked")}
    finally:
        client.close()


def test_drill_14_kill_9_as_a_message_is_delivered_does_not_wait_for_the_publish_grace(
    make_cluster, record_property
) -> None:
    started = time.monotonic()
    # An hour of publish grace: the outbox's depth check cannot be what brings the job back.
    cluster: Cluster = make_cluster(publish_grace_s=3600.0, worker_stale_s=5.0)
    victim = cluster.start_worker(queues="train")
    assert victim.proc is not None
    stopped = child_pids(victim.proc.pid)
    for pid in stopped:  # its pool child cannot claim: the message is delivered and stays unclaimed
        os.kill(pid, signal.SIGSTOP)
    job = cluster.client.submit("train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1})
    wait_for(lambda: job.id in _held(cluster), timeout=60, what="the message delivered to the victim")
    assert cluster.client.job(job.id).status == "queued"
    victim.kill()  # SIGKILL to the whole process group, parent and stopped child
    killed_at = datetime.now(UTC)
    assert job.id in _held(cluster)  # kombu keeps it unacknowledged for visibility_timeout (a week)
    cluster.start_worker(queues="train")
    done = cluster.wait_status(job.id, {"succeeded", "failed", "cancelled"}, timeout=240)
    assert done.status == "succeeded", done.error
    assert claims(cluster, job.id) == 1
    wait_for(lambda: not _held(cluster), timeout=60, what="the put-back message acknowledged")
    claimed = next(e for e in state_events(cluster, job.id) if e.to_status == "running")
    _report(
        record_property,
        "kill9_at_delivery",
        drill=time.monotonic() - started,
        kill_to_claimed=(_stamp(claimed) - killed_at).total_seconds(),
    )
