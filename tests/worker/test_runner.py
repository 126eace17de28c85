"""The job runner and the reaper on a real database; TensorFlow where a real job runs."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update

from db.database import Database
from db.jobs import NewJob
from db.models import Job, utcnow
from db.session import session_scope
from tensorq.core.settings import Settings
from tests.conftest import RecordingPublisher
from tests.storage import read_only
from worker.context import HandlerResult, JobContext
from worker.reaper import Reaper
from worker.runner import JobRunner


def _job(db: Database, spec: dict | None = None, job_type: str = "train", **kw: object) -> str:
    tenant = db.keys.ensure_tenant("acme")
    return db.jobs.submit(NewJob(tenant, job_type, spec or {}, **kw)).job.id


def test_a_second_delivery_is_skipped(settings: Settings, db: Database) -> None:
    runs: list[str] = []

    def handler(ctx: JobContext) -> HandlerResult:
        runs.append(ctx.job.id)
        return HandlerResult({"ok": True})

    runner = JobRunner(settings, db, {"train": handler})
    job_id = _job(db)
    assert runner.run(job_id) == "succeeded"
    assert runner.run(job_id) == "skipped"
    assert runs == [job_id]


def test_a_cancelled_queued_job_never_runs(settings: Settings, db: Database) -> None:
    runner = JobRunner(settings, db, {"train": lambda ctx: HandlerResult({})})
    job_id = _job(db)
    db.jobs.cancel(db.keys.ensure_tenant("acme"), job_id)
    assert runner.run(job_id) == "skipped"


def test_an_unexpected_error_fails_the_job_naming_its_type_and_keeps_its_text_in_the_log(
    settings: Settings, db: Database
) -> None:
    def handler(ctx: JobContext) -> HandlerResult:
        raise RuntimeError("boom at step 3")

    job_id = _job(db)
    assert JobRunner(settings, db, {"train": handler}).run(job_id) == "failed"
    job = db.jobs.get_any(job_id)
    assert job.error is not None
    assert job.error["code"] == "internal"
    assert job.error["message"] == "unexpected RuntimeError while starting"
    messages = [line.message for line in db.logs.page(job.tenant_id, job_id).lines]
    assert any("boom at step 3" in m for m in messages)


def test_a_worker_whose_lease_was_taken_over_writes_nothing(settings: Settings, db: Database) -> None:
    def handler(ctx: JobContext) -> HandlerResult:
        with session_scope(db.factory) as session:
            session.execute(update(Job).where(Job.id == ctx.job.id).values(lease_expires_at=utcnow() - timedelta(1)))
        db.jobs.requeue_expired()
        assert db.jobs.claim(ctx.job.id, "another-worker") is not None
        return HandlerResult({"from": "the first worker"})

    job_id = _job(db)
    assert JobRunner(settings, db, {"train": handler}).run(job_id) == "lease_lost"
    job = db.jobs.get_any(job_id)
    assert job.status == "running"
    assert job.result is None
    assert job.attempts == 2


def test_timeout_fails_a_real_training_job_with_code_timeout(settings: Settings, db: Database) -> None:
    spec = {
        "architecture": "mlp",
        "dataset": "builtin:breast_cancer",
        "epochs": 10_000,
        "batch_size": 4,
        "validation_split": 0.1,
        "learning_rate": 0.001,
    }
    job_id = _job(db, spec, timeout_s=2)
    assert JobRunner(settings, db).run(job_id) == "failed"
    job = db.jobs.get_any(job_id)
    assert job.error["code"] == "timeout"
    assert db.jobs.versions_of_job(job_id) == []


def test_a_real_mlp_trains_and_registers_feature_names(settings: Settings, db: Database) -> None:
    spec = {
        "architecture": "mlp",
        "dataset": "builtin:breast_cancer",
        "epochs": 15,
        "batch_size": 32,
        "validation_split": 0.2,
        "test_split": 0.2,
        "learning_rate": 0.003,
        "seed": 1,
    }
    job_id = _job(db, spec)
    assert JobRunner(settings, db).run(job_id) == "succeeded"
    job = db.jobs.get_any(job_id)
    assert job.result["metrics"]["test_accuracy"] >= 0.93
    version = db.jobs.versions_of_job(job_id)[0]
    assert version.signature["input_shape"] == [30]
    assert version.signature["feature_names"][0] == "mean radius"


def test_the_reaper_requeues_expired_leases_and_republishes_lost_messages(settings: Settings, db: Database) -> None:
    publisher = RecordingPublisher()
    reaper = Reaper(settings, db, publisher)
    lost_message = _job(db)
    crashed = _job(db)
    db.jobs.mark_published(crashed)
    assert db.jobs.claim(crashed, "dead-worker") is not None
    with session_scope(db.factory) as session:
        session.execute(update(Job).values(updated_at=utcnow() - timedelta(seconds=10)))
        session.execute(update(Job).where(Job.id == crashed).values(lease_expires_at=utcnow() - timedelta(1)))
    report = reaper.run_once()
    assert report.requeued == [crashed]
    assert sorted(report.republished) == sorted([crashed, lost_message])
    assert sorted(publisher.published) == sorted([crashed, lost_message])
    assert reaper.run_once().republished == []  # published now: nothing more to do


def test_the_reaper_keeps_jobs_queued_while_the_broker_is_down(settings: Settings, db: Database) -> None:
    publisher = RecordingPublisher()
    publisher.down = True
    job_id = _job(db)
    with session_scope(db.factory) as session:
        session.execute(update(Job).values(updated_at=utcnow() - timedelta(seconds=10)))
    assert Reaper(settings, db, publisher).run_once().republished == []
    publisher.down = False
    assert Reaper(settings, db, publisher).run_once().republished == [job_id]


def test_a_tenant_at_its_running_quota_is_deferred_and_republished(settings: Settings, db: Database) -> None:
    settings.tenant_quotas = {"acme": {"quota_running_jobs": 1}}
    publisher = RecordingPublisher()
    first, second = _job(db), _job(db)
    assert db.jobs.claim(first, "elsewhere") is not None
    runner = JobRunner(settings, db, {"train": lambda ctx: HandlerResult({})}, publisher=publisher)
    assert runner.run(second) == "deferred"
    assert db.jobs.get_any(second).status == "queued"
    assert publisher.published == [second]
    other = db.jobs.submit(NewJob(db.keys.ensure_tenant("globex"), "train", {})).job.id
    assert runner.run(other) == "succeeded"


def test_the_reaper_leaves_jobs_that_merely_wait_in_a_long_queue(settings: Settings, db: Database) -> None:
    publisher = RecordingPublisher()
    waiting = [_job(db) for _ in range(3)]
    for job_id in waiting:
        db.jobs.mark_published(job_id)
    with session_scope(db.factory) as session:
        session.execute(update(Job).values(published_at=utcnow() - timedelta(hours=1)))
    publisher.depths = {"train": 3}
    assert Reaper(settings, db, publisher).run_once().republished == []
    # A job never published (its publish failed while Redis was down) has no message: it alone is re-published.
    unsent = _job(db)
    with session_scope(db.factory) as session:
        earlier = utcnow() - timedelta(minutes=1)
        session.execute(update(Job).where(Job.id == unsent).values(published_at=None, updated_at=earlier))
    assert Reaper(settings, db, publisher).run_once().republished == [unsent]
    publisher.depths = {"train": 0}  # the broker forgot its queue
    assert sorted(Reaper(settings, db, publisher).run_once().republished) == sorted(waiting)


def test_the_reaper_counts_every_job_type_of_a_queue_against_its_depth(settings: Settings, db: Database) -> None:
    publisher = RecordingPublisher()
    predicts = [_job(db, job_type="predict") for _ in range(2)]
    imports = [_job(db, job_type="import") for _ in range(2)]
    with session_scope(db.factory) as session:
        session.execute(update(Job).values(published_at=utcnow() - timedelta(hours=1)))
    publisher.depths = {"predict": 4}  # imports share the predict queue: four messages for four jobs
    assert Reaper(settings, db, publisher).run_once().republished == []
    publisher.depths = {"predict": 2}  # two of them lost: which ones the broker cannot say, so all go again
    assert sorted(Reaper(settings, db, publisher).run_once().republished) == sorted(predicts + imports)


def test_a_read_only_artifact_store_is_retried_then_failed_as_infrastructure(settings: Settings, db: Database) -> None:
    with read_only(settings.artifact_dir / "jobs"):  # EROFS as root, EACCES otherwise: both storage faults
        spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1}
        job_id = _job(db, spec, max_attempts=2)
        publisher = RecordingPublisher()
        runner = JobRunner(settings, db, publisher=publisher)
        assert runner.run(job_id) == "retry_later"
        job = db.jobs.get_any(job_id)
        assert (job.status, job.attempts, publisher.published) == ("queued", 1, [job_id])
        assert runner.run(job_id) == "failed"
    job = db.jobs.get_any(job_id)
    assert job.attempts == 2
    assert job.error["code"] == "storage_unavailable"
    assert str(settings.artifact_dir) not in json.dumps(job.error)


def test_a_job_over_the_memory_ceiling_fails_as_resource_exhausted_and_the_next_one_runs(
    settings: Settings, db: Database
) -> None:
    import resource

    import numpy as np

    settings.job_memory_mb = 256
    settings.gpu = "none"
    before = resource.getrlimit(resource.RLIMIT_AS)

    def greedy(ctx: JobContext) -> HandlerResult:
        block = np.ones(2 * 1024**3 // 8)  # 2 GiB
        return HandlerResult({"sum": float(block[:10].sum())})

    def modest(ctx: JobContext) -> HandlerResult:
        return HandlerResult({"sum": float(np.ones(1024**2 // 8).sum())})  # 1 MiB

    runner = JobRunner(settings, db, {"train": greedy, "predict": modest})
    greedy_job = _job(db)
    assert runner.run(greedy_job) == "failed"
    assert db.jobs.get_any(greedy_job).error["code"] == "resource_exhausted"
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    modest_job = _job(db, job_type="predict")
    assert runner.run(modest_job) == "succeeded"


def test_a_worker_on_a_draining_host_gives_the_job_back_unclaimed(settings: Settings, db: Database) -> None:
    """The autoscaler marked this host to drain: the delivery is published again for another worker, the job
    stays queued, and a worker elsewhere runs it once."""
    runs: list[str] = []

    def handler(ctx: JobContext) -> HandlerResult:
        runs.append(ctx.job.id)
        return HandlerResult({"ok": True})

    publisher = RecordingPublisher()
    runner = JobRunner(settings, db, {"train": handler}, publisher=publisher)
    job_id = _job(db)
    db.drains.mark([runner.host], "worker-cpu")
    assert runner.run(job_id) == "draining"
    assert db.jobs.get_any(job_id).status == "queued"
    assert publisher.published == [job_id]
    db.drains.clear([runner.host])  # now "another worker" (on this host, no longer draining)
    assert JobRunner(settings, db, {"train": handler}, publisher=publisher).run(job_id) == "succeeded"
    assert runs == [job_id]
