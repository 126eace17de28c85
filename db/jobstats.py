"""Figures over every job, computed in SQL at read time (so every API process reports the same)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Float, case, cast, extract, func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from db.models import Job
from db.session import read_scope

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class DurationHistogram:
    """Run times (started to finished) of the finished jobs of one type and outcome."""

    job_type: str
    outcome: str
    buckets: list[tuple[float, int]]  # (upper bound, jobs at or under it), cumulative
    count: int
    total_s: float


def _seconds(dialect: str) -> ColumnElement[float]:
    """``finished_at - started_at`` in seconds, in the database's own arithmetic."""
    if dialect == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    return cast(extract("epoch", Job.finished_at - Job.started_at), Float)


def job_durations(factory: sessionmaker[Session], bounds: Sequence[float]) -> list[DurationHistogram]:
    """One cumulative histogram per (type, outcome) of every finished job that started, in one query."""
    with read_scope(factory) as conn:
        seconds = _seconds(conn.dialect.name)
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in bounds]
        rows = conn.execute(
            select(Job.type, Job.status, func.count(), func.sum(seconds), *columns)
            .where(Job.status.in_(FINISHED), Job.started_at.is_not(None), Job.finished_at.is_not(None))
            .group_by(Job.type, Job.status)
        ).all()
    return [
        DurationHistogram(
            job_type=row[0],
            outcome=row[1],
            count=int(row[2]),
            total_s=float(row[3] or 0.0),
            buckets=[(bound, int(n or 0)) for bound, n in zip(bounds, row[4:], strict=True)],
        )
        for row in rows
    ]
