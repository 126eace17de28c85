"""The automatic retry policy (``max_retries``): a retryable failure resubmits the job, linked by ``retry_of``
and numbered, in the transaction of the failure itself; other failures and used-up budgets do not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from db.database import Database
from db.jobs import NewJob
from db.models import Job, utcnow
from db.session import session_scope
from tensorq.core.errors import InvalidRequest, TensorQError
from tensorq.core.retry_policy import RETRYABLE_CODES, retryable
from tensorq.core.settings import Settings
from tests.conftest import RecordingPublisher
from worker.context import HandlerResult, JobContext
from worker.reaper import Reaper
from worker.runner import JobRunner


def _out_of_memory(ctx: JobContext) -> HandlerResult:
    raise TensorQError("the job needed more memory than its worker allows", code="resource_exhausted")


def _submit(db: Database, **kw: object) -> str:
    tenant = db.keys.ensure_tenant("acme")
    return db.jobs.submit(NewJob(tenant, "train", {"architecture": "mlp"}, name="nightly", tags=("a",), **kw)).job.id


def _jobs(db: Database) -> int:
    with session_scope(db.factory) as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def test_the_retryable_codes_are_infrastructure_faults_only() -> None:
    assert {"resource_exhausted", "storage_unavailable", "worker_lost", "timeout"} <= RETRYABLE_CODES
    assert not retryable({"code": "invalid_request"})
    assert not retryable({"code": "job_error"})
    assert not retryable(None)
    assert retryable({"code": "worker_lost", "message": ""})


def test_a_retryable_failure_is_resubmitted_until_max_retries_is_used(settings: Settings, db: Database) -> None:
    runner = JobRunner(settings, db, {"train": _out_of_memory})
    publisher = RecordingPublisher()
    reaper = Reaper(settings.model_copy(update={"publish_grace_s": 0.0}), db, publisher)
    chain = [_submit(db, max_retries=2)]
    for expected_retry in (1, 2):
        assert runner.run(chain[-1]) == "failed"
        # The retry exists as soon as the failure is committed: the same transaction wrote both.
        retry = db.jobs.list(db.keys.ensure_tenant("acme"), status="queued")[0][0]
        assert retry.retry_of == chain[-1]
        assert retry.retry_number == expected_retry
        assert (retry.spec, retry.name, retry.tags, retry.max_retries) == ({"architecture": "mlp"}, "nightly", ["a"], 2)
        assert retry.published_at is None
        events = db.jobs.events(retry.tenant_id, chain[-1])
        assert events[-1].to_status == "failed"
        assert events[-1].data["retry_job_id"] == retry.id
        with session_scope(db.factory) as session:  # past the outbox's settle time
            session.execute(update(Job).where(Job.id == retry.id).values(updated_at=utcnow() - timedelta(seconds=5)))
        assert reaper.run_once().republished == [retry.id]
        assert publisher.published[-1] == retry.id
        chain.append(retry.id)
    assert runner.run(chain[-1]) == "failed"
    assert _jobs(db) == 3  # the budget is used: no third retry
    assert db.jobs.get_any(chain[-1]).retry_number == 2


def test_a_failure_of_the_spec_itself_is_not_retried(settings: Settings, db: Database) -> None:
    def bad_spec(ctx: JobContext) -> HandlerResult:
        raise InvalidRequest("column 'city' is not numeric")

    def crash(ctx: JobContext) -> HandlerResult:
        raise RuntimeError("a bug in the job")

    for handler in (bad_spec, crash):
        job_id = _submit(db, max_retries=3)
        assert JobRunner(settings, db, {"train": handler}).run(job_id) == "failed"
    assert _jobs(db) == 2


def test_no_policy_means_no_retry(settings: Settings, db: Database) -> None:
    assert JobRunner(settings, db, {"train": _out_of_memory}).run(_submit(db)) == "failed"
    assert _jobs(db) == 1


def test_a_job_lost_with_its_worker_is_retried_by_the_reaper(settings: Settings, db: Database) -> None:
    job_id = _submit(db, max_retries=1, max_attempts=1)
    assert db.jobs.claim(job_id, "w1") is not None
    with session_scope(db.factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(1)))
    assert db.jobs.requeue_expired().failed == [job_id]
    assert db.jobs.get_any(job_id).error["code"] == "worker_lost"
    (retry,), _ = db.jobs.list(db.keys.ensure_tenant("acme"), status="queued")
    assert retry.retry_of == job_id
    assert retry.retry_number == 1
