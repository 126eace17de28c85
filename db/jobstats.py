"""Figures over every job for ``/metrics``: finished jobs from running totals, live ones from the backlog.

The totals (``job_totals``) are kept up in the transaction that finishes each job, and the queued and
running counts (``db.livecounts``) in every transaction that adds or moves jobs, so a scrape reads a few
rows whatever the size of the jobs table or of the backlog.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from db.livecounts import fold_if_long, live_sums
from db.models import Job, JobTotal
from db.records import aware
from db.session import read_scope

FINISHED = ("succeeded", "failed", "cancelled")
# Upper bounds (seconds) of the run-time histogram; the totals are kept per bucket of these.
DURATION_BOUNDS: tuple[float, ...] = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
NEVER_STARTED = -1


@dataclass(frozen=True)
class DurationHistogram:
    """Run times (started to finished) of the finished jobs of one type and outcome."""

    job_type: str
    outcome: str
    buckets: list[tuple[float, int]]  # (upper bound, jobs at or under it), cumulative
    count: int
    total_s: float


def duration_bucket(started_at: datetime | None, finished_at: datetime | None) -> tuple[int, float]:
    """The histogram bucket of a run and its seconds (``NEVER_STARTED`` and 0 for a job that never ran)."""
    started, finished = aware(started_at), aware(finished_at)
    if started is None or finished is None:
        return NEVER_STARTED, 0.0
    seconds = max(0.0, (finished - started).total_seconds())
    return bisect_left(DURATION_BOUNDS, seconds), seconds


def count_finished_many(
    conn: Connection, finished: Iterable[tuple[str, str, datetime | None, datetime | None]]
) -> None:
    """Add finished jobs, each ``(type, status, started_at, finished_at)``, to the totals in one upsert (inside the
    transaction that finished them)."""
    statement = finished_statement(conn.dialect.name, finished)
    if statement is not None:
        upsert, rows = statement
        conn.execute(upsert.values(rows))


def finished_statement(
    dialect_name: str, finished: Iterable[tuple[str, str, datetime | None, datetime | None]]
) -> tuple[Any, list[dict[str, Any]]] | None:
    """The upsert that ``count_finished_many`` runs (without its values), and its rows (None for no job); for
    ``db.together.run_together``."""
    totals: dict[tuple[str, str, int], list[float]] = {}
    for job_type, status, started_at, finished_at in finished:
        bucket, seconds = duration_bucket(started_at, finished_at)
        entry = totals.setdefault((job_type, status, bucket), [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
    if not totals:
        return None
    # In key order: concurrent transactions take the rows' locks in the same order.
    rows = [
        {"type": t, "status": s, "bucket": b, "jobs": n, "seconds": sec}
        for (t, s, b), (n, sec) in sorted(totals.items())
    ]
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(JobTotal)
    stmt = stmt.on_conflict_do_update(
        index_elements=["type", "status", "bucket"],
        set_={"jobs": JobTotal.jobs + stmt.excluded.jobs, "seconds": JobTotal.seconds + stmt.excluded.seconds},
    )
    return stmt, rows


def job_durations(factory: sessionmaker[Session]) -> list[DurationHistogram]:
    """One cumulative histogram per (type, outcome) of every finished job that started, from the totals."""
    with read_scope(factory) as conn:
        rows = conn.execute(
            select(JobTotal.type, JobTotal.status, JobTotal.bucket, JobTotal.jobs, JobTotal.seconds).where(
                JobTotal.bucket != NEVER_STARTED
            )
        ).all()
    per: dict[tuple[str, str], list[int]] = {}
    seconds: dict[tuple[str, str], float] = {}
    for job_type, status, bucket, jobs, total in rows:
        counts = per.setdefault((job_type, status), [0] * (len(DURATION_BOUNDS) + 1))
        counts[bucket] += int(jobs)
        seconds[(job_type, status)] = seconds.get((job_type, status), 0.0) + float(total)
    histograms = []
    for (job_type, status), counts in sorted(per.items()):
        cumulative, running = [], 0
        for bound, n in zip(DURATION_BOUNDS, counts, strict=False):
            running += n
            cumulative.append((bound, running))
        histograms.append(DurationHistogram(job_type, status, cumulative, sum(counts), seconds[(job_type, status)]))
    return histograms


def jobs_by_type_and_status(
    factory: sessionmaker[Session], live: list[tuple[str, str, int, datetime | None]] | None = None
) -> dict[tuple[str, str], int]:
    """How many jobs there are of each (type, status): finished ones from the totals, live ones counted (or
    ``live`` as ``live_counts`` gave it, read once for a whole scrape)."""
    with read_scope(factory) as conn:
        finished = conn.execute(
            select(JobTotal.type, JobTotal.status, func.sum(JobTotal.jobs)).group_by(JobTotal.type, JobTotal.status)
        ).all()
        if live is None:
            live = live_counts(conn)
    counts = {(t, s): int(n) for t, s, n in finished}
    counts.update({(t, s): n for t, s, n, _ in live})
    return counts


def live_counts(conn: Connection) -> list[tuple[str, str, int, datetime | None]]:
    """(type, status, jobs, oldest created_at) of queued and running jobs: the counts from the running totals
    (``db.livecounts``), the oldest queued job of each type by one probe of the queued partial index (None for
    running jobs)."""
    return _live(conn, live_sums(conn)[0])


def _live(conn: Connection, sums: dict[tuple[str, str], int]) -> list[tuple[str, str, int, datetime | None]]:
    rows: list[tuple[str, str, int, datetime | None]] = []
    for (job_type, status), jobs in sorted(sums.items()):
        first = None
        if status == "queued":
            # ORDER BY ... LIMIT 1, not min(): with stale statistics (no ANALYZE since the backlog grew) Postgres
            # aggregates over every entry of the index instead of stopping at the first (38 ms at 50,000 jobs).
            oldest = (
                select(Job.created_at)
                .where(Job.status == "queued", Job.type == job_type, Job.children_total == 0)
                .order_by(Job.created_at)
                .limit(1)
            )
            first = conn.execute(oldest).scalar()
        rows.append((job_type, status, jobs, first))
    return rows


class JobStats:
    """The ``/metrics`` figures of every job, read from the totals and the live backlog."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def durations(self) -> list[DurationHistogram]:
        """One cumulative run-time histogram per (type, outcome)."""
        return job_durations(self._factory)

    def by_type_and_status(
        self, live: list[tuple[str, str, int, datetime | None]] | None = None
    ) -> dict[tuple[str, str], int]:
        """How many jobs there are of each (type, status) (with ``live``: those counts of queued and running)."""
        return jobs_by_type_and_status(self._factory, live)

    def live(self) -> list[tuple[str, str, int, datetime | None]]:
        """(type, status, jobs, oldest created_at) of queued and running jobs (folding the running totals when
        they grew long)."""
        with read_scope(self._factory) as conn:
            sums, rows = live_sums(conn)
            live = _live(conn, sums)
        fold_if_long(self._factory, rows)
        return live
