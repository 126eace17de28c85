"""How a job ends in a worker: what a run that raised means for the job (``outcome_of``), and how the end shows
in Celery (``report``): a task succeeds only when its job did.

``outcome_of`` is the one mapping from an exception to a job's end, for a job run alone and for a job of a
micro-batch: a stop that ``JobControl`` raised (lease lost: nothing is written; the worker drains: the job is
handed back; timeout: failed; cancel: cancelled), a service that is unavailable (handed back), an artifact
store that refuses writes (retried later while attempts remain, then failed), an error TensorQ raised (failed
with its code), a refused allocation (``resource_exhausted``), and anything else (``internal``: its text and
traceback go to the job's log only).

Celery's result backend stays off (the SQL row is the truth), so what Flower and ``celery events``
see are the task events: a failed or timed-out job makes the task raise ``JobFailed`` (a
``task-failed`` event; the message is still acknowledged, as ``task_acks_on_failure_or_timeout``
does for every failure, and nothing is retried); a cancelled job sends ``task-revoked`` and ends
the task without a further event. Every other way a delivery ends (the job succeeded, was handed
back, deferred, is someone else's, or already succeeded in a batch) returns the job's id, status and
what this delivery did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.exceptions import Ignore

from db.jobs import JobStore
from db.records import JobRecord
from tensorq.core.errors import JobCancelled, StorageUnavailable, TensorQError, Unavailable, storage_fault
from worker import joblog
from worker.control import JobTimedOut, LeaseLost, WorkerDraining
from worker.memory import exhausted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    """How a run that raised ends its job here: ``end`` is ``failed`` (with ``error``), ``cancelled``,
    ``lease_lost`` (nothing is written), ``handed_back`` or ``retry_later`` (with the ``reason`` its event
    records)."""

    end: str
    error: dict[str, Any] | None = None
    reason: str | None = None


def outcome_of(exc: BaseException, job: JobRecord, phase: str | None = None) -> JobOutcome:
    """What ``exc``, raised while ``job`` ran (in ``phase``; by default the phase its handler named), means for
    the job: the one mapping of the single-job and the micro-batch paths."""
    phase = phase if phase is not None else joblog.current_phase()
    if isinstance(exc, LeaseLost):
        log.warning("job %s: lease lost; stopping without writing", job.id)
        return JobOutcome("lease_lost")
    if isinstance(exc, WorkerDraining):
        return JobOutcome("handed_back", reason=exc.code)
    if isinstance(exc, JobTimedOut):
        return JobOutcome("failed", {"code": "timeout", "message": f"job exceeded its timeout_s of {job.timeout_s}"})
    if isinstance(exc, JobCancelled):
        return JobOutcome("cancelled")
    fault = exc if isinstance(exc, StorageUnavailable) else storage_fault(exc)
    if fault is not None:
        return _storage_fault(job, fault)
    if isinstance(exc, Unavailable):
        log.warning("job %s: a service is unavailable; handing the job back", job.id)
        return JobOutcome("handed_back", reason="service_unavailable")
    if isinstance(exc, TensorQError):
        log.error("failed while %s: %s: %s", phase, exc.code, exc.message)
        details = joblog.failure_details(exc, exc.details, phase)
        return JobOutcome("failed", {"code": exc.code, "message": exc.message, "details": details})
    return _unexpected(job, exc, phase)


def _storage_fault(job: JobRecord, fault: StorageUnavailable) -> JobOutcome:
    """An artifact store that cannot be written is not the job's fault: retry it later while attempts remain
    (the attempt counts), then fail it with ``storage_unavailable`` (a message without paths)."""
    log.warning("job %s: %s (attempt %d of %d)", job.id, fault.message, job.attempts, job.max_attempts)
    if job.attempts >= job.max_attempts:
        return JobOutcome("failed", {**fault.to_dict(), "details": {"service": "storage", "attempts": job.attempts}})
    return JobOutcome("retry_later", reason=fault.code)


def _unexpected(job: JobRecord, exc: BaseException, phase: str | None) -> JobOutcome:
    """An exception TensorQ did not raise on purpose: a refused allocation fails the job with
    ``resource_exhausted``; any other with ``internal`` and "unexpected <type> while <phase>" (its text may hold
    data or paths, so it and the traceback, paths removed, go only to the job's log, which only its tenant reads)."""
    over = exhausted(exc)
    if over is not None:
        log.error("job %s: %s", job.id, over.message)
        return JobOutcome("failed", over.to_dict())
    where = phase or "running"
    log.error("job %s failed while %s\n%s", job.id, where, joblog.traceback_tail(exc))
    message = f"unexpected {type(exc).__name__} while {where}"
    details = joblog.failure_details(exc, None, phase)
    return JobOutcome("failed", {"code": "internal", "message": message, "details": details})


class JobFailed(Exception):
    """The task's job ended ``failed`` (a timeout is a failure with code ``timeout``)."""


def report(task: Task, store: JobStore, job_id: str, outcome: str) -> dict[str, Any]:
    """The task's return value for a delivery that ended with ``outcome``; raises when the job did not succeed."""
    if outcome == "batched":  # it succeeded in a batch this process ran: known without a read
        return {"job_id": job_id, "status": "succeeded", "outcome": outcome}
    status = outcome
    if outcome not in ("succeeded", "failed", "cancelled"):
        status = store.get_any(job_id).status
        if outcome == "skipped" and status in ("failed", "cancelled"):
            # A duplicate delivery of a job that has ended: tell the same truth as the first one.
            outcome = status
    if outcome == "failed":
        raise JobFailed(f"job {job_id} failed: {failure(store.get_any(job_id).error)}")
    if outcome == "cancelled":
        if task.app.conf.worker_send_task_events:
            task.send_event("task-revoked", terminated=False, signum=None, expired=False)
        raise Ignore(f"job {job_id} cancelled")
    return {"job_id": job_id, "status": status, "outcome": outcome}


def failure(error: dict[str, Any] | None) -> str:
    """``<code>: <message>`` of a failed job's error. Every failure path records a code (``tensorq/core/errors.py``'s
    tree, or the store's ``timeout`` and ``worker_lost``), so one without (none is written) shows its message
    alone rather than a code it never had."""
    error = error or {}
    code, message = error.get("code"), error.get("message") or ""
    return f"{code}: {message}" if code else message or "no error recorded"
