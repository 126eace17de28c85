"""Runs one job end to end: claim, heartbeat, call the handler, record the outcome."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator

from db.database import Database
from db.fairshare import FairShare
from db.jobs import Deferred
from db.records import JobRecord
from db.workers import claimer
from tensorq.core.routing import Publisher
from tensorq.core.settings import Settings
from worker import joblog
from worker.batch import Batcher
from worker.context import Handler, JobContext
from worker.control import JobControl
from worker.memory import ceiling_applies, job_memory_ceiling
from worker.outcome import JobOutcome, outcome_of
from worker.presence import note_job
from worker.requeue import Requeue
from worker.retry import with_backoff
from worker.tf_boot import wait_until_loaded

log = logging.getLogger(__name__)
# How stale this process's view of its host's drain mark may be; the autoscaler stops a drained host a step
# (TENSORQ_AUTOSCALE_INTERVAL_S, at least 2 s in practice) after marking it, and only once it runs nothing.
DRAIN_CHECK_S = 1.0


@contextlib.contextmanager
def _idle_after() -> Iterator[None]:
    """Tell this worker's presence it runs nothing once the block ends."""
    try:
        yield
    finally:
        note_job(None)


def _default_handlers() -> dict[str, Handler]:
    """The handler of each job type (imported on first use: they reach the TensorFlow core lazily)."""
    from worker.handlers import HANDLERS

    return HANDLERS


