"""Fair share within a queue: tenants take turns by weight, ``priority`` orders a tenant's own jobs (issue 23).

Stride scheduling on the SQL backlog. Each tenant of a queue has a ``pass`` (``fair_turns``); a job started
for a tenant of weight ``w`` adds ``1/w`` to it. The next job of a queue is the head of the tenant with the
lowest pass (ties: the tenant whose oldest queued job is oldest), and a tenant's head is its queued job of the
lowest ``priority`` number, then the oldest. The queue's virtual time (the row of tenant ``*``) is the pass of
the last tenant served; a tenant's pass is never below it, so a tenant that was idle gets its turn at once but
no credit for the time it was away.

A Celery message is only a token for its queue: the worker that receives one claims the job this module
picks, with the same conditional claim as ever, so nothing runs twice, and every queued job keeps a message of
its own, so nothing is lost. Reads cost what the queue's backlog holds (the partial index of queued jobs).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, case, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from db.models import FairTurn, Job, Tenant
from db.records import aware
from db.session import read_scope, write_scope
from tensorq.core.routing import ROUTES, types_of

VIRTUAL_TIME = "*"  # the tenant id of a queue's virtual-time row


@dataclass(frozen=True)
class TenantBacklog:
    """One tenant's queued jobs in a queue: how many, since when, its weight and its pass."""

    tenant_id: str
    name: str
    queued: int
    oldest: datetime
    weight: float
    pass_: float


@dataclass(frozen=True)
class QueueTurns:
    """A queue's tenants with queued jobs (fairest first) and its virtual time."""

    queue: str
    tenants: list[TenantBacklog]
    virtual_time: float

    def order_key(self, tenant: TenantBacklog) -> tuple[float, datetime]:
        """How tenants compare for the next turn: the lower pass, then the older backlog."""
        return (max(tenant.pass_, self.virtual_time), tenant.oldest)


def _queued(types: Collection[str]) -> list:
    """The conditions of a queued job of ``types`` that a worker may take (a parent is run by its children)."""
    return [
        Job.status == "queued",
        Job.type.in_(list(types)),
        Job.cancel_requested.is_(False),
        Job.children_total == 0,
    ]


def read_turns(conn: Connection, queue: str, types: Collection[str], weight: Callable[[str], float]) -> QueueTurns:
    """The tenants with queued jobs in ``queue`` (of ``types``), with their weights and passes."""
    rows = conn.execute(
        select(Job.tenant_id, Tenant.name, func.count(), func.min(Job.created_at))
        .join(Tenant, Tenant.id == Job.tenant_id)
        .where(*_queued(types))
        .group_by(Job.tenant_id, Tenant.name)
    ).all()
    passes = dict(conn.execute(select(FairTurn.tenant_id, FairTurn.pass_value).where(FairTurn.queue == queue)).all())
    virtual = float(passes.get(VIRTUAL_TIME, 0.0))
    tenants = [
        TenantBacklog(tenant_id, name, int(n), aware(first) or first, weight(name), float(passes.get(tenant_id, 0.0)))
        for tenant_id, name, n, first in rows
    ]
    turns = QueueTurns(queue, tenants, virtual)
    return QueueTurns(queue, sorted(tenants, key=turns.order_key), virtual)


def head_of(conn: Connection, tenant_id: str, types: Collection[str]) -> str | None:
    """The tenant's next queued job among ``types``: the lowest priority number, then the oldest."""
    return conn.execute(
        select(Job.id)
        .where(Job.tenant_id == tenant_id, *_queued(types))
        .order_by(Job.priority, Job.created_at, Job.id)
        .limit(1)
    ).scalar_one_or_none()


def rank_in_tenant(conn: Connection, tenant_id: str, types: Collection[str], priority: int, created: datetime) -> int:
    """How many of the tenant's queued jobs among ``types`` come before one of ``priority`` made at ``created``."""
    ahead = or_(Job.priority < priority, and_(Job.priority == priority, Job.created_at < created))
    return int(
        conn.execute(select(func.count()).where(Job.tenant_id == tenant_id, *_queued(types), ahead)).scalar_one()
    )


def _running_by_tenant(conn: Connection) -> dict[str, int]:
    """Running jobs per tenant (the partial index of running jobs)."""
    rows = conn.execute(select(Job.tenant_id, func.count()).where(Job.status == "running").group_by(Job.tenant_id))
    return {tenant_id: int(n) for tenant_id, n in rows}


