"""A gone worker's row stays until its held messages are back in their queues: a restore that fails (broker
down) is tried again by the next reaper pass instead of leaving the job to the publish grace. Its running jobs
are re-queued as soon as it is known gone, not when their leases expire."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from db.database import Database
from db.jobs import NewJob
from db.migrate import upgrade
from db.models import Job, Worker, utcnow
from db.session import session_scope
from db.workers import WorkerInfo, claimer
from tests.conftest import RecordingPublisher, make_settings
from worker.reaper import Reaper
from worker.unacked import Held


class FlakyUnacked:
    """Unacknowledged messages kept in memory (the ``Unacked`` boundary, injected); the first restore fails as
    it does while the broker is down."""

    def __init__(self, held: list[Held]) -> None:
        self.held = list(held)
        self.failures = 1
        self.restored: list[str] = []

    def held_before(self, when: float) -> list[Held]:
        """The held messages delivered before ``when``."""
        return [m for m in self.held if m.delivered_at < when]

    def restore(self, tag: str) -> None:
        """Move the message back to its queue, or fail like a broker that is down."""
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker down")
        self.held = [m for m in self.held if m.tag != tag]
        self.restored.append(tag)


def _seen(db: Database, name: str, last_seen: datetime) -> None:
    """A registered worker whose last heartbeat was at ``last_seen``."""
    db.workers.register(WorkerInfo(name=name, node="n@h", host="h", pid=1, queues=["train"], version="0"))
    with session_scope(db.factory) as session:
        session.execute(update(Worker).where(Worker.name == name).values(last_seen=last_seen))


def test_a_gone_worker_s_row_outlives_a_failed_restore_and_the_next_pass_puts_its_message_back(
    tmp_path: Path, database_url: str
) -> None:
    # An hour of publish grace: only the put-back can bring the job back.
    settings = make_settings(tmp_path, database_url, worker_stale_s=5.0, heartbeat_s=1.0, publish_grace_s=3600.0)
    upgrade(settings.database_url)
    db = Database(settings)
    try:
        tenant = db.keys.ensure_tenant("acme")
        job = db.jobs.submit(NewJob(tenant, "train", {}), publishing=True).job
        last_seen = utcnow() - timedelta(minutes=1)
        _seen(db, "the-killed-worker", last_seen)
        unacked = FlakyUnacked([Held(tag="t1", job_id=job.id, delivered_at=last_seen.timestamp() - 1)])
        publisher = RecordingPublisher()
        reaper = Reaper(settings, db, publisher, unacked)

        failed = reaper.run_once()
        assert failed.restored == []
        assert failed.republished == []
        assert [w.name for w in db.workers.gone()] == ["the-killed-worker"]  # kept for the next pass

        again = reaper.run_once()
        assert again.restored == [job.id]
        assert unacked.restored == ["t1"]
        assert db.workers.gone() == []  # forgotten once its message is back
        assert reaper.run_once().restored == []
        assert publisher.published == []
        assert db.jobs.get_any(job.id).status == "queued"
    finally:
        db.dispose()


def test_a_gone_worker_that_held_nothing_is_forgotten_at_once(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, worker_stale_s=5.0, heartbeat_s=1.0)
    upgrade(settings.database_url)
    db = Database(settings)
    try:
        _seen(db, "idle", utcnow() - timedelta(minutes=1))
        assert Reaper(settings, db, RecordingPublisher(), FlakyUnacked([])).run_once().restored == []
        assert db.workers.gone() == []
    finally:
        db.dispose()


def test_a_gone_worker_s_running_job_is_requeued_and_published_without_waiting_for_its_lease(
    tmp_path: Path, database_url: str
) -> None:
    # A ten-minute lease and an hour of publish grace: only the gone worker's row can bring the job back now.
    settings = make_settings(
        tmp_path, database_url, worker_stale_s=5.0, heartbeat_s=1.0, lease_s=600.0, publish_grace_s=3600.0
    )
    upgrade(settings.database_url)
    db = Database(settings)
    try:
        tenant = db.keys.ensure_tenant("acme")
        job = db.jobs.submit(NewJob(tenant, "train", {}), publishing=True).job
        kept = db.jobs.submit(NewJob(tenant, "train", {}), publishing=True).job
        _seen(db, "the-killed-worker", utcnow() - timedelta(minutes=1))  # host "h", pid 1
        assert db.jobs.claim(job.id, claimer("h", 1)) is not None
        assert db.jobs.claim(kept.id, claimer("h", 2)) is not None
        with session_scope(db.factory) as session:  # both leases last renewed a minute ago
            session.execute(update(Job).values(lease_expires_at=utcnow() + timedelta(seconds=600 - 60)))
        publisher = RecordingPublisher()
        report = Reaper(settings, db, publisher, FlakyUnacked([])).run_once()
        assert report.requeued == [job.id]
        assert report.republished == [job.id]
        assert publisher.published == [job.id]
        again = db.jobs.get_any(job.id)
        assert (again.status, again.attempts) == ("queued", 1)
        assert again.published_at is not None
        assert db.jobs.get_any(kept.id).status == "running"  # no gone worker claimed it
        assert db.workers.gone() == []
    finally:
        db.dispose()


def test_a_live_worker_that_reuses_a_gone_one_s_host_and_pid_keeps_its_job(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, worker_stale_s=5.0, heartbeat_s=1.0, lease_s=600.0)
    upgrade(settings.database_url)
    db = Database(settings)
    try:
        tenant = db.keys.ensure_tenant("acme")
        job = db.jobs.submit(NewJob(tenant, "train", {}), publishing=True).job
        _seen(db, "the-killed-worker", utcnow() - timedelta(minutes=1))  # host "h", pid 1
        _seen(db, "its-successor", utcnow())  # the same host and pid, heartbeating now
        assert db.jobs.claim(job.id, claimer("h", 1)) is not None
        with session_scope(db.factory) as session:
            session.execute(update(Job).values(lease_expires_at=utcnow() + timedelta(seconds=600 - 60)))
        report = Reaper(settings, db, RecordingPublisher(), FlakyUnacked([])).run_once()
        assert report.requeued == []
        assert db.jobs.get_any(job.id).status == "running"
    finally:
        db.dispose()


def test_a_gone_worker_whose_lease_was_renewed_after_its_last_heartbeat_keeps_its_row_until_its_job_is_settled(
    tmp_path: Path, database_url: str
) -> None:
    # The worker's presence went stale before its lease-keeper's last renewal: the first pass that sees it gone
    # must not forget it, or its job would wait for the whole lease.
    settings = make_settings(
        tmp_path, database_url, worker_stale_s=5.0, heartbeat_s=1.0, lease_s=600.0, publish_grace_s=3600.0
    )
    upgrade(settings.database_url)
    db = Database(settings)
    try:
        tenant = db.keys.ensure_tenant("acme")
        job = db.jobs.submit(NewJob(tenant, "train", {}), publishing=True).job
        _seen(db, "the-killed-worker", utcnow() - timedelta(seconds=6))  # host "h", pid 1
        assert db.jobs.claim(job.id, claimer("h", 1)) is not None  # its lease renewed just now
        reaper = Reaper(settings, db, RecordingPublisher(), FlakyUnacked([]))
        assert reaper.run_once().requeued == []
        assert [w.name for w in db.workers.gone()] == ["the-killed-worker"]  # kept for a later pass
        with session_scope(db.factory) as session:  # later: the lease has not been renewed for 10 s
            session.execute(update(Job).values(lease_expires_at=utcnow() + timedelta(seconds=600 - 10)))
        assert reaper.run_once().requeued == [job.id]
        assert db.jobs.get_any(job.id).status == "queued"
        assert db.workers.gone() == []  # settled: forgotten now
    finally:
        db.dispose()
