"""``JobStore.submit_many``: one transaction per batch, the queued quota over the whole batch, one key for it."""

from __future__ import annotations

import threading

import pytest

from db.database import Database
from db.jobs import NewJob
from tensorq.core.errors import QuotaExceeded


def test_parallel_repeats_of_one_keyed_batch_make_one_set_of_jobs(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    news = [NewJob(tenant, "predict", {"n": i}) for i in range(20)]
    results: list[tuple[list[str], bool]] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            batch = db.jobs.submit_many(news, idempotency_key="k", request_hash="h", queued_limit=1000)
            results.append(([j.id for j in batch.jobs], batch.created))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({tuple(ids) for ids, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    ids = results[0][0]
    assert [db.jobs.get_any(job_id).spec["n"] for job_id in ids] == list(range(20))
    assert db.jobs.count_queued(tenant) == 20


def test_a_batch_over_the_queued_quota_queues_nothing(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    db.jobs.submit_many([NewJob(tenant, "predict", {})] * 3, queued_limit=5)
    with pytest.raises(QuotaExceeded):
        db.jobs.submit_many([NewJob(tenant, "predict", {})] * 3, queued_limit=5)
    assert db.jobs.count_queued(tenant) == 3
