"""The state machine's one write: conditional UPDATEs from one status to the next, with their events.

``transition`` moves one job, ``transition_many`` several in one statement (or one statement each, when each
job writes values of its own); both record what every move sets off in the same transaction, in one place
(``_record``): the state event, and for a final state the finished-job totals and the follow-ups
(``db.followups``: the webhook outbox row, the retry decision and the retry job). ``end_running`` is how a
worker's outcome is written, for one job as for a micro-batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, insert, or_, update, values
from sqlalchemy import column as sql_column

from db.followups import follow_up
from db.jobstats import finished_statement
from db.livecounts import moves_statement
from db.models import Job, JobEvent, utcnow
from db.parents import follow_children, parent_progress
from db.records import TERMINAL, ChildCounts, JobRecord, aware
from db.together import run_together

LEGAL_TRANSITIONS = {
    (None, "queued"),
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "queued"),
    # A failed or cancelled parent reopened to rerun its failed children (``db.parents.retry_failed_children``).
    ("failed", "queued"),
    ("cancelled", "queued"),
}
# A job's event data: the same for every job moved, or made from each job and how many moved together.
EventData = dict[str, Any] | Callable[[JobRecord, int], dict[str, Any] | None] | None
# Rows that go with the jobs moved (a finished batch's log lines): an INSERT and its rows, or None.
RowsOf = Callable[[list[JobRecord]], tuple[Any, list[dict[str, Any]]] | None]
# The columns that give a job's lease up.
RELEASED: dict[str, Any] = {"lease_token": None, "lease_expires_at": None}


def status_is(status: str) -> ColumnElement[bool]:
    """The status test of a statement that reaches its job by id: written as an expression that no index
    (and no partial index's predicate) matches, so the planner takes the primary key whatever its statistics
    say. Behind 50,000 queued jobs with stale statistics Postgres otherwise walked the status index (70 ms)."""
    return Job.status.concat("") == status


def job_record(row: Any) -> JobRecord:
    """The plain record of a job row (an ORM ``Job`` or a Core row of the jobs table); a parent's progress
    is its children's (``db.parents.parent_progress``)."""
    record = _record_of(row)
    return record if record.children is None else replace(record, progress=parent_progress(None, record))


def _record_of(row: Any) -> JobRecord:
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
        parent_id=getattr(row, "parent_id", None),
        children=child_counts(row),
    )


def child_counts(row: Any) -> ChildCounts | None:
    """A parent row's children counts (None for a job without children)."""
    total = getattr(row, "children_total", None) or 0
    if not total:
        return None
    return ChildCounts(
        total=total,
        running=row.children_running,
        succeeded=row.children_succeeded,
        failed=row.children_failed,
        cancelled=row.children_cancelled,
        max_failed=row.max_failed_children,
    )


def leased(token: str, worker: str, lease_s: float, now: datetime) -> dict[str, Any]:
    """The columns a claim writes (``queued -> running``): the lease, its expiry, one more attempt, the worker."""
    return {
        "lease_token": token,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "attempts": Job.attempts + 1,
        "started_at": now,
        "worker": worker,
    }


def transition(
    conn: Connection,
    job_id: str,
    expected: str,
    target: str,
    values: dict[str, Any],
    *,
    token: str | None = None,
    extra_where: tuple[ColumnElement[bool], ...] = (),
    event_data: EventData = None,
    complete: Callable[[JobRecord], JobRecord] | None = None,
) -> JobRecord | None:
    """One conditional UPDATE from ``expected`` to ``target``, its event logged in the same transaction.

    Returns the job as the update left it, or None when it lost (another writer moved the job first, or
    ``token`` is no longer the job's lease). ``complete`` may finish the row in the same transaction before
    its follow-ups are written (a training job's model version); see ``transition_many``.
    """
    moved = transition_many(
        conn,
        [job_id],
        expected,
        target,
        values,
        token=token,
        extra_where=extra_where,
        event_data=event_data,
        complete=complete,
    )
    return moved[0] if moved else None


