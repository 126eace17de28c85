"""A queued job's outlook: its position in what its queue runs next, and when it is expected to start (issue 23).

The position follows the scheduling order (``db/fairshare.py`` under fair share, else priority then age, the
broker's order). The expected start places the jobs ahead on the queue's live workers, each taking the mean
of its type's latest run times, from when each worker is free (a busy worker: its job's mean run time less
the time it has run). Unknown (None) while no live worker serves the queue or the type has no run time yet.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from db.fairshare import QueueTurns, position_in, rank_in_tenant, read_turns
from db.models import Job, Worker, WorkerDrain, utcnow
from db.records import JobRecord, aware
from db.session import read_scope
from tensorq.core.routing import ROUTES, types_of

RECENT_RUNS = 20  # the run times a type's mean is taken over
MOST_AHEAD = 100_000  # positions beyond this are not placed on workers (the estimate is then None)


@dataclass(frozen=True)
class Outlook:
    """Where a queued job stands: ``queue_position`` (jobs that start before it) and ``expected_start_s``."""

    queue_position: int | None = None
    expected_start_s: float | None = None


@dataclass(frozen=True)
class QueueState:
    """What every queued job of a queue is estimated from: the turns, when each worker is free, run times."""

    queue: str
    turns: QueueTurns | None
    free_in_s: list[float]
    mean_run_s: dict[str, float]


def mean_run_times(conn: Connection, types: Collection[str]) -> dict[str, float]:
    """The mean run time of each type's latest ``RECENT_RUNS`` successes (types with none are left out)."""
    means: dict[str, float] = {}
    for job_type in types:
        rows = conn.execute(
            select(Job.started_at, Job.finished_at)
            .where(Job.status == "succeeded", Job.type == job_type)
            .order_by(Job.finished_at.desc())
            .limit(RECENT_RUNS)
        ).all()
        spans = [(aware(f) - aware(s)).total_seconds() for s, f in rows if s is not None and f is not None]
        if spans:
            means[job_type] = max(0.0, sum(spans) / len(spans))
    return means


def start_in(ahead: int, free_in_s: list[float], run_s: float) -> float | None:
    """When the job with ``ahead`` jobs before it starts: each goes to the first worker free, for ``run_s``."""
    if not free_in_s or ahead > MOST_AHEAD:
        return None
    free = sorted(free_in_s)
    heapq.heapify(free)
    for _ in range(ahead):
        heapq.heappush(free, heapq.heappop(free) + run_s)
    return round(free[0], 1)


class Outlooks:
    """Reads queue states and tells queued jobs their outlook."""

    def __init__(self, factory: sessionmaker[Session], weight: Callable[[str], float], stale_s: float) -> None:
        self._factory = factory
        self.weight = weight
        self.stale_s = stale_s

    def state(self, queue: str, fair: bool) -> QueueState:
        """The queue's turns (under fair share), its live workers' free times and its types' run times."""
        types = types_of(queue)
        now = utcnow()
        with read_scope(self._factory) as conn:
            turns = read_turns(conn, queue, types, self.weight) if fair else None
            draining = select(WorkerDrain.host)
            rows = conn.execute(
                select(Worker.queues, Job.type, Job.started_at)
                .outerjoin(Job, and_(Job.id == Worker.current_job, Job.status == "running"))
                .where(Worker.last_seen >= now - timedelta(seconds=self.stale_s), Worker.host.not_in(draining))
            ).all()
            busy_types = {t for _q, t, _s in rows if t is not None}
            means = mean_run_times(conn, set(types) | busy_types)
        free = []
        for queues, job_type, started in rows:
            if queue not in (queues or []):
                continue
            ran = (now - aware(started)).total_seconds() if started is not None else 0.0
            free.append(max(0.0, means.get(job_type, 0.0) - ran) if job_type is not None else 0.0)
        return QueueState(queue, turns, free, means)

    def position(self, job: JobRecord, state: QueueState) -> int:
        """How many queued jobs of the job's queue start before it."""
        types = types_of(state.queue)
        with read_scope(self._factory) as conn:
            if state.turns is not None:
                created = job.created_at or utcnow()
                return position_in(
                    state.turns, job.tenant_id, rank_in_tenant(conn, job.tenant_id, types, job.priority, created)
                )
            ahead = or_(
                Job.priority < job.priority, and_(Job.priority == job.priority, Job.created_at < job.created_at)
            )
            query = select(func.count()).where(
                Job.status == "queued",
                Job.type.in_(types),
                Job.cancel_requested.is_(False),
                Job.children_total == 0,  # a parent is run by its children
                ahead,
            )
            return int(conn.execute(query).scalar_one())

    def of(self, job: JobRecord, state: QueueState) -> Outlook:
        """The outlook of a queued job of ``state``'s queue."""
        position = self.position(job, state)
        run_s = state.mean_run_s.get(job.type)
        expected = start_in(position, state.free_in_s, run_s) if run_s is not None else None
        return Outlook(position, expected)


def queue_of(job_type: str) -> str | None:
    """The queue a job type's messages go to (None for a type no queue carries)."""
    route = ROUTES.get(job_type)
    return route.queue if route is not None else None