class JobRunner:
    """One per worker process: holds the database and runs jobs by id."""

    def __init__(
        self,
        settings: Settings,
        db: Database | None = None,
        handlers: dict[str, Handler] | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.settings = settings
        self.db = db or Database(settings)
        self.handlers: dict[str, Handler] = handlers if handlers is not None else _default_handlers()
        self.publisher = publisher
        self.host = socket.gethostname()
        self.name = claimer(self.host, os.getpid())  # the name the worker registry knows it by too
        self.memory_headroom_mb = settings.job_memory_mb if ceiling_applies(settings.gpu) else 0
        self.requeue = Requeue(self.db.jobs, publisher)
        self.fair = FairShare(self.db.factory, settings.weight)
        self.ran: str | None = None  # the job the last delivery ran (fair share may pick another than it named)
        self._draining = False
        self._drain_read_at = -DRAIN_CHECK_S
        # Micro-batches (worker/batch.py): a job of one runs alone through ``run_claimed``.
        self.batcher = Batcher(settings, self.db, self.name, self.requeue, self.run_claimed, self.memory_headroom_mb)

    def run(self, job_id: str) -> str:
        """Claim and run the job; returns how it ended here ('skipped' when the claim was taken, 'batched' when
        it already succeeded in a batch this process ran, 'draining' when this worker's host drains: the job is
        published again for another worker, unclaimed). With fair share the delivery runs the next job of its
        queue (``ran`` names it), which may be another than ``job_id``.

        With micro-batching on (``batch_max_jobs`` > 1) a predict or explain job on inline inputs is claimed and
        run together with queued jobs of the same model version and settings (``worker/batch.py``)."""
        self.ran = job_id
        if self.settings.batch_max_jobs > 1 and self.batcher.ended_here.take(job_id):
            log.debug("job %s: succeeded in a batch of this process; skipping its delivery", job_id)
            return "batched"
        if self.draining():
            return self.requeue.give_back(job_id)
        job_id = self.ran = self.fair_pick(job_id)
        if self.settings.batch_max_jobs > 1:
            return self.batcher.run(job_id)
        limit = functools.partial(self.settings.quota, name="quota_running_jobs")
        claim = with_backoff(lambda: self.db.jobs.claim(job_id, self.name, limit), what=f"claim {job_id}")
        if claim is None:
            log.info("job %s: not claimable (taken, cancelled or finished); skipping", job_id)
            return "skipped"
        if isinstance(claim, Deferred):
            return self.requeue.defer(job_id, claim.reason)
        return self.run_claimed(claim.job, claim.lease_token)

    def draining(self) -> bool:
        """Whether this worker's host drains (``db/drains.py``), read at most every ``DRAIN_CHECK_S``."""
        now = time.monotonic()
        if now - self._drain_read_at >= DRAIN_CHECK_S:
            self._draining = with_backoff(lambda: self.db.drains.is_draining(self.host), what="read the drain mark")
            self._drain_read_at = now
        return self._draining

    def fair_pick(self, job_id: str) -> str:
        """The job a delivery of ``job_id`` runs: in a queue of ``fair_share_queues`` the next job of that queue
        (``db/fairshare.py``: the delivery is a token for its queue), else ``job_id``; ``job_id`` too when the
        fair share cannot be read."""
        if not self.settings.fair_share_queues:
            return job_id
        limit = functools.partial(self.settings.quota, name="quota_running_jobs")
        queues = self.settings.fair_share_queues
        try:
            picked = self.fair.pick_for(job_id, queues, limit)
        except Exception:  # noqa: BLE001 - the claim of the job named then says what the database allows
            log.warning("job %s: could not read the fair share; running the job named", job_id, exc_info=True)
            return job_id
        if picked is not None and picked != job_id:
            log.info("delivery of job %s runs job %s, the next by fair share", job_id, picked)
        return picked or job_id

    def run_claimed(self, job: JobRecord, token: str) -> str:
        """Run a job this worker has claimed under ``token`` and record its outcome; how it ended here."""
        control = JobControl(
            self.db.jobs,
            job.id,
            token,
            heartbeat_s=self.settings.heartbeat_s,
            timeout_s=job.timeout_s,
            progress_interval_s=self.settings.progress_min_interval_s,
        )
        roots = (self.settings.artifact_dir, self.settings.scratch_dir, self.settings.store_url())
        note_job(job.id)
        with control, joblog.capture(self.db.logs, job.id, job.attempts, roots), _idle_after():
            log.info("%s job %s: attempt %d of %d on %s", job.type, job.id, job.attempts, job.max_attempts, self.name)
            try:
                control.check()
                wait_until_loaded(control.check)  # a child claims while TensorFlow loads (worker/tf_boot.py)
                with job_memory_ceiling(self.memory_headroom_mb):
                    outcome = self.handlers[job.type](JobContext(self.settings, self.db, job, control, self.publisher))
            except Exception as exc:  # noqa: BLE001 - any error in the job itself ends it (worker/outcome.py)
                return self.conclude(job, token, outcome_of(control.cause(exc), job))
            if control.lease_lost.is_set():
                return "lease_lost"
            return self._write(
                job, "succeeded", lambda: self.db.jobs.finish(job.id, token, outcome.result, outcome.model)
            )

    def conclude(self, job: JobRecord, token: str, outcome: JobOutcome) -> str:
        """Carry out ``outcome`` for a job claimed under ``token`` (``outcome_of`` chose it); how it ended here."""
        store = self.db.jobs
        error = outcome.error or {}
        if outcome.end == "failed":
            return self._write(job, "failed", lambda: store.fail(job.id, token, error))
        if outcome.end == "cancelled":
            return self._write(job, "cancelled", lambda: store.mark_cancelled(job.id, token))
        if outcome.end == "handed_back":
            return self.requeue.hand_back(job, token, outcome.reason or outcome.end)
        if outcome.end == "retry_later":
            return self.requeue.retry_later(job, token, outcome.reason or outcome.end)
        return outcome.end

    def _write(self, job: JobRecord, status: str, write: Callable[[], bool]) -> str:
        """Record the outcome under the lease, riding out a short database outage; the job's log first."""
        joblog.flush_before_outcome()
        if with_backoff(write, what=f"record {status} for {job.id}"):
            return status
        log.warning("job %s: lease lost before recording %s; nothing written", job.id, status)
        return "lease_lost"
