"""How a job's end shows in Celery: a task succeeds only when its job did.

Celery's result backend stays off (the SQL row is the truth), so what Flower and ``celery events``
see are the task events: a failed or timed-out job makes the task raise ``JobFailed`` (a
``task-failed`` event; the message is still acknowledged, as ``task_acks_on_failure_or_timeout``
does for every failure, and nothing is retried); a cancelled job sends ``task-revoked`` and ends
the task without a further event. Every other way a delivery ends (the job succeeded, was handed
back, deferred, is someone else's, or already succeeded in a batch) returns the job's id, status and
what this delivery did.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Ignore

from db.jobs import JobStore


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
    """``<code>: <message>`` of a failed job's error. Every failure path records a code (``tensorq/errors.py``'s
    tree, or the store's ``timeout`` and ``worker_lost``), so one without (none is written) shows its message
    alone rather than a code it never had."""
    error = error or {}
    code, message = error.get("code"), error.get("message") or ""
    return f"{code}: {message}" if code else message or "no error recorded"
