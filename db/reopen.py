"""The retry of a failed or cancelled parent: it is reopened, and only its failed or cancelled children run
again, each as a retry in its place (``db.parents`` keeps the totals)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, exists, select

from db.models import Job
from db.newjob import NewJob, insert_new
from db.parents import COUNTED
from db.records import JobRecord
from db.transitions import job_record, transition


def retry_failed_children(conn: Connection, parent: JobRecord) -> list[dict[str, Any]]:
    """Reopen a failed or cancelled ``parent`` (``-> queued``) with a retry of each of its failed or cancelled
    children in their place (recorded as published: the caller publishes them after the commit); the
    retries' rows."""
    jobs = Job.__table__.alias("child")
    failed = conn.execute(
        select(jobs)
        .where(jobs.c.parent_id == parent.id, jobs.c.status.in_(("failed", "cancelled")))
        .where(~exists().where(Job.retry_of == jobs.c.id))
        .order_by(jobs.c.created_at)
    ).all()
    olds = [job_record(row) for row in failed]
    news = [NewJob.retry_of(old) for old in olds]
    rows = insert_new(conn, news, publishing=True, note={"reason": "parent_retry", "parent_id": parent.id})
    undo = Counter(COUNTED[old.status] for old in olds)
    values: dict[str, Any] = {name: getattr(Job, name) - n for name, n in undo.items()}
    values.update(cancel_requested=False, finished_at=None, result=None, error=None)
    reopened = transition(
        conn,
        parent.id,
        parent.status,
        "queued",
        values,
        extra_where=(Job.children_total > 0,),
        event_data={"reason": "retry_failed_children", "retried": len(rows)},
    )
    return rows if reopened is not None else []
