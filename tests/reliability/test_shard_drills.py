"""Reliability drill of sharded jobs: kill -9 of the worker that runs a shard. Real Redis, real Postgres, real
``tensorq worker`` processes; the cluster fixture checks the invariants after it, parents' totals included
(``harness.check_parents``)."""

from __future__ import annotations

import time

import pytest

from tests.reliability.harness import Cluster, claims, state_events, wait_for
from tests.reliability.test_batch_drills import _report, _tiny_model

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.0, 3.4, 1.5, 0.2]] * 4


def test_drill_14_kill_9_in_the_middle_of_a_shard(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    first = cluster.start_worker()
    model = _tiny_model(cluster)
    # lime with many samples: each shard runs for seconds, a window to kill its worker in.
    spec = {"model": model, "inputs": ROWS, "method": "lime", "nsamples": 20000, "seed": 1, "shards": 2}
    parent = cluster.client.submit("explain", spec)
    shards = [job.id for job in cluster.client.jobs(parent=parent.id).jobs]
    assert len(shards) == 2
    running = wait_for(
        lambda: next((i for i in shards if cluster.client.job(i).status == "running"), None),
        timeout=60,
        what="a shard running",
    )
    first.kill()
    killed = time.monotonic()
    cluster.start_worker()
    done = cluster.wait_status(parent.id, {"succeeded", "failed", "cancelled"}, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.children is not None
    assert done.children["succeeded"] == 2
    assert len(done.result["attributions"]) == len(ROWS)
    for shard in shards:
        ends = [e for e in state_events(cluster, shard) if e.to_status == "succeeded"]
        assert len(ends) == 1  # every shard ends exactly once
    assert claims(cluster, running) == 2  # the killed one ran again on the other worker
    parent_path = [(e.from_status, e.to_status) for e in state_events(cluster, parent.id)]
    assert parent_path == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    _report(record_property, "kill9_shard", drill=time.monotonic() - started, kill_to_done=time.monotonic() - killed)
