"""Jobs made of jobs: a parent's status follows from its children.

Each move of a child adds to its parent's running totals (``children_running``, ``children_succeeded``...), in
the child's own transaction (``db.transitions._record`` calls ``follow_children``), and moves the parent by the
same conditional transitions as any job: ``queued -> running`` once a child has started or ended, and to its
end once every child has ended (``cancelled`` when its cancel was asked, ``failed`` when more than
``max_failed_children`` of them failed or were cancelled, else ``succeeded``). Once a parent is decided
(cancel asked, or too many failures) the children still waiting are cancelled and the running ones asked to
stop: the cascade skips rows another transaction holds, and runs again at each later move of a child, so no
transaction waits on a child while it holds the parent's row. A parent is never read through its children:
only the cascade and a finished parent's result read them, by the ``(parent_id, status)`` index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from db.models import Job, JobEvent, utcnow
from db.newjob import NewJob, insert_new
from db.records import TERMINAL, ChildCounts, JobRecord
from db.shards import joined_shards
from db.tunes import tune_result

# The state machine's ``db.transitions.transition_many``, handed in by its caller (it calls this module).
Move = Callable[..., list[JobRecord]]

# The parent's running-total column each child status counts in (queued children are total minus the rest).
COUNTED = {
    "running": "children_running",
    "succeeded": "children_succeeded",
    "failed": "children_failed",
    "cancelled": "children_cancelled",
}
COUNT_COLUMNS = ("children_total", *COUNTED.values(), "max_failed_children")
# Where a connection keeps the parents its transaction ended, for the store to signal after the commit.
ENDED_KEY = "tensorq.ended_parents"


def insert_graph(
    conn: Connection, parent: NewJob, children: Sequence[NewJob], *, publishing: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Insert ``parent`` with ``children`` (its totals set to their number) in ``conn``'s transaction: the
    parent's row and its children's rows, in order. The parent is never published: only its children run. A
    parent that plans more children than it starts with (a tune's trials) says so in its ``children_total``."""
    [top] = insert_new(conn, [_as_parent(parent, max(parent.children_total, len(children)))], publishing=True)
    rows = insert_new(conn, [_as_child(child, top["id"]) for child in children], publishing=publishing)
    return top, rows


def _as_parent(new: NewJob, children: int) -> NewJob:
    return replace(new, children_total=children, max_retries=0)


def _as_child(new: NewJob, parent_id: str) -> NewJob:
    return replace(new, parent_id=parent_id)


def follow_children(
    conn: Connection, jobs: Iterable[JobRecord], expected: str, target: str, replaced: set[str], move: Move
) -> None:
    """Add the moves of those of ``jobs`` that have a parent (each ``expected -> target``) to their parents'
    totals, and move each parent as its children now say. A failed child in ``replaced`` was retried by
    the retry policy: its retry takes its place, so it is not counted as a failure. ``move`` is the state
    machine's ``transition_many``, which moves the parents in turn."""
    deltas: dict[str, Counter[str]] = {}
    for job in jobs:
        if job.parent_id is None:
            continue
        delta = deltas.setdefault(job.parent_id, Counter())
        if expected in COUNTED:
            delta[COUNTED[expected]] -= 1
        if target in COUNTED and job.id not in replaced:
            delta[COUNTED[target]] += 1
    for parent_id, delta in sorted(deltas.items()):
        _settle(conn, parent_id, delta, move)


def _settle(conn: Connection, parent_id: str, delta: Counter[str], move: Move) -> None:
    """Add ``delta`` to the parent's totals (one UPDATE, which bumps its revision for long-polls) and move it."""
    now = utcnow()
    changes: dict[str, Any] = {name: getattr(Job, name) + n for name, n in delta.items() if n}
    statement = (
        update(Job)
        .where(Job.id == parent_id)
        .values(**changes, revision=Job.revision + 1, updated_at=now)
        .returning(Job.id, Job.status, Job.cancel_requested, *(getattr(Job, c) for c in COUNT_COLUMNS))
    )
    row = conn.execute(statement).one_or_none()
    if row is not None:
        follow(conn, row, move)


def counts_of(row: Any) -> ChildCounts:
    """The children counts of a parent row."""
    return ChildCounts(
        total=row.children_total,
        running=row.children_running,
        succeeded=row.children_succeeded,
        failed=row.children_failed,
        cancelled=row.children_cancelled,
        max_failed=row.max_failed_children,
    )


def follow(conn: Connection, row: Any, move: Move) -> None:
    """Move the parent ``row`` (its id, status, cancel flag and totals) as its children say."""
    if row.status in TERMINAL:
        return
    counts = counts_of(row)
    done = counts.ended >= counts.total
    decided = row.cancel_requested or counts.failures > counts.max_failed
    if decided and not done:
        cascade(conn, row.id, move)
        return
    if row.status == "queued" and row.cancel_requested and done:
        _end(conn, row.id, "queued", "cancelled", counts, move)
        return
    if row.status == "queued" and (counts.running or counts.ended):
        move(conn, [row.id], "queued", "running", {"started_at": utcnow()})
    if done:
        target = "cancelled" if row.cancel_requested else "failed" if decided else "succeeded"
        _end(conn, row.id, "running", target, counts, move)