def transition_many(
    conn: Connection,
    job_ids: Sequence[str],
    expected: str,
    target: str,
    values: dict[str, Any],
    *,
    each: Mapping[str, dict[str, Any]] | None = None,
    token: str | None = None,
    extra_where: tuple[ColumnElement[bool], ...] = (),
    event_data: EventData = None,
    complete: Callable[[JobRecord], JobRecord] | None = None,
    rows_of: RowsOf | None = None,
) -> list[JobRecord]:
    """Move those of ``job_ids`` still in ``expected`` (and under ``token``, and matching ``extra_where``) to
    ``target``: one UPDATE over their ids, or, with ``each`` (job id -> its own columns, the same names for
    every job), one UPDATE per job of one prepared statement. Returns the jobs that moved, as left, in the
    order of ``job_ids``; those that did not move lost to another writer.

    Each moved job gets its state event; a job reaching a final state is added to the totals and gets its
    follow-ups (webhook notification, automatic retry), all in the caller's transaction. ``complete`` (job ->
    job) runs on each moved job before that, in the same transaction; ``rows_of`` (the moved jobs -> an INSERT)
    gives rows written with their events (in the same statement on Postgres).
    """
    if (expected, target) not in LEGAL_TRANSITIONS:
        raise ValueError(f"illegal transition {expected} -> {target}")
    if not job_ids:
        return []
    now = utcnow()
    where = [status_is(expected), *extra_where]
    if token is not None:
        where.append(Job.lease_token == token)
    changes = {"status": target, "revision": Job.revision + 1, "updated_at": now, **values}
    if each is None:
        by_id = Job.id == job_ids[0] if len(job_ids) == 1 else Job.id.in_(list(job_ids))
        rows = list(conn.execute(_update(changes, by_id, *where)).all())
    else:
        rows = _update_each(conn, job_ids, changes, each, where)
    order = {job_id: n for n, job_id in enumerate(job_ids)}
    jobs = sorted((job_record(row) for row in rows), key=lambda job: order[job.id])
    if complete is not None:
        jobs = [complete(job) for job in jobs]
    _record(conn, jobs, expected, target, event_data, now, rows_of)
    return jobs


def _update(changes: dict[str, Any], *where: ColumnElement[bool]) -> Any:
    return (
        update(Job)
        .where(and_(*where))
        .values(**changes)
        .execution_options(synchronize_session=False)
        .returning(*Job.__table__.c)
    )


def _update_each(
    conn: Connection,
    job_ids: Sequence[str],
    changes: dict[str, Any],
    each: Mapping[str, dict[str, Any]],
    where: list[ColumnElement[bool]],
) -> list[Any]:
    """One UPDATE per job, of one statement whose own columns of each job are bound parameters; on Postgres one
    ``UPDATE ... FROM (VALUES ...)`` for them all (one round trip for a batch's outcomes, issue 26)."""
    names = sorted({name for columns in each.values() for name in columns})
    if conn.dialect.name == "postgresql" and len(job_ids) > 1:
        return _update_from_values(conn, job_ids, changes, each, where, names)
    bound: dict[str, Any] = {name: bindparam(f"own_{name}") for name in names}
    statement = _update({**changes, **bound}, Job.id == bindparam("own_job_id"), *where)
    rows = []
    for job_id in job_ids:
        params = {"own_job_id": job_id, **{f"own_{name}": each[job_id].get(name) for name in names}}
        row = conn.execute(statement, params).one_or_none()
        if row is not None:
            rows.append(row)
    return rows


def _update_from_values(
    conn: Connection,
    job_ids: Sequence[str],
    changes: dict[str, Any],
    each: Mapping[str, dict[str, Any]],
    where: list[ColumnElement[bool]],
    names: list[str],
) -> list[Any]:
    """Every job's own columns in one UPDATE joined to a VALUES list of them (Postgres)."""
    table = Job.__table__
    own = values(
        sql_column("own_job_id", table.c.id.type),
        *(sql_column(f"own_{name}", table.c[name].type) for name in names),
        name="own",
    ).data([(job_id, *(each[job_id].get(name) for name in names)) for job_id in job_ids])
    bound = {name: own.c[f"own_{name}"] for name in names}
    return list(conn.execute(_update({**changes, **bound}, Job.id == own.c.own_job_id, *where)).all())


