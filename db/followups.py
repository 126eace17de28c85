"""What a job's terminal state sets off, written in the transaction of that state change: the webhook
notification (``db.webhooks.enqueue``) when the job has a ``callback_url``, and the automatic retry when it
failed with a retryable code and has retries left (``tensorq.core.retry_policy``). Committed together with the
state or not at all, neither can be lost to a crash between the two."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from db.models import Job, utcnow
from db.newjob import NewJob, insert_new
from db.records import JobRecord
from db.webhooks import enqueue
from tensorq.core.retry_policy import should_retry


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


def chain_retries(conn: Connection, tenant_id: str, job_id: str) -> int:
    """The highest ``retry_number`` in ``job_id``'s retry chain: the jobs its ``retry_of`` links lead back to and
    every retry of them, manual or automatic, so that a retry of an early job continues the chain's budget."""
    up = select(Job.id, Job.retry_of, Job.created_at).where(Job.id == job_id, Job.tenant_id == tenant_id)
    ancestors = up.cte("ancestors", recursive=True)
    ancestors = ancestors.union_all(
        select(Job.id, Job.retry_of, Job.created_at).join(ancestors, Job.id == ancestors.c.retry_of)
    )
    since = select(func.min(ancestors.c.created_at)).scalar_subquery()
    chain = select(Job.id, Job.retry_number).join(ancestors, Job.id == ancestors.c.id).cte("chain", recursive=True)
    # A retry is one of the tenant's jobs made after the chain's first: the (tenant_id, created_at) index bounds it.
    retries = select(Job.id, Job.retry_number).join(chain, Job.retry_of == chain.c.id)
    chain = chain.union(retries.where(Job.tenant_id == tenant_id, Job.created_at >= since))
    return int(conn.execute(select(func.max(chain.c.retry_number))).scalar_one() or 0)