def _end(conn: Connection, parent_id: str, expected: str, target: str, counts: ChildCounts, move: Move) -> None:
    """End the parent in ``target``: its result (or error) says how its children ended."""
    summary = {"children": counts.public()}
    values: dict[str, Any] = {"finished_at": utcnow()}
    if target == "succeeded":
        values["result"] = {**summary, **combined_result(conn, parent_id)}
    elif target == "failed":
        message = f"{counts.failures} of {counts.total} children failed or were cancelled"
        values["error"] = {"code": "children_failed", "message": message, "details": summary}
    move(conn, [parent_id], expected, target, values)
    conn.info.setdefault(ENDED_KEY, set()).add(parent_id)


def ended_parents(conn: Connection) -> set[str]:
    """The parents this connection's transaction ended (taken: the next asks anew), to signal after its
    commit: a client that waits on a parent's end hears of it at once."""
    ended: set[str] = conn.info.pop(ENDED_KEY, set())
    return ended


def combined_result(conn: Connection, parent_id: str) -> dict[str, Any]:
    """What a succeeded parent's result adds to its children counts: for a sharded job, its children's
    outputs joined in row order (``db.shards``); for a tune, its trials and best model (``db.tunes``); nothing
    for a group."""
    return joined_shards(conn, parent_id) or tune_result(conn, parent_id)


def cascade(conn: Connection, parent_id: str, move: Move) -> None:
    """Cancel the parent's waiting children and ask its running ones to stop, skipping the rows another
    transaction holds (a later move of a child cascades again). Children that are parents cascade in turn."""
    now = utcnow()
    children = conn.execute(
        select(Job.id, Job.status, Job.children_total)
        .where(Job.parent_id == parent_id, Job.status.in_(("queued", "running")), Job.cancel_requested.is_(False))
        .with_for_update(skip_locked=True)
    ).all()
    if _close_plan(conn, parent_id):
        settle_parent(conn, parent_id, move)
        return
    if not children:
        return
    running = [child.id for child in children if child.status == "running" or child.children_total]
    if running:
        conn.execute(
            update(Job)
            .where(Job.id.in_(running))
            .values(cancel_requested=True, revision=Job.revision + 1, updated_at=now)
        )
        conn.execute(insert(JobEvent), [{"job_id": i, "kind": "cancel_requested", "created_at": now} for i in running])
        for child in children:
            if child.children_total:
                cascade(conn, child.id, move)
    waiting = [child.id for child in children if child.status == "queued" and not child.children_total]
    cancelled = {"cancel_requested": True, "finished_at": now}
    move(conn, waiting, "queued", "cancelled", cancelled, event_data={"reason": "parent_cancelled"})


def settle_parent(conn: Connection, parent_id: str, move: Move) -> None:
    """Move the parent ``parent_id`` as its children's totals say (a cancel asked, a reaper's pass)."""
    row = conn.execute(
        select(Job.id, Job.status, Job.cancel_requested, *(getattr(Job, c) for c in COUNT_COLUMNS)).where(
            Job.id == parent_id, Job.children_total > 0
        )
    ).one_or_none()
    if row is not None:
        follow(conn, row, move)


def unsettled_parents(limit: int) -> Any:
    """The select of up to ``limit`` parents not ended whose children say they should move: all ended, or
    decided (cancel asked, too many failed) with children still waiting to be cancelled."""
    ended = Job.children_succeeded + Job.children_failed + Job.children_cancelled
    decided = Job.cancel_requested.is_(True) | (Job.children_failed + Job.children_cancelled > Job.max_failed_children)
    waiting = Job.children_total - Job.children_running - ended > 0
    return (
        select(Job.id)
        .where(Job.status.in_(("queued", "running")), Job.children_total > 0)
        .where((ended >= Job.children_total) | (decided & waiting))
        .limit(limit)
    )


def parent_progress(conn: Connection | None, job: JobRecord) -> dict[str, Any] | None:
    """A parent's progress: its children done out of their total, and ``fraction`` with each running child's
    own progress (its epochs, read by the ``(parent_id, status)`` index when ``conn`` is given)."""
    counts = job.children
    if counts is None:
        return job.progress
    running = 0.0
    if conn is not None and counts.running:
        rows = conn.execute(
            select(Job.progress).where(Job.parent_id == job.id, Job.status == "running").limit(RUNNING_READ)
        ).scalars()
        running = sum(_fraction(progress) for progress in rows)
    fraction = (counts.ended + running) / counts.total
    return {"done": counts.ended, "total": counts.total, "fraction": round(min(fraction, 1.0), 4)}


# A parent's progress reads at most this many running children's own progress.
RUNNING_READ = 200


def _fraction(progress: dict[str, Any] | None) -> float:
    """How far a running child is, from its epochs (0 when it does not say)."""
    epoch, epochs = (progress or {}).get("epoch"), (progress or {}).get("epochs")
    if isinstance(epoch, int | float) and isinstance(epochs, int | float) and epochs > 0:
        return min(float(epoch) / float(epochs), 1.0)
    return 0.0


def _close_plan(conn: Connection, parent_id: str) -> bool:
    """A decided tune that planned more trials than it made plans no more: its total becomes the children it
    has. Whether it changed (the caller then moves the parent as its children now say)."""
    child = Job.__table__.alias("child")
    made = select(func.count()).select_from(child).where(child.c.parent_id == parent_id).scalar_subquery()
    closed = conn.execute(
        update(Job)
        .where(Job.id == parent_id, Job.type == "tune", Job.children_total > made)
        .values(children_total=made)
        .returning(Job.id)
    ).one_or_none()
    return closed is not None
