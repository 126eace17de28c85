"""Queued and running jobs per type as running totals (issue 26): each transaction that adds or moves jobs
appends its changes to ``live_job_deltas``, so ``/metrics`` reads a few rows whatever the backlog holds.

The rows are only ever inserted (no writer waits on another's row lock); a reader that finds more than
``FOLD_ABOVE`` of them folds them into one row per (type, status), deleting exactly the rows it sums
(``DELETE ... RETURNING``), so concurrent folds never count a row twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import LiveJobDelta
from db.session import write_scope

LIVE = ("queued", "running")
FOLD_ABOVE = 256


def count_moves(conn: Connection, moves: Iterable[tuple[str, str, int]]) -> None:
    """Append ``(type, status, +n or -n)`` changes of queued and running jobs (other statuses are not counted),
    in the caller's transaction."""
    statement = moves_statement(moves)
    if statement is not None:
        conn.execute(*statement)


def moves_statement(moves: Iterable[tuple[str, str, int]]) -> tuple[Any, list[dict[str, Any]]] | None:
    """The INSERT that ``count_moves`` runs, and its rows (None when nothing moved); for
    ``db.together.run_together``."""
    totals: Counter[tuple[str, str]] = Counter()
    for job_type, status, jobs in moves:
        if status in LIVE:
            totals[(job_type, status)] += jobs
    rows = [{"type": t, "status": s, "jobs": n} for (t, s), n in sorted(totals.items()) if n]
    return (insert(LiveJobDelta), rows) if rows else None


def live_sums(conn: Connection) -> tuple[dict[tuple[str, str], int], int]:
    """Queued and running jobs per (type, status) from the running totals, and how many rows they came from."""
    rows = conn.execute(
        select(LiveJobDelta.type, LiveJobDelta.status, func.sum(LiveJobDelta.jobs), func.count()).group_by(
            LiveJobDelta.type, LiveJobDelta.status
        )
    ).all()
    return {(t, s): int(total) for t, s, total, _ in rows if int(total)}, sum(int(n) for *_, n in rows)


def fold_if_long(factory: sessionmaker[Session], rows: int) -> None:
    """Fold the totals into one row per (type, status) when ``rows`` (as ``live_sums`` counted them) is over
    ``FOLD_ABOVE``."""
    if rows > FOLD_ABOVE:
        with write_scope(factory) as conn:
            _fold(conn)


def _fold(conn: Connection) -> None:
    """Replace the rows there are with their sums: exactly the rows this DELETE removed are summed again."""
    gone = conn.execute(delete(LiveJobDelta).returning(LiveJobDelta.type, LiveJobDelta.status, LiveJobDelta.jobs))
    count_moves(conn, [(t, s, int(n)) for t, s, n in gone])
