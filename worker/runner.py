"""Runs one job end to end: claim, heartbeat, call the handler, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from db.database import Database
from db.jobs import ModelVersionDraft
from db.records import JobRecord
from tensorq.errors import JobCancelled, TensorQError, Unavailable
from tensorq.settings import Settings
from worker.control import JobControl, JobTimedOut

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """Everything a handler may use for one job."""

    settings: Settings
    db: Database
    job: JobRecord
    control: JobControl


@dataclass
class HandlerResult:
    """What a handler produced: the job's result and, for training, the model to register."""

    result: dict[str, Any]
    model: ModelVersionDraft | None = None


Handler = Callable[[JobContext], HandlerResult]


class JobRunner:
    """One per worker process: holds the database and runs jobs by id."""

    def __init__(self, settings: Settings, db: Database | None = None, handlers: dict[str, Handler] | None = None):
        self.settings = settings
        self.db = db or Database(settings)
        if handlers is None:
            from worker.handlers import HANDLERS

            handlers = HANDLERS
        self.handlers = handlers
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, job_id: str) -> str:
        """Claim and run the job; returns the status it ended in, or 'skipped' when the claim was taken."""
        claim = self.db.jobs.claim(job_id, self.name)
        if claim is None:
            log.info("job %s: not claimable (taken, cancelled or finished); skipping", job_id)
            return "skipped"
        job, token = claim.job, claim.lease_token
        store = self.db.jobs
        control = JobControl(
            store,
            job.id,
            token,
            heartbeat_s=self.settings.heartbeat_s,
            timeout_s=job.timeout_s,
            progress_interval_s=self.settings.progress_min_interval_s,
        )
        with control:
            try:
                control.check()
                outcome = self.handlers[job.type](JobContext(self.settings, self.db, job, control))
            except (JobCancelled, JobTimedOut) as exc:
                return self._stopped(job, token, control.reason or exc.code, exc)
            except Unavailable:
                log.warning("job %s: a service is unavailable; the lease will expire and it re-queues", job.id)
                raise
            except TensorQError as exc:
                store.fail(job.id, token, {"code": exc.code, "message": exc.message, "details": exc.details})
                return "failed"
            except Exception as exc:  # noqa: BLE001 - any error in the job itself fails it, with its message
                log.exception("job %s failed", job.id)
                store.fail(job.id, token, {"code": "job_error", "message": f"{type(exc).__name__}: {exc}"})
                return "failed"
            if control.lease_lost.is_set():
                return "lease_lost"
            if not store.finish(job.id, token, outcome.result, outcome.model):
                log.warning("job %s: lease lost before finishing; result discarded", job.id)
                return "lease_lost"
            return "succeeded"

    def _stopped(self, job: JobRecord, token: str, reason: str, exc: Exception) -> str:
        store = self.db.jobs
        if reason == "lease_lost":
            log.warning("job %s: lease lost; stopping without writing", job.id)
            return "lease_lost"
        if reason == "timeout":
            store.fail(job.id, token, {"code": "timeout", "message": f"job exceeded its timeout_s of {job.timeout_s}"})
            return "failed"
        store.mark_cancelled(job.id, token)
        return "cancelled"
