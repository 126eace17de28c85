"""The worker registry and the job figures on SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from db.database import Database
from db.jobs import NewJob
from db.jobstats import job_durations, jobs_by_type_and_status
from db.models import Job, Worker, utcnow
from db.session import session_scope
from db.workers import WorkerInfo, WorkerRegistry

QUEUES = {"train": "train", "predict": "predict", "explain": "explain", "import": "predict"}


def _info(name: str, queues: list[str]) -> WorkerInfo:
    return WorkerInfo(name=name, node="n@h", host="h", pid=1, queues=queues, version="0.1.0", gpu=None)


def _age(db: Database, table: type, column: str, key: str, seconds: float) -> None:
    with session_scope(db.factory) as session:
        pk = Worker.name if table is Worker else Job.id
        session.execute(update(table).where(pk == key).values({column: utcnow() - timedelta(seconds=seconds)}))


def test_register_heartbeat_live_and_stale(db: Database) -> None:
    registry = WorkerRegistry(db.factory, stale_s=30)
    registry.register(_info("a", ["train"]))
    registry.register(_info("b", ["predict", "explain"]))
    assert [w.name for w in registry.live()] == ["a", "b"]
    assert registry.served_queues() == {"train", "predict", "explain"}
    tenant = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(tenant, "train", {})).job.id
    assert registry.heartbeat("a", job_id) is True
    a = registry.live()[0]
    assert (a.current_job, a.current_job_tenant) == (job_id, tenant)
    _age(db, Worker, "last_seen", "b", 60)
    assert [w.name for w in registry.live()] == ["a"]
    assert registry.served_queues() == {"train"}
    assert registry.heartbeat("nobody", None) is False
    registry.leave("a")
    assert registry.live() == []


def test_queue_depth_running_oldest_age_and_live_workers(db: Database) -> None:
    registry = WorkerRegistry(db.factory, stale_s=30)
    tenant = db.keys.ensure_tenant("acme")
    old = db.jobs.submit(NewJob(tenant, "train", {})).job.id
    db.jobs.submit(NewJob(tenant, "train", {}))
    db.jobs.submit(NewJob(tenant, "import", {}))
    running = db.jobs.submit(NewJob(tenant, "predict", {})).job.id
    assert db.jobs.claim(running, "w") is not None
    _age(db, Job, "created_at", old, 120)
    registry.register(_info("a", ["train"]))
    stats = {q.name: q for q in registry.queues(QUEUES)}
    assert list(stats) == ["train", "predict", "explain"]
    assert (stats["train"].depth, stats["train"].running, stats["train"].live_workers) == (2, 0, 1)
    assert 119 <= stats["train"].oldest_queued_age_s < 200
    assert (stats["predict"].depth, stats["predict"].running, stats["predict"].live_workers) == (1, 1, 0)
    assert stats["explain"].depth == 0
    assert stats["explain"].oldest_queued_age_s is None


def test_job_durations_by_type_and_outcome(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    for seconds, outcome in ((0.3, "succeeded"), (3.0, "succeeded"), (100.0, "failed")):
        job_id = db.jobs.submit(NewJob(tenant, "train", {})).job.id
        claim = db.jobs.claim(job_id, "w1")
        with session_scope(db.factory) as session:  # as if it had started ``seconds`` ago
            session.execute(
                update(Job).where(Job.id == job_id).values(started_at=utcnow() - timedelta(seconds=seconds))
            )
        if outcome == "succeeded":
            assert db.jobs.finish(job_id, claim.lease_token, {})
        else:
            assert db.jobs.fail(job_id, claim.lease_token, {"code": "x", "message": "x"})
    db.jobs.submit(NewJob(tenant, "predict", {}))  # queued: not counted
    db.jobs.cancel(tenant, db.jobs.submit(NewJob(tenant, "predict", {})).job.id)  # never ran: no run time
    found = {(h.job_type, h.outcome): h for h in job_durations(db.factory)}
    assert set(found) == {("train", "succeeded"), ("train", "failed")}
    ok = found[("train", "succeeded")]
    assert ok.count == 2
    assert abs(ok.total_s - 3.3) < 0.1
    assert dict(ok.buckets)[0.1] == 0
    assert dict(ok.buckets)[0.5] == 1
    assert dict(ok.buckets)[5] == 2
    assert dict(found[("train", "failed")].buckets)[60] == 0
    assert dict(found[("train", "failed")].buckets)[300] == 1
    counts = jobs_by_type_and_status(db.factory)
    assert counts[("train", "succeeded")] == 2
    assert counts[("train", "failed")] == 1
    assert counts[("predict", "queued")] == 1
    assert counts[("predict", "cancelled")] == 1
