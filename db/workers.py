"""The worker registry: who takes jobs (registered and heartbeating in SQL), and each queue's backlog."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.jobstats import live_counts
from db.models import Job, Worker, utcnow
from db.records import aware
from db.session import read_scope, write_scope

FORGET_AFTER = timedelta(days=1)  # rows of workers gone this long are deleted by the next heartbeat


def claimer(host: str, pid: int) -> str:
    """The name a worker process writes into the jobs it claims (``jobs.worker``): its host and process id."""
    return f"{host}:{pid}"


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself when it registers."""

    name: str
    node: str
    host: str
    pid: int
    queues: list[str]
    version: str
    gpu: dict[str, Any] | None = None


@dataclass(frozen=True)
class WorkerRecord:
    """A registered worker; ``current_job_tenant`` is the tenant of the job it runs (never shown)."""

    name: str
    node: str
    host: str
    pid: int
    gpu: dict[str, Any] | None
    queues: list[str]
    version: str
    started_at: datetime
    current_job: str | None
    current_job_tenant: str | None
    last_seen: datetime


@dataclass(frozen=True)
class GoneWorker:
    """A worker whose heartbeat stopped: its name, when it was last seen, and the name its claims carry."""

    name: str
    last_seen: datetime
    claims_as: str = ""


@dataclass(frozen=True)
class QueueStats:
    """One queue: jobs waiting and running, the age of the oldest waiting one, and live workers on it."""

    name: str
    depth: int
    running: int
    oldest_queued_age_s: float | None
    live_workers: int


class WorkerRegistry:
    """Registers workers, renews their ``last_seen``, and answers who is live and what waits where."""

    def __init__(self, factory: sessionmaker[Session], stale_s: float = 30.0) -> None:
        self._factory = factory
        self.stale_s = stale_s

    def register(self, info: WorkerInfo) -> None:
        """Insert (or replace) the worker's row, seen now, running nothing."""
        now = utcnow()
        with write_scope(self._factory) as conn:
            conn.execute(delete(Worker).where(Worker.name == info.name))
            conn.execute(
                insert(Worker),
                {
                    "name": info.name,
                    "node": info.node,
                    "host": info.host,
                    "pid": info.pid,
                    "gpu": info.gpu,
                    "queues": list(info.queues),
                    "version": info.version,
                    "started_at": now,
                    "current_job": None,
                    "last_seen": now,
                },
            )

    def heartbeat(self, name: str, current_job: str | None) -> bool:
        """Renew ``last_seen`` and record the job it runs; False when the row is gone (register again)."""
        now = utcnow()
        with write_scope(self._factory) as conn:
            changed = conn.execute(
                update(Worker).where(Worker.name == name).values(last_seen=now, current_job=current_job)
            ).rowcount
            conn.execute(delete(Worker).where(Worker.last_seen < now - FORGET_AFTER))
        return changed == 1

    def leave(self, name: str) -> None:
        """Delete the worker's row (a clean shutdown)."""
        with write_scope(self._factory) as conn:
            conn.execute(delete(Worker).where(Worker.name == name))

    def gone(self) -> list[GoneWorker]:
        """The workers not seen within ``stale_s`` (their rows stay until ``forget``)."""
        since = utcnow() - timedelta(seconds=self.stale_s)
        with read_scope(self._factory) as conn:
            rows = conn.execute(
                select(Worker.name, Worker.last_seen, Worker.host, Worker.pid).where(Worker.last_seen < since)
            ).all()
        return [GoneWorker(name, aware(seen), claimer(host, pid)) for name, seen, host, pid in rows]

    def forget(self, worker: GoneWorker) -> bool:
        """Delete a gone worker's row unless it heartbeated since (a conditional DELETE); True when this call did."""
        with write_scope(self._factory) as conn:
            deleted = conn.execute(
                delete(Worker).where(Worker.name == worker.name, Worker.last_seen == worker.last_seen)
            )
        return deleted.rowcount == 1

    def live(self) -> list[WorkerRecord]:
        """Workers seen within ``stale_s``, by name, with the tenant of the job each runs."""
        since = utcnow() - timedelta(seconds=self.stale_s)
        query = (
            select(Worker, Job.tenant_id)
            .outerjoin(Job, Job.id == Worker.current_job)
            .where(Worker.last_seen >= since)
            .order_by(Worker.name)
        )
        with read_scope(self._factory) as conn:
            rows = conn.execute(query).all()
        return [
            WorkerRecord(
                name=row.name,
                node=row.node,
                host=row.host,
                pid=row.pid,
                gpu=row.gpu,
                queues=list(row.queues or []),
                version=row.version,
                started_at=aware(row.started_at) or utcnow(),
                current_job=row.current_job,
                current_job_tenant=row.tenant_id,
                last_seen=aware(row.last_seen) or utcnow(),
            )
            for row in rows
        ]

    def served_queues(self) -> set[str]:
        """The queues at least one live worker takes."""
        return {queue for worker in self.live() for queue in worker.queues}

    def queues(
        self,
        queue_of_type: Mapping[str, str],
        live: list[tuple[str, str, int, datetime | None]] | None = None,
        workers: list[WorkerRecord] | None = None,
    ) -> list[QueueStats]:
        """Each queue's depth, running jobs, oldest queued age and live workers (every tenant together); ``live``
        is ``live_counts`` and ``workers`` is ``live()`` when the caller has read them already."""
        now = utcnow()
        rows = live
        if rows is None:
            with read_scope(self._factory) as conn:
                rows = live_counts(conn)
        workers = self.live() if workers is None else workers
        names = list(dict.fromkeys(queue_of_type.values()))
        depth = dict.fromkeys(names, 0)
        running = dict.fromkeys(names, 0)
        oldest: dict[str, datetime] = {}
        for job_type, status, count, first in rows:
            queue = queue_of_type.get(job_type)
            if queue is None:
                continue
            if status == "running":
                running[queue] += count
                continue
            depth[queue] += count
            since = aware(first)
            if since is not None and (queue not in oldest or since < oldest[queue]):
                oldest[queue] = since
        return [
            QueueStats(
                name=name,
                depth=depth[name],
                running=running[name],
                oldest_queued_age_s=(now - oldest[name]).total_seconds() if name in oldest else None,
                live_workers=sum(1 for w in workers if name in w.queues),
            )
            for name in names
        ]
