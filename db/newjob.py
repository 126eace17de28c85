"""A new job: what a submission asks for, the jobs-table row it becomes, and the one insert of new jobs (the
row, its tags and its first state event) that every way of creating a job goes through."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, Self

from sqlalchemy import Connection, insert

from db.livecounts import moves_statement
from db.models import Job, JobEvent, JobTag, utcnow
from db.records import JobRecord
from db.together import run_together


class Submission(Protocol):
    """What a client asks of a new job, its spec as validated (``api.schemas.parse_submission`` gives one; a
    ``JobRecord`` is its own submission again)."""

    @property
    def type(self) -> str: ...
    @property
    def spec(self) -> dict[str, Any]: ...
    @property
    def priority(self) -> int: ...
    @property
    def max_attempts(self) -> int | None: ...
    @property
    def timeout_s(self) -> int | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def callback_url(self) -> str | None: ...
    @property
    def max_retries(self) -> int: ...


@dataclass(frozen=True)
class NewJob:
    """What a new job will be; ``from_submission`` and ``retry_of`` build it for the API and the retry policy."""

    tenant_id: str
    type: str
    spec: dict[str, Any]
    priority: int = 5
    max_attempts: int = 3
    timeout_s: int | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    retry_of_id: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    callback_url: str | None = None
    max_retries: int = 0
    retry_number: int = 0
    parent_id: str | None = None
    children_total: int = 0
    max_failed_children: int = 0
    # The new job's id when the caller chose it (a submission that waits watches it before it is published).
    job_id: str | None = None

    @classmethod
    def from_submission(cls, tenant_id: str, submission: Submission, *, default_max_attempts: int) -> Self:
        """The job a tenant's submission asks for (``default_max_attempts`` where it names none)."""
        return cls(
            tenant_id=tenant_id,
            type=submission.type,
            spec=submission.spec,
            priority=submission.priority,
            max_attempts=submission.max_attempts or default_max_attempts,
            timeout_s=submission.timeout_s,
            name=submission.name,
            tags=tuple(submission.tags),
            callback_url=submission.callback_url,
            max_retries=submission.max_retries,
        )

    @classmethod
    def retry_of(cls, old: JobRecord, retry_number: int | None = None) -> Self:
        """The retry of ``old``: its submission again (type, spec, options and limits), linked by ``retry_of``
        one further down its retry chain (``retry_number``, by default ``old``'s + 1)."""
        again = cls.from_submission(old.tenant_id, old, default_max_attempts=old.max_attempts)
        number = old.retry_number + 1 if retry_number is None else retry_number
        return replace(again, retry_of_id=old.id, retry_number=number, parent_id=old.parent_id)


# Up to this many new jobs are written with their bookkeeping rows in one statement (``db.together``).
FOLD_JOBS = 16


def new_row(new: NewJob, now: datetime, publishing: bool) -> dict[str, Any]:
    """The jobs-table row of a new ``queued`` job."""
    return {
        "id": new.job_id or str(uuid.uuid4()),
        "tenant_id": new.tenant_id,
        "type": new.type,
        "status": "queued",
        "spec": new.spec,
        "progress": None,
        "result": None,
        "error": None,
        "priority": new.priority,
        "attempts": 0,
        "max_attempts": new.max_attempts,
        "timeout_s": new.timeout_s,
        "cancel_requested": False,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
        "retry_of": new.retry_of_id,
        "name": new.name,
        "tags": list(new.tags) or None,
        "callback_url": new.callback_url,
        "max_retries": new.max_retries,
        "retry_number": new.retry_number,
        "parent_id": new.parent_id,
        "children_total": new.children_total,
        "children_running": 0,
        "children_succeeded": 0,
        "children_failed": 0,
        "children_cancelled": 0,
        "max_failed_children": new.max_failed_children,
        "revision": 0,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "published_at": now if publishing else None,
    }


def insert_new(
    conn: Connection, news: Sequence[NewJob], *, publishing: bool, note: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Insert ``news`` as ``queued`` jobs in ``conn``'s transaction: each row, its tags and its first state event
    (``note`` is that event's data); the rows, in order. ``publishing`` records them as published now (the
    caller publishes right after the commit); else the reaper's outbox publishes them."""
    now = utcnow()
    rows = [new_row(new, now, publishing) for new in news]
    if not rows:
        return rows
    tags = [
        {"job_id": row["id"], "tag": tag}
        for new, row in zip(news, rows, strict=True)
        for tag in dict.fromkeys(new.tags)
    ]
    first = {"kind": "state", "from_status": None, "to_status": "queued", "data": note, "created_at": now}
    events = [{"job_id": row["id"], **first} for row in rows]
    moves = moves_statement([(row["type"], "queued", 1) for row in rows if not row["children_total"]])
    if len(rows) > FOLD_JOBS:  # a large batch: its rows as one executemany each (bounded statement size)
        conn.execute(insert(Job), rows)
        if tags:
            conn.execute(insert(JobTag), tags)
        run_together(conn, [moves, (insert(JobEvent), events)])
        return rows
    # The rows, their tags, the queued totals (parents: none) and the first events: one statement on Postgres
    # (``db.together``; the events' and tags' references to the new rows are checked at its end).
    run_together(conn, [(insert(Job), rows), (insert(JobTag), tags), moves, (insert(JobEvent), events)])
    return rows
