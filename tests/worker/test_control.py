"""JobControl on a real database: leases renewed by the process's keeper thread, loss noticed, cancels seen."""

from __future__ import annotations

import time

import pytest

from db.database import Database
from db.jobs import NewJob
from tensorq.core.errors import JobCancelled
from worker.control import JobControl, LeaseKeeper


def _running(db: Database) -> tuple[str, str]:
    job_id = db.jobs.submit(NewJob(db.keys.ensure_tenant("acme"), "predict", {})).job.id
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    return job_id, claim.lease_token


def _lease_expiry(db: Database, job_id: str) -> object:
    from sqlalchemy import select

    from db.models import Job
    from db.session import session_scope

    with session_scope(db.factory) as session:
        return session.scalar(select(Job.lease_expires_at).where(Job.id == job_id))


def _eventually(condition: object, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_one_keeper_thread_renews_every_running_lease(db: Database) -> None:
    keeper = LeaseKeeper()
    (first, first_token), (second, second_token) = _running(db), _running(db)
    before = {first: _lease_expiry(db, first), second: _lease_expiry(db, second)}
    with (
        JobControl(db.jobs, first, first_token, heartbeat_s=0.05, keeper=keeper),
        JobControl(db.jobs, second, second_token, heartbeat_s=0.05, keeper=keeper),
    ):
        assert _eventually(lambda: all(_lease_expiry(db, j) > before[j] for j in before))
    assert keeper._thread is not None
    assert keeper._thread.is_alive()
    assert not keeper._controls


def test_a_lost_lease_is_noticed_and_stops_the_job(db: Database) -> None:
    job_id, token = _running(db)
    with JobControl(db.jobs, job_id, token, heartbeat_s=0.05, keeper=LeaseKeeper()) as control:
        assert db.jobs.release(job_id, token, "taken over")
        assert _eventually(control.lease_lost.is_set)
        assert control.should_stop()
        assert control.reason == "lease_lost"


def test_a_cancel_is_seen_at_the_next_check_interval(db: Database) -> None:
    job_id, token = _running(db)
    with JobControl(db.jobs, job_id, token, heartbeat_s=30, check_interval_s=0.05) as control:
        control.check()  # nothing asked yet
        db.jobs.cancel(db.jobs.get_any(job_id).tenant_id, job_id)
        assert _eventually(control.should_stop)
        assert control.reason == "cancelled"
        with pytest.raises(JobCancelled):
            control.check()
