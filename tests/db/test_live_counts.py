"""The queued and running counts of ``/metrics`` come from running totals kept by every transaction that adds or
moves jobs (``db.livecounts``): after each kind of move they equal a count of the jobs table, and a fold of the
totals changes no sum."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from db.database import Database
from db.jobs import NewJob
from db.livecounts import FOLD_ABOVE, live_sums
from db.models import Job, LiveJobDelta, utcnow
from db.records import aware
from db.session import read_scope, session_scope


def _counted(db: Database) -> dict[tuple[str, str], int]:
    """Queued and running jobs per (type, status), counted from the jobs table."""
    with read_scope(db.factory) as conn:
        rows = conn.execute(
            select(Job.type, Job.status, func.count())
            .where(Job.status.in_(("queued", "running")))
            .group_by(Job.type, Job.status)
        ).all()
    return {(t, s): int(n) for t, s, n in rows}


def _from_totals(db: Database) -> dict[tuple[str, str], int]:
    return {(t, s): n for t, s, n, _ in db.stats.live()}


def test_the_totals_follow_submits_claims_ends_cancels_and_requeues(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    predicts = [db.jobs.submit(NewJob(tenant, "predict", {})).job.id for _ in range(3)]
    trains = db.jobs.submit_many([NewJob(tenant, "train", {}) for _ in range(2)]).jobs
    assert _from_totals(db) == _counted(db) == {("predict", "queued"): 3, ("train", "queued"): 2}
    first = db.jobs.claim(predicts[0], "w1")
    second = db.jobs.claim(predicts[1], "w1")
    third = db.jobs.claim(trains[0].id, "w1")
    assert first is not None
    assert second is not None
    assert third is not None
    assert _from_totals(db) == _counted(db)
    assert db.jobs.finish(predicts[0], first.lease_token, {"ok": True})
    assert db.jobs.fail(predicts[1], second.lease_token, {"code": "boom", "message": "boom"})
    db.jobs.cancel(tenant, trains[1].id)
    assert _from_totals(db) == _counted(db) == {("predict", "queued"): 1, ("train", "running"): 1}
    with session_scope(db.factory) as session:  # the running train's lease runs out: it is queued again
        session.execute(update(Job).where(Job.id == trains[0].id).values(lease_expires_at=utcnow() - timedelta(1)))
    db.jobs.requeue_expired()
    assert _from_totals(db) == _counted(db) == {("predict", "queued"): 1, ("train", "queued"): 1}
    oldest = {t: first for t, s, _, first in db.stats.live() if s == "queued"}
    assert aware(oldest["predict"]) == db.jobs.get_any(predicts[2]).created_at


def test_a_fold_keeps_every_sum_and_leaves_one_row_per_type_and_status(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    db.jobs.submit_many([NewJob(tenant, "predict", {}) for _ in range(5)])
    for _ in range(FOLD_ABOVE):  # more rows than a scrape lets stand
        db.jobs.submit(NewJob(tenant, "explain", {}))
    counted = _counted(db)
    assert _from_totals(db) == counted  # this read folds
    with read_scope(db.factory) as conn:
        sums, rows = live_sums(conn)
        assert conn.execute(select(func.count()).select_from(LiveJobDelta)).scalar_one() == rows == 2
    assert sums == counted == {("predict", "queued"): 5, ("explain", "queued"): FOLD_ABOVE}
