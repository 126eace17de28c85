"""Reliability drills of micro-batching: real Redis, real Postgres, real `tensorq worker` processes, with
micro-batching on (the default) and a batching wait long enough to act inside a claimed batch.

The cluster fixture checks the invariants over the whole database after each drill: every job in exactly one
terminal state along a legal path, no lease left held.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.reliability.harness import Cluster, claims, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _report(record_property, name: str, **figures: float) -> None:  # type: ignore[no-untyped-def]
    for key, value in figures.items():
        record_property(f"{name}.{key}", round(value, 2))
    print(f"\n[drill] {name}: " + ", ".join(f"{k}={v:.1f}s" for k, v in figures.items()))


def _tiny_model(cluster: Cluster) -> str:
    job = cluster.client.run("train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 3}, timeout=120)
    assert job.status == "succeeded", job.error
    return job.result["model_id"]


IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
# The worker claims a micro-batch, then waits this long for more before it runs it: a window to act in.
BATCH_WINDOW_MS = 3000


def _batch_running(cluster: Cluster, ids: list[str]) -> bool:
    """Whether every job of ``ids`` is running, taken by one claim (one statement, one started_at)."""
    jobs = [cluster.db.jobs.get_any(job_id) for job_id in ids]
    return all(j.status == "running" for j in jobs) and len({j.started_at for j in jobs}) == 1


def test_drill_12_kill_9_in_the_middle_of_a_micro_batch(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster(batch_wait_ms=BATCH_WINDOW_MS)
    first = cluster.start_worker()
    model = _tiny_model(cluster)
    body = {"type": "predict", "spec": {"model": model, "inputs": [IRIS_ROW]}}
    ids = [job.id for job in cluster.client.submit_many([body] * 6)]
    wait_for(lambda: _batch_running(cluster, ids), timeout=30, what="the batch claimed as one")
    first.kill()
    killed = time.monotonic()
    cluster.start_worker()
    for job_id in ids:
        done = cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=180)
        assert done.status == "succeeded", done.error
        assert done.attempts == 2
        assert claims(cluster, job_id) == 2
        assert np.argmax(done.result["outputs"][0]) in (0, 1, 2)
    _report(
        record_property, "kill9_batch", drill=time.monotonic() - started, kill_to_all_done=time.monotonic() - killed
    )


def test_drill_13_a_cancel_inside_a_running_micro_batch_cancels_only_its_job(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster(batch_wait_ms=BATCH_WINDOW_MS)
    cluster.start_worker()
    model = _tiny_model(cluster)
    body = {"type": "predict", "spec": {"model": model, "inputs": [IRIS_ROW]}}
    ids = [job.id for job in cluster.client.submit_many([body] * 6)]
    wait_for(lambda: _batch_running(cluster, ids), timeout=30, what="the batch claimed as one")
    assert cluster.client.cancel(ids[2]).cancel_requested
    ended = {job_id: cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=60) for job_id in ids}
    assert ended[ids[2]].status == "cancelled"
    assert ended[ids[2]].result is None
    assert all(ended[job_id].status == "succeeded" for job_id in ids if job_id != ids[2])
    wait_for(lambda: cluster.redis.queued_messages() == 0, timeout=60, what="the batch-mates' messages consumed")
    time.sleep(2)
    for job_id in ids:
        assert claims(cluster, job_id) == 1
        assert cluster.client.job(job_id).status == ended[job_id].status
    _report(record_property, "cancel_in_batch", drill=time.monotonic() - started)
