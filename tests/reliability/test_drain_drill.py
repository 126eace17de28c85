"""Drain with a real `tensorq worker`: a worker whose host is marked to drain finishes the job it runs (never
handed back), takes no new one (it stops consuming), and the job it did not take runs on another worker."""

from __future__ import annotations

import socket
import time

import pytest

from tests.reliability.harness import Cluster, claims, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TRAIN = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 40, "seed": 1}


def test_a_draining_worker_finishes_its_job_takes_no_new_one_and_another_worker_runs_it(make_cluster) -> None:
    cluster: Cluster = make_cluster()
    first = cluster.start_worker(queues="train")
    running = cluster.client.submit("train", TRAIN)
    cluster.wait_status(running.id, {"running"})
    cluster.db.drains.mark([socket.gethostname()], "worker-cpu")  # what the autoscaler does to remove it
    waiting = cluster.client.submit("train", {**TRAIN, "epochs": 2})
    done = cluster.wait_status(running.id, {"succeeded", "failed"}, timeout=240)
    assert done.status == "succeeded", done.error
    assert claims(cluster, running.id) == 1  # never handed back
    wait_for(lambda: "stopped consuming" in first.log_path.read_text(), 120, "the worker to stop consuming")
    time.sleep(3)  # a worker still consuming would have claimed it by now
    assert cluster.client.job(waiting.id).status == "queued"
    assert claims(cluster, waiting.id) == 0
    # The autoscaler stops the drained worker and clears its mark; a worker that serves the queue runs the job.
    first.stop()
    cluster.db.drains.clear([socket.gethostname()])
    cluster.start_worker(queues="train")
    assert cluster.wait_status(waiting.id, {"succeeded", "failed"}, timeout=240).status == "succeeded"
    assert claims(cluster, waiting.id) == 1
