"""Recovery from lost workers: running jobs whose lease expired, or whose worker is known gone, are settled,
one transaction each."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.orm import Session, sessionmaker

from db.changes import JobChanges
from db.models import Job, utcnow
from db.records import aware
from db.session import read_scope, write_scope
from db.transitions import RELEASED, transition


@dataclass
class Recovery:
    """What one recovery pass did, by job id: leases settled, messages put back or re-published, jobs swept."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)

    def settled(self) -> list[str]:
        """The jobs whose expired lease this pass settled."""
        return self.requeued + self.failed + self.cancelled

    def did_anything(self) -> bool:
        """Whether the pass changed any job."""
        return bool(self.settled() or self.republished or self.restored or self.swept or self.parents)


@dataclass(frozen=True)
class Settlement:
    """Where an expired lease leads: the target status, the columns it writes and its event's data."""

    target: str
    values: dict[str, Any]
    note: dict[str, Any]


_EXPIRED = select(
    Job.id,
    Job.lease_token,
    Job.attempts,
    Job.max_attempts,
    Job.cancel_requested,
    Job.timeout_s,
    Job.started_at,
)


def settle(row: Row[*tuple[Any, ...]], now: datetime, reason: str = "lease_expired") -> Settlement:
    """Where an expired lease leads: cancelled, failed (timeout or worker_lost) or back to queued; ``reason``
    names why the lease ended in the cancel's and the re-queue's event."""
    done = {**RELEASED, "finished_at": now}
    started = aware(row.started_at)
    if row.cancel_requested:
        return Settlement("cancelled", done, {"reason": reason})
    if row.timeout_s and started and now - started > timedelta(seconds=row.timeout_s):
        error = {"code": "timeout", "message": f"job exceeded its timeout_s of {row.timeout_s}"}
        return Settlement("failed", {**done, "error": error}, {"code": "timeout"})
    if row.attempts >= row.max_attempts:
        error = {"code": "worker_lost", "message": f"worker lost {row.attempts} times; giving up"}
        return Settlement("failed", {**done, "error": error}, {"code": "worker_lost"})
    return Settlement("queued", {**RELEASED, "published_at": None}, {"reason": reason})


def requeue_expired(factory: sessionmaker[Session], changes: JobChanges | None = None) -> Recovery:
    """Deal with running jobs whose lease expired: each is cancelled when a cancel was asked,
    failed with ``timeout`` past its ``timeout_s``, failed with ``worker_lost`` at ``max_attempts``,
    and re-queued otherwise. ``changes`` hears of each settled job after its commit."""
    now = utcnow()
    return _settle_running(factory, changes, now, "lease_expired", Job.lease_expires_at < now)


def requeue_abandoned(
    factory: sessionmaker[Session],
    workers: Collection[str],
    lease_s: float,
    idle_s: float,
    changes: JobChanges | None = None,
) -> Recovery:
    """Settle, as an expired lease is settled, the running jobs claimed by ``workers`` (known gone) whose lease
    (``lease_s`` long) was last renewed over ``idle_s`` ago: their event's reason is ``worker_gone``."""
    if not workers:
        return Recovery()
    now = utcnow()
    renewed_before = now + timedelta(seconds=lease_s - idle_s)
    unrenewed = Job.lease_expires_at < renewed_before
    return _settle_running(factory, changes, now, "worker_gone", unrenewed, Job.worker.in_(sorted(workers)))


def _settle_running(
    factory: sessionmaker[Session],
    changes: JobChanges | None,
    now: datetime,
    reason: str,
    *where: ColumnElement[bool],
) -> Recovery:
    """Settle the running jobs ``where`` selects, one transaction each, under the lease each was read with."""
    recovery = Recovery()
    with read_scope(factory) as conn:
        expired = conn.execute(_EXPIRED.where(Job.status == "running", *where)).all()
    buckets = {"queued": recovery.requeued, "failed": recovery.failed, "cancelled": recovery.cancelled}
    for row in expired:
        # One transaction per job: a worker finishing one of them at the same time never waits on a
        # lock this pass holds for another job (or for the finished-job totals).
        settlement = settle(row, now, reason)
        with write_scope(factory) as conn:
            won = transition(
                conn,
                row.id,
                "running",
                settlement.target,
                settlement.values,
                token=row.lease_token,
                event_data=settlement.note,
            )
        if won is not None:
            buckets[settlement.target].append(row.id)
    if changes is not None:
        changes.note_all(recovery.settled())
    return recovery
