"""Retention: the reaper deletes finished jobs past ``job_retention_days`` with their folders, keeps the
model files they trained, and leaves recent and unfinished jobs alone; on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from db.database import Database
from db.jobs import ModelVersionDraft, NewJob
from db.models import Job
from db.session import session_scope
from tensorq.core.settings import Settings
from tests.conftest import RecordingPublisher
from worker.reaper import Reaper


def _finished(db: Database, tenant: str, settings: Settings, days_ago: float, *, model: bool = False) -> str:
    job = db.jobs.submit(NewJob(tenant_id=tenant, type="train", spec={})).job
    claim = db.jobs.claim(job.id, worker="w")
    folder = settings.job_dir(job.id)
    folder.mkdir(parents=True)
    (folder / "checkpoint.weights.h5").write_bytes(b"x" * 10)
    draft = None
    if model:
        (folder / "model.keras").write_bytes(b"PK")
        draft = ModelVersionDraft("kept", str(folder / "model.keras"), "mlp", {}, {})
    assert db.jobs.finish(job.id, claim.lease_token, {}, model=draft)
    with session_scope(db.factory) as session:
        stamp = datetime.now(UTC) - timedelta(days=days_ago)
        session.execute(update(Job).where(Job.id == job.id).values(finished_at=stamp))
    return job.id


def test_the_sweep_removes_old_finished_jobs_only(settings: Settings, db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    old = _finished(db, tenant, settings, days_ago=10, model=True)
    recent = _finished(db, tenant, settings, days_ago=1)
    waiting = db.jobs.submit(NewJob(tenant_id=tenant, type="train", spec={})).job.id
    publisher = RecordingPublisher()
    assert Reaper(settings, db, publisher).run_once().swept == []  # no retention set: nothing goes

    settings.job_retention_days = 7
    assert Reaper(settings, db, publisher).run_once().swept == [old]
    assert {j.id for j in db.jobs.list(tenant)[0]} == {recent, waiting}
    assert not (settings.job_dir(old) / "checkpoint.weights.h5").exists()
    assert (settings.job_dir(old) / "model.keras").is_file()  # the version outlives its job
    assert db.models.resolve(tenant, "kept").training_job_id is None
    assert (settings.job_dir(recent) / "checkpoint.weights.h5").is_file()
    assert Reaper(settings, db, publisher).run_once().swept == []
