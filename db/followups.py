"""What a job's terminal state sets off, written in the transaction of that state change: the webhook
notification (``db.webhooks.enqueue``) when the job has a ``callback_url``, and the automatic retry when it
failed with a retryable code and has retries left (``tensorq.retry_policy``). Committed together with the
state or not at all, neither can be lost to a crash between the two."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from db.models import utcnow
from db.newjob import NewJob, insert_new
from db.records import JobRecord
from db.webhooks import enqueue
from tensorq.retry_policy import should_retry


def follow_up(conn: Connection, job: JobRecord) -> dict[str, Any]:
    """Queue the notification and the retry ``job``'s final state calls for; returns what its state event
    records of them (``delivery``, ``retry_job_id``), empty when there is nothing to do."""
    noted: dict[str, Any] = {}
    if not (job.callback_url or job.max_retries):
        return noted
    now = utcnow()
    if job.callback_url:
        noted["delivery"] = enqueue(conn, job, now)
    if should_retry(job.status, job.error, job.retry_number, job.max_retries):
        noted["retry_job_id"] = insert_retry(conn, job)
    return noted


def insert_retry(conn: Connection, job: JobRecord) -> str:
    """Queue ``job``'s spec again as a new job linked by ``retry_of`` (``retry_number`` + 1), unpublished: the
    reaper's outbox publishes it. It is not counted against the queued-jobs quota: it replaces ``job``."""
    new = NewJob.retry_of(job)
    data = {"reason": "retry_policy", "retry_of": job.id, "retry_number": new.retry_number}
    [row] = insert_new(conn, [new], publishing=False, note=data)
    return str(row["id"])
