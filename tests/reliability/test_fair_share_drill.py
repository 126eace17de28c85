"""Fair share with a real `tensorq worker`, real Redis and Postgres: one tenant's flood of trainings does not hold
back another tenant's job, through a kill -9 of the only worker's pool child during the flood; the cluster
fixture then checks the invariants (nothing lost, nothing run twice, every lease released)."""

from __future__ import annotations

import time

import pytest

from tensorq.client import TensorQClient
from tests.reliability.harness import Cluster, kill_pool_children, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SHORT_TRAIN = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2, "seed": 1}


def test_a_flood_of_24_trainings_lets_another_tenant_start_within_2_of_them_through_a_kill_9(
    make_cluster, record_property
) -> None:
    cluster: Cluster = make_cluster()
    worker = cluster.start_worker(queues="train")
    bravo = TensorQClient(cluster.api.url, cluster.admin_db.keys.create("bravo"))
    try:
        flood = [cluster.client.submit("train", {**SHORT_TRAIN, "seed": i}).id for i in range(24)]
        late = bravo.submit("train", SHORT_TRAIN).id
        outlook = bravo.job(late)
        assert outlook.status == "queued"
        # The first of the flood runs now; kill -9 the pool child under it (Celery starts another one).
        wait_for(lambda: any(cluster.client.job(j).status == "running" for j in flood), 120, "a flood job running")
        kill_pool_children(worker)
        done = wait_for(
            lambda: (j := bravo.job(late, wait=2)).status in ("succeeded", "failed") and j, 300, "B's job to end"
        )
        assert done.status == "succeeded", done.error
        assert done.started_at is not None
        # Runs of the flood that started before B's job did (a run killed and started again counts twice).
        before = 0
        for job_id in flood:
            before += sum(
                1 for e in cluster.client.events(job_id) if e.to_status == "running" and e.created_at < done.started_at
            )
        record_property("fair_share.flood_runs_before_b", before)
        record_property("fair_share.b_position_when_submitted", outlook.queue_position)
        print(f"\n[drill] fair share: {before} of A's runs started before B's job (B was at {outlook.queue_position})")
        assert before <= 2
        assert sum(1 for e in bravo.events(late) if e.to_status == "running") == 1
        # Cancel what is left of the flood (the fixture checks every job ended on a legal path).
        for job_id in flood:
            if cluster.client.job(job_id).status == "queued":
                cluster.client.cancel(job_id)
        for job_id in flood:
            cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=300)
        time.sleep(0.5)
    finally:
        bravo.close()