def _bump(conn: Connection, queue: str, tenant_id: str, floor: float, step: float) -> None:
    """``pass = max(pass, floor) + step`` for the tenant, in one upsert (no read-modify-write)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(FairTurn).values(queue=queue, tenant_id=tenant_id, pass_value=floor + step)
    raised = case((FairTurn.pass_value < floor, floor), else_=FairTurn.pass_value) + step
    conn.execute(stmt.on_conflict_do_update(index_elements=["queue", "tenant_id"], set_={"pass_value": raised}))


class FairShare:
    """Picks the next job of a queue by fair share, and tells a queued job how many come before it."""

    def __init__(self, factory: sessionmaker[Session], weight: Callable[[str], float]) -> None:
        self._factory = factory
        self.weight = weight

    def turns(self, queue: str, types: Collection[str]) -> QueueTurns:
        """The queue's tenants with queued jobs, fairest first."""
        with read_scope(self._factory) as conn:
            return read_turns(conn, queue, types, self.weight)

    def pick_for(
        self, job_id: str, queues: Collection[str], running_limit: Callable[[str], int] | None = None
    ) -> str | None:
        """The job a delivery of ``job_id`` runs when its queue is one of ``queues``: the next job of that queue
        by fair share (None when nothing waits there, the job is unknown or its queue is not fair-shared)."""
        with read_scope(self._factory) as conn:
            job_type = conn.execute(select(Job.type).where(Job.id == job_id)).scalar_one_or_none()
        if job_type not in ROUTES or ROUTES[job_type].queue not in queues:
            return None
        queue = ROUTES[job_type].queue
        return self.pick(queue, types_of(queue), running_limit)

    def pick(self, queue: str, types: Collection[str], running_limit: Callable[[str], int] | None = None) -> str | None:
        """The next job of ``queue`` (None when nothing waits there), its tenant's turn taken now: the tenant's
        pass moves on by ``1/weight`` and the queue's virtual time up to the tenant's pass. With
        ``running_limit`` (tenant name -> most running jobs) a tenant at its limit is passed over."""
        with write_scope(self._factory) as conn:
            turns = read_turns(conn, queue, types, self.weight)
            running = _running_by_tenant(conn) if running_limit is not None else {}
            for tenant in turns.tenants:
                if running_limit is not None and running.get(tenant.tenant_id, 0) >= running_limit(tenant.name):
                    continue
                job_id = head_of(conn, tenant.tenant_id, types)
                if job_id is None:
                    continue
                at = max(tenant.pass_, turns.virtual_time)
                _bump(conn, queue, tenant.tenant_id, at, 1.0 / tenant.weight)
                _bump(conn, queue, VIRTUAL_TIME, at, 0.0)
                return job_id
        return None

    def position(self, queue: str, types: Collection[str], tenant_id: str, priority: int, created: datetime) -> int:
        """How many queued jobs of ``queue`` start before a queued job of ``tenant_id`` (by the turns as they stand)."""
        with read_scope(self._factory) as conn:
            turns = read_turns(conn, queue, types, self.weight)
            rank = rank_in_tenant(conn, tenant_id, types, priority, created)
        return position_in(turns, tenant_id, rank)


def position_in(turns: QueueTurns, tenant_id: str, rank: int) -> int:
    """Jobs that start before the job ``rank`` places into its tenant's own order, the turns going as they stand.

    The tenant starts it at its turn ``rank`` (counting from 0), at pass ``p = own + rank / w``; every other
    tenant ``u`` starts a job at each of its passes ``own_u + k / w_u`` below ``p`` (at ``p``, when its
    backlog is the older), up to the jobs it has queued.
    """
    mine = next((t for t in turns.tenants if t.tenant_id == tenant_id), None)
    if mine is None:
        return 0
    start, oldest = turns.order_key(mine)
    at = start + rank / mine.weight
    ahead = rank
    for other in turns.tenants:
        if other.tenant_id == tenant_id:
            continue
        own, other_oldest = turns.order_key(other)
        if own > at:
            continue
        turns_before = int((at - own) * other.weight + 1e-9)  # passes own, own + 1/w, ... strictly below at
        exact = abs(own + turns_before / other.weight - at) < 1e-9
        count = turns_before + (1 if exact and other_oldest < oldest else 0)
        if not exact:
            count += 1
        ahead += min(other.queued, count)
    return ahead


def unknown_tenants(factory: sessionmaker[Session], names: Collection[str]) -> list[str]:
    """The names among ``names`` that no tenant has (``tenant_quotas`` checked at a worker's start)."""
    with read_scope(factory) as conn:
        known = set(conn.execute(select(Tenant.name).where(Tenant.name.in_(list(names)))).scalars())
    return sorted(set(names) - known)
