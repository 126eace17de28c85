"""The backlog per job type, read from SQL: what the autoscaler and the queue metrics are computed from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from db.jobstats import live_counts
from db.models import utcnow
from db.records import aware
from db.session import read_scope


@dataclass(frozen=True)
class TypeBacklog:
    """Queued and running jobs of one job type, and the age of its oldest queued job."""

    type: str
    queued: int
    running: int
    oldest_queued_s: float


def backlog_by_type(factory: sessionmaker[Session], now: datetime | None = None) -> list[TypeBacklog]:
    """One row per job type that has queued or running jobs (one grouped query)."""
    now = now or utcnow()
    counts: dict[str, dict[str, int]] = {}
    oldest: dict[str, float] = {}
    with read_scope(factory) as conn:
        for job_type, status, count, first in live_counts(conn):
            counts.setdefault(job_type, {"queued": 0, "running": 0})[status] = int(count)
            if status == "queued" and first is not None:
                oldest[job_type] = max(0.0, (now - aware(first)).total_seconds())
    return [
        TypeBacklog(job_type, c["queued"], c["running"], oldest.get(job_type, 0.0))
        for job_type, c in sorted(counts.items())
    ]
