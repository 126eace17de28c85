"""The job log store: the lines a worker wrote while it ran each job, bounded per job, read by the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Job, JobLog, utcnow
from db.records import TERMINAL, aware
from db.session import read_scope, write_scope
from tensorq.core.errors import NotFound

MAX_MESSAGE_CHARS = 4000


@dataclass(frozen=True)
class LogLine:
    """One line to store: the job's attempt, the level and logger it came from, and its text."""

    attempt: int
    level: str
    logger: str
    message: str
    created_at: datetime


@dataclass(frozen=True)
class LogRecord:
    """One stored line; ``seq`` orders a job's lines and is the cursor of the next page."""

    seq: int
    attempt: int
    level: str
    logger: str
    message: str
    created_at: datetime


@dataclass(frozen=True)
class LogPage:
    """Lines after a cursor, and whether the job has finished (no more lines will come)."""

    lines: list[LogRecord]
    finished: bool


def log_row(job_id: str, line: LogLine) -> dict[str, Any]:
    """The ``job_logs`` row of one of the job's lines, cut to the columns' sizes."""
    return {
        "job_id": job_id,
        "attempt": line.attempt,
        "level": line.level[:10],
        "logger": line.logger[:100],
        "message": line.message[:MAX_MESSAGE_CHARS],
        "created_at": line.created_at,
    }


class JobLogStore:
    """Appends a job's lines in batches, keeping at most ``max_lines`` of the latest per job."""

    def __init__(self, factory: sessionmaker[Session], max_lines: int = 2000) -> None:
        self._factory = factory
        self.max_lines = max_lines

    def append(self, job_id: str, lines: list[LogLine]) -> None:
        """Store ``lines`` for the job, then drop its oldest lines beyond ``max_lines``."""
        if not lines:
            return
        rows = [log_row(job_id, line) for line in lines[-self.max_lines :]]
        with write_scope(self._factory) as conn:
            conn.execute(insert(JobLog), rows)
            oldest_kept = conn.execute(
                select(JobLog.id)
                .where(JobLog.job_id == job_id)
                .order_by(JobLog.id.desc())
                .offset(self.max_lines - 1)
                .limit(1)
            ).scalar_one_or_none()
            if oldest_kept is not None:
                conn.execute(delete(JobLog).where(JobLog.job_id == job_id, JobLog.id < oldest_kept))

    def page(self, tenant_id: str, job_id: str, *, after: int = 0, limit: int = 500) -> LogPage:
        """The tenant's job's lines with ``seq > after``, oldest first; NotFound for another tenant's job."""
        with read_scope(self._factory) as conn:
            job = conn.execute(select(Job.tenant_id, Job.status).where(Job.id == job_id)).first()
            if job is None or job.tenant_id != tenant_id:
                raise NotFound(f"job {job_id} not found")
            rows = conn.execute(
                select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after).order_by(JobLog.id).limit(limit)
            ).all()
        lines = [
            LogRecord(
                seq=row.id,
                attempt=row.attempt,
                level=row.level,
                logger=row.logger,
                message=row.message,
                created_at=aware(row.created_at) or utcnow(),
            )
            for row in rows
        ]
        return LogPage(lines=lines, finished=job.status in TERMINAL)