def _record(
    conn: Connection,
    jobs: list[JobRecord],
    expected: str,
    target: str,
    event_data: EventData,
    now: datetime,
    rows_of: RowsOf | None = None,
) -> None:
    """What the moves of ``jobs`` set off, in their transaction: for a final state each job's follow-ups
    (``db.followups``: the webhook outbox row and the retry decision, noted in its event), then every job's
    state event with the queued and running totals and, for a final state, the finished-job totals (one
    statement on Postgres), then their parents' totals and moves (``db.parents``)."""
    if not jobs:
        return
    events = []
    replaced: set[str] = set()
    for job in jobs:
        data = event_data(job, len(jobs)) if callable(event_data) else event_data
        if target in TERMINAL and (noted := follow_up(conn, job)):
            data = {**(data or {}), **noted}
            if "retry_job_id" in noted:
                replaced.add(job.id)
        events.append(
            {
                "job_id": job.id,
                "kind": "state",
                "from_status": expected,
                "to_status": target,
                "data": data,
                "created_at": now,
            }
        )
    counted = Counter(job.type for job in jobs if job.children is None)  # a parent is no backlog of its own
    moves = [*((t, expected, -n) for t, n in counted.items()), *((t, target, n) for t, n in counted.items())]
    finished = [(job.type, target, job.started_at, job.finished_at) for job in jobs] if target in TERMINAL else []
    # The events and both totals in one statement on Postgres (``db.together``): one round trip, not three.
    run_together(
        conn,
        [
            (insert(JobEvent), events),
            moves_statement(moves),
            finished_statement(conn.dialect.name, finished),
            rows_of(jobs) if rows_of is not None else None,
        ],
    )
    follow_children(conn, jobs, expected, target, replaced, transition_many)


# The statuses a running job ends in.
ENDINGS = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Ending:
    """How a running job ends: ``succeeded`` with its ``result``, ``failed`` with its ``error``, or
    ``cancelled``."""

    status: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def _failure_note(job: JobRecord, _moved: int) -> dict[str, Any] | None:
    code = (job.error or {}).get("code")
    return {"code": code} if code else None


def end_running(
    conn: Connection,
    token: str,
    endings: Mapping[str, Ending],
    *,
    cancel_asked: bool = False,
    complete: Callable[[JobRecord], JobRecord] | None = None,
    rows_of: RowsOf | None = None,
) -> dict[str, JobRecord]:
    """Write each job's ``Ending`` (``running -> succeeded | failed | cancelled``) under the lease ``token``,
    in the caller's transaction: a failure's event notes its code; every end gets its follow-ups and totals
    (``_record``). With ``cancel_asked`` a job whose cancel was asked meanwhile ends ``cancelled`` instead.
    ``complete`` finishes a succeeded row in the transaction, ``rows_of`` gives rows written with the ended jobs'
    events (see ``transition_many``). Returns the jobs that
    ended, by id; a job missing lost its lease (taken over, handed back or ended) and is left alone."""
    unknown = sorted({ending.status for ending in endings.values()} - ENDINGS)
    if unknown:
        raise ValueError(f"a running job cannot end {unknown}")
    now = utcnow()
    done = {**RELEASED, "finished_at": now}
    unasked = (Job.cancel_requested.is_(False),) if cancel_asked else ()
    ended: dict[str, JobRecord] = {}
    for status, column in (("succeeded", "result"), ("failed", "error")):
        ids = [job_id for job_id, ending in endings.items() if ending.status == status]
        own = {job_id: {column: getattr(endings[job_id], column)} for job_id in ids}
        note = _failure_note if status == "failed" else None
        moved = transition_many(
            conn,
            ids,
            "running",
            status,
            done,
            each=own,
            token=token,
            extra_where=unasked,
            event_data=note,
            complete=complete if status == "succeeded" else None,
            rows_of=rows_of,
        )
        ended.update((job.id, job) for job in moved)
    stopped = [job_id for job_id, ending in endings.items() if ending.status == "cancelled"]
    rest = [job_id for job_id in endings if job_id not in ended] if cancel_asked else stopped
    asked = (or_(Job.cancel_requested.is_(True), Job.id.in_(stopped)),) if cancel_asked else ()
    moved = transition_many(conn, rest, "running", "cancelled", done, token=token, extra_where=asked, rows_of=rows_of)
    ended.update((job.id, job) for job in moved)
    return ended
