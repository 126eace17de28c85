"""Runs one job end to end: claim, heartbeat, call the handler, record the outcome."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Iterator

from db.batch_claim import BatchStore
from db.database import Database
from db.jobs import Deferred
from db.records import JobRecord
from tensorq.errors import JobCancelled, StorageUnavailable, TensorQError, Unavailable, storage_fault
from tensorq.routing import Publisher
from tensorq.settings import Settings
from worker import joblog
from worker.context import Handler, JobContext
from worker.control import JobControl, JobTimedOut
from worker.ended import EndedHere
from worker.memory import ceiling_applies, exhausted, job_memory_ceiling
from worker.presence import note_job
from worker.retry import with_backoff

log = logging.getLogger(__name__)
DEFER_S = 5.0
# How long a job waits before its next attempt after the artifact store refused a write.
STORAGE_RETRY_S = 10.0


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
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.memory_headroom_mb = settings.job_memory_mb if ceiling_applies(settings.gpu) else 0
        # Micro-batch claims and finishes, and the batch-mates that succeeded here: their own deliveries end
        # without a claim (worker/batch.py, worker/ended.py).
        self.batch_store = BatchStore(self.db.jobs)
        self.ended_in_batch = EndedHere()

    def run(self, job_id: str) -> str:
        """Claim and run the job; returns how it ended here ('skipped' when the claim was taken, 'batched' when
        it already succeeded in a batch this process ran).

        With micro-batching on (``batch_max_jobs`` > 1) a predict or explain job on inline inputs is claimed and
        run together with queued jobs of the same model version and settings (``worker/batch.py``)."""
        if self.settings.batch_max_jobs > 1:
            from worker.batch import run_batched

            return run_batched(self, job_id)
        limit = functools.partial(self.settings.quota, name="quota_running_jobs")
        claim = with_backoff(lambda: self.db.jobs.claim(job_id, self.name, limit), what=f"claim {job_id}")
        if claim is None:
            log.info("job %s: not claimable (taken, cancelled or finished); skipping", job_id)
            return "skipped"
        if isinstance(claim, Deferred):
            return self._defer(job_id, claim.reason)
        return self.run_claimed(claim.job, claim.lease_token)

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
        roots = (self.settings.artifact_dir,)
        note_job(job.id)
        with control, joblog.capture(self.db.logs, job.id, job.attempts, roots), _idle_after():
            log.info("%s job %s: attempt %d of %d on %s", job.type, job.id, job.attempts, job.max_attempts, self.name)
            try:
                control.check()
                with job_memory_ceiling(self.memory_headroom_mb):
                    outcome = self.handlers[job.type](JobContext(self.settings, self.db, job, control))
            except (JobCancelled, JobTimedOut) as exc:
                return self._stopped(job, token, control.reason or exc.code)
            except StorageUnavailable as fault:
                return self._storage_fault(job, token, fault)
            except Unavailable:
                log.warning("job %s: a service is unavailable; handing the job back", job.id)
                return self._hand_back(job, token, "service_unavailable")
            except TensorQError as exc:
                log.error("failed while %s: %s: %s", joblog.current_phase(), exc.code, exc.message)
                details = joblog.failure_details(exc, exc.details)
                error = {"code": exc.code, "message": exc.message, "details": details}
                return self._write(job, "failed", lambda: self.db.jobs.fail(job.id, token, error))
            except Exception as exc:  # noqa: BLE001 - any error in the job itself fails it
                return self._unexpected(job, token, exc)
            if control.lease_lost.is_set():
                return "lease_lost"
            return self._write(
                job, "succeeded", lambda: self.db.jobs.finish(job.id, token, outcome.result, outcome.model)
            )

    def _unexpected(self, job: JobRecord, token: str, exc: Exception) -> str:
        """An exception TensorQ did not raise on purpose. Memory exhaustion and a store that refuses writes are
        recognised; any other fails the job with ``internal`` and "unexpected <type> while <phase>": its text may
        hold data or paths, so it and the traceback (paths removed) go only to the job's log, which only the
        job's tenant reads."""
        over = exhausted(exc)
        if over is not None:
            log.error("job %s: %s", job.id, over.message)
            error = over.to_dict()
            return self._write(job, "failed", lambda: self.db.jobs.fail(job.id, token, error))
        fault = storage_fault(exc)
        if fault is not None:
            return self._storage_fault(job, token, fault)
        phase = joblog.current_phase() or "running"
        log.error("job %s failed while %s\n%s", job.id, phase, joblog.traceback_tail(exc))
        message = f"unexpected {type(exc).__name__} while {phase}"
        error = {"code": "internal", "message": message, "details": joblog.failure_details(exc)}
        return self._write(job, "failed", lambda: self.db.jobs.fail(job.id, token, error))

    def _storage_fault(self, job: JobRecord, token: str, fault: StorageUnavailable) -> str:
        """An artifact store that cannot be written is not the job's fault: retry it later while attempts
        remain (the attempt counts), then fail it with ``storage_unavailable`` (a message without paths)."""
        log.warning("job %s: %s (attempt %d of %d)", job.id, fault.message, job.attempts, job.max_attempts)
        if job.attempts >= job.max_attempts:
            error = {**fault.to_dict(), "details": {"service": "storage", "attempts": job.attempts}}
            return self._write(job, "failed", lambda: self.db.jobs.fail(job.id, token, error))
        if not with_backoff(lambda: self.db.jobs.retry_later(job.id, token, fault.code), attempts=4):
            return "lease_lost"
        if self.publisher is not None:
            try:
                self.publisher.publish(self.db.jobs.get_any(job.id), countdown=STORAGE_RETRY_S)
                self.db.jobs.mark_published(job.id)
            except Exception:  # noqa: BLE001 - the reaper re-publishes it
                log.warning("job %s: re-publish after a storage fault failed; the reaper will do it", job.id)
        return "retry_later"

    def _defer(self, job_id: str, reason: str) -> str:
        """Leave the job queued and publish it again a little later."""
        log.info("job %s: deferred (%s)", job_id, reason)
        if self.publisher is not None:
            try:
                self.publisher.publish(self.db.jobs.get_any(job_id), countdown=DEFER_S)
                self.db.jobs.mark_published(job_id)
            except Exception:  # noqa: BLE001 - the reaper re-publishes it
                log.warning("job %s: re-publish after deferral failed; the reaper will do it", job_id)
        return "deferred"

    def _write(self, job: JobRecord, status: str, write: Callable[[], bool]) -> str:
        """Record the outcome under the lease, riding out a short database outage; the job's log first."""
        joblog.flush_before_outcome()
        if with_backoff(write, what=f"record {status} for {job.id}"):
            return status
        log.warning("job %s: lease lost before recording %s; nothing written", job.id, status)
        return "lease_lost"

    def _stopped(self, job: JobRecord, token: str, reason: str) -> str:
        store = self.db.jobs
        if reason == "lease_lost":
            log.warning("job %s: lease lost; stopping without writing", job.id)
            return "lease_lost"
        if reason == "shutdown":
            return self._hand_back(job, token, "worker_shutdown")
        if reason == "timeout":
            error = {"code": "timeout", "message": f"job exceeded its timeout_s of {job.timeout_s}"}
            return self._write(job, "failed", lambda: store.fail(job.id, token, error))
        return self._write(job, "cancelled", lambda: store.mark_cancelled(job.id, token))

    def _hand_back(self, job: JobRecord, token: str, reason: str) -> str:
        """Return the job to the queue without counting the attempt, and publish it again."""
        try:
            released = with_backoff(lambda: self.db.jobs.release(job.id, token, reason), attempts=4)
        except Unavailable:
            log.warning("job %s: could not hand back; its lease will expire and the reaper re-queues it", job.id)
            return "abandoned"
        if not released:
            return "lease_lost"
        if self.publisher is not None:
            try:
                self.publisher.publish(self.db.jobs.get_any(job.id))
                self.db.jobs.mark_published(job.id)
            except Exception:  # noqa: BLE001 - the reaper re-publishes it
                log.warning("job %s: re-publish after hand-back failed; the reaper will do it", job.id)
        return "handed_back"
