"""The state machine's one write: a conditional UPDATE from one status to the next, with its event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, insert, update

from db.followups import follow_up
from db.jobstats import count_finished
from db.models import Job, JobEvent, utcnow
from db.records import TERMINAL, JobRecord, aware

LEGAL_TRANSITIONS = {
    (None, "queued"),
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "queued"),
}


def status_is(status: str) -> ColumnElement[bool]:
    """The status test of a statement that reaches its job by id: written as an expression that no index
    (and no partial index's predicate) matches, so the planner takes the primary key whatever its statistics
    say. Behind 50,000 queued jobs with stale statistics Postgres otherwise walked the status index (70 ms)."""
    return Job.status.concat("") == status


def job_record(row: Any) -> JobRecord:
    """The plain record of a job row (an ORM ``Job`` or a Core row of the jobs table)."""
    return JobRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        type=row.type,
        status=row.status,
        spec=row.spec,
        progress=row.progress,
        result=row.result,
        error=row.error,
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        timeout_s=row.timeout_s,
        cancel_requested=row.cancel_requested,
        revision=row.revision,
        created_at=aware(row.created_at),
        started_at=aware(row.started_at),
        finished_at=aware(row.finished_at),
        published_at=aware(row.published_at),
        retry_of=getattr(row, "retry_of", None),
        name=getattr(row, "name", None),
        tags=list(getattr(row, "tags", None) or []),
        callback_url=getattr(row, "callback_url", None),
        max_retries=getattr(row, "max_retries", None) or 0,
        retry_number=getattr(row, "retry_number", None) or 0,
    )


def transition(
    conn: Connection,
    job_id: str,
    expected: str,
    target: str,
    values: dict[str, Any],
    *,
    token: str | None = None,
    extra_where: tuple[ColumnElement[bool], ...] = (),
    event_data: dict[str, Any] | None = None,
    follow: bool = True,
) -> JobRecord | None:
    """One conditional UPDATE from ``expected`` to ``target``, its event logged in the same transaction.

    Returns the job as the update left it, or None when it lost (another writer moved the job first, or
    ``token`` is no longer the job's lease). A job reaching a final state is added to the totals and, unless
    ``follow`` is False (the caller then calls ``db.followups.follow_up`` once the row is complete), gets its
    follow-ups (webhook notification, automatic retry) in the same transaction.
    """
    if (expected, target) not in LEGAL_TRANSITIONS:
        raise ValueError(f"illegal transition {expected} -> {target}")
    where = [Job.id == job_id, status_is(expected), *extra_where]
    if token is not None:
        where.append(Job.lease_token == token)
    now = utcnow()
    stmt = (
        update(Job)
        .where(and_(*where))
        .values(status=target, revision=Job.revision + 1, updated_at=now, **values)
        .execution_options(synchronize_session=False)
        .returning(*Job.__table__.c)
    )
    row = conn.execute(stmt).one_or_none()
    if row is None:
        return None
    job = job_record(row)
    if target in TERMINAL:
        count_finished(conn, job.type, target, job.started_at, job.finished_at)
        if follow and (noted := follow_up(conn, job)):
            event_data = {**(event_data or {}), **noted}
    event = {"kind": "state", "from_status": expected, "to_status": target, "data": event_data}
    conn.execute(insert(JobEvent), {"job_id": job_id, "created_at": now, **event})
    return job
