"""Reliability drills of tunes: kill -9 of the worker that runs a trial, and a cancel of the tune across a worker
restart. Real Redis, real Postgres, real ``tensorq worker`` processes; the cluster fixture checks the invariants
after each, parents and children included (``harness.check_parents`` and ``harness.check_children``)."""

from __future__ import annotations

import time

import pytest

from tests.reliability.harness import Cluster, claims, state_events, wait_for
from tests.reliability.test_batch_drills import _report

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

N_TRIALS = 4
# Small batches and enough epochs that a trial runs for seconds: a window to kill its worker in.
TUNE = {
    "train": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 25, "batch_size": 4, "seed": 1},
    "search_space": {"learning_rate": {"type": "float", "low": 0.001, "high": 0.05, "log": True}},
    "n_trials": N_TRIALS,
    "parallelism": 2,
    "sampler": "random",
    "pruner": "none",
    "seed": 3,
    "register_as": "drill-tuned",
}


def _trials(cluster: Cluster, tune_id: str) -> list[str]:
    return [job.id for job in cluster.client.jobs(parent=tune_id, limit=100).jobs]


def _running_trial(cluster: Cluster, tune_id: str, epoch: int) -> str | None:
    """A trial of the tune that is running and has reported ``epoch``."""
    for job in cluster.client.jobs(parent=tune_id, limit=100).jobs:
        if job.status == "running" and (cluster.client.job(job.id).progress or {}).get("epoch", 0) >= epoch:
            return job.id
    return None


def test_drill_15_kill_9_in_the_middle_of_a_trial(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    first = cluster.start_worker()
    tune = cluster.client.submit("tune", TUNE)
    running = wait_for(lambda: _running_trial(cluster, tune.id, 2), timeout=180, what="a trial at epoch 2")
    first.kill()
    killed = time.monotonic()
    cluster.start_worker()
    done = cluster.wait_status(tune.id, {"succeeded", "failed", "cancelled"}, timeout=420)
    assert done.status == "succeeded", done.error
    assert done.children is not None
    assert done.children["succeeded"] == N_TRIALS
    trials = done.result["trials"]
    assert [t["number"] for t in trials] == list(range(N_TRIALS))
    assert all(t["state"] == "complete" for t in trials), trials
    assert done.result["model_name"] == "drill-tuned"
    for trial in _trials(cluster, tune.id):
        ends = [e for e in state_events(cluster, trial) if e.to_status in ("succeeded", "failed", "cancelled")]
        assert len(ends) == 1  # every trial ends exactly once
    assert claims(cluster, running) == 2  # the killed trial ran again on the other worker
    tune_path = [(e.from_status, e.to_status) for e in state_events(cluster, tune.id)]
    assert tune_path == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    _report(record_property, "kill9_trial", drill=time.monotonic() - started, kill_to_done=time.monotonic() - killed)


def test_drill_16_a_tune_cancelled_while_its_worker_restarts_ends_with_no_trial_left(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    first = cluster.start_worker()
    tune = cluster.client.submit("tune", {**TUNE, "n_trials": 6})
    wait_for(lambda: _running_trial(cluster, tune.id, 1), timeout=180, what="a trial at epoch 1")
    first.kill()
    cluster.client.cancel(tune.id)
    cluster.start_worker()
    done = cluster.wait_status(tune.id, {"succeeded", "failed", "cancelled"}, timeout=300)
    assert done.status == "cancelled"
    assert done.children is not None
    # No trial is asked for after the cancel: the ones made before it have all ended.
    assert done.children["queued"] == done.children["running"] == 0
    made = _trials(cluster, tune.id)
    assert 0 < len(made) < 6
    assert done.children["total"] == len(made)
    assert {cluster.client.job(trial).status for trial in made} <= {"cancelled", "succeeded", "failed"}
