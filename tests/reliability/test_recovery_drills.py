"""Recovery drills that time how soon work resumes: a broker that forgets (FLUSHALL) is refilled within a check,
not after the publish grace; a worker killed mid-job has the job re-queued once it is known gone, not after its
lease. On the drills' cluster fixture and invariant check."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import text

from tensorq.client import Event
from tests.reliability.harness import Cluster, claims, state_events, wait_for
from worker.drain import child_pids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TINY_TRAIN = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2, "seed": 3}
LONG_TRAIN = {"architecture": "cnn", "dataset": "builtin:digits", "epochs": 8, "batch_size": 8, "seed": 5}
SHORT_TRAIN = {**LONG_TRAIN, "epochs": 2}


def _at(events: list[Event], to_status: str, nth: int = 0) -> datetime:
    stamp = [e for e in events if e.to_status == to_status][nth].created_at
    assert stamp is not None
    return stamp


def _runner_pid(cluster: Cluster, job_id: str) -> int:
    """The process id of the pool child that claimed the job (``jobs.worker`` is host:pid)."""
    with cluster.admin_db.engine.connect() as conn:
        worker = conn.execute(text("SELECT worker FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()
    return int(worker.rsplit(":", 1)[1])


def _report(record_property, name: str, **figures: float) -> None:  # type: ignore[no-untyped-def]
    for key, value in figures.items():
        record_property(f"{name}.{key}", round(value, 2))
    print(f"\n[drill] {name}: " + ", ".join(f"{k}={v:.1f}s" for k, v in figures.items()))


def test_a_flushed_broker_is_refilled_within_a_check_not_the_publish_grace(make_cluster, record_property) -> None:
    started = time.monotonic()
    # The default publish grace (120 s) and broker check (2 s): only the marker can bring the jobs back early.
    cluster: Cluster = make_cluster(publish_grace_s=120.0, broker_check_s=2.0)
    cluster.start_worker(queues="train")
    running = cluster.client.submit("train", SHORT_TRAIN)  # holds the only pool child while the others queue
    cluster.wait_status(running.id, {"running"})
    queued = [cluster.client.submit("train", TINY_TRAIN).id for _ in range(10)]
    assert cluster.redis.queued_messages() >= 10
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        client.flushall()
    finally:
        client.close()
    flushed = datetime.now(UTC)
    assert cluster.redis.queued_messages() == 0
    busy = 0.0  # the worker's run time after the flush: the bound on the recovery
    last = flushed
    for job_id in [running.id, *queued]:
        done = cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=240)
        assert done.status == "succeeded", done.error
        assert claims(cluster, job_id) == 1
        events = state_events(cluster, job_id)
        began, ended = max(_at(events, "running"), flushed), _at(events, "succeeded")
        busy += (ended - began).total_seconds()
        last = max(last, ended)
    recovery = (last - flushed).total_seconds()
    # The refill comes within a check (2 s) and a reaper pass; what is left is the jobs' own run time.
    assert recovery < busy + 15.0, (recovery, busy)
    assert recovery < 120.0
    _report(
        record_property,
        "flushall",
        drill=time.monotonic() - started,
        flush_to_all_done=recovery,
        run_time_after_flush=busy,
    )


def test_a_job_of_a_killed_worker_is_requeued_once_the_worker_is_gone_not_at_its_lease(
    make_cluster, record_property
) -> None:
    started = time.monotonic()
    # The default 60 s lease; the worker is gone after 5 s without a heartbeat.
    cluster: Cluster = make_cluster(lease_s=60.0, worker_stale_s=5.0)
    workers = [cluster.start_worker(queues="train") for _ in range(2)]
    for worker in workers:  # a pool child's reaper runs once the child has TensorFlow configured
        wait_for(lambda w=worker: "worker child ready" in w.log_path.read_text(), timeout=120, what="child ready")
    job = cluster.client.submit("train", LONG_TRAIN)
    cluster.wait_epoch(job.id, 1)
    victim = next(w for w in workers if w.proc is not None and _runner_pid(cluster, job.id) in child_pids(w.proc.pid))
    victim.kill()  # SIGKILL to the parent and its pool child; the other worker is alive and idle
    killed = datetime.now(UTC)
    done = cluster.wait_status(job.id, {"succeeded", "failed", "cancelled"}, timeout=240)
    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    events = state_events(cluster, job.id)
    requeue = next(e for e in events if e.from_status == "running" and e.to_status == "queued")
    assert requeue.data == {"reason": "worker_gone"}
    to_requeued = (_at(events, "queued", 1) - killed).total_seconds()
    to_claimed = (_at(events, "running", 1) - killed).total_seconds()
    # Gone after 5 s (plus a heartbeat and a reaper pass), far from the 60 s lease.
    assert to_claimed < 30.0, to_claimed
    _report(
        record_property,
        "kill9_running",
        drill=time.monotonic() - started,
        kill_to_requeued=to_requeued,
        kill_to_claimed=to_claimed,
    )
