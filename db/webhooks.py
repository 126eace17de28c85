"""The webhook outbox and the tenants' signing secrets.

A job's terminal transition inserts its notification (``enqueue``: the job's record as the transition left it)
in the same transaction, so a committed state change always has its delivery row; a worker's sender claims due
rows with a conditional UPDATE that also pushes ``next_attempt_at`` ahead (a sender that dies mid-send leaves
the row to be tried again then)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import WebhookDelivery, WebhookSecret, utcnow
from db.records import JobRecord, aware
from db.session import read_scope, write_scope
from tensorq.core.webhook_signing import new_secret

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Delivery:
    """One notification to send: its id (the receivers' dedupe key), target, the job's record as it ended
    (``record``, JSON: ``job`` reads it) and the attempts so far."""

    id: str
    tenant_id: str
    job_id: str
    event: str
    url: str
    record: str
    attempts: int
    status: str
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @property
    def job(self) -> JobRecord:
        """The job's record as it ended (raises on a row that cannot be read: the sender counts that as a
        failed attempt of this delivery alone)."""
        return restore(self.record)


def _delivery(row: WebhookDelivery) -> Delivery:
    return Delivery(
        id=row.id,
        tenant_id=row.tenant_id,
        job_id=row.job_id,
        event=row.event,
        url=row.url,
        record=row.record,
        attempts=row.attempts,
        status=row.status,
        last_error=row.last_error,
        created_at=aware(row.created_at),
        delivered_at=aware(row.delivered_at),
    )


_DATES = ("created_at", "started_at", "finished_at", "published_at")


def snapshot(job: JobRecord) -> str:
    """The job's record as JSON, kept with its notification (the job itself may be deleted before delivery)."""
    values: dict[str, Any] = asdict(job)
    for name in _DATES:
        values[name] = values[name].isoformat() if values[name] is not None else None
    return json.dumps(values, separators=(",", ":"))


def restore(text: str) -> JobRecord:
    """The record ``snapshot`` kept (fields a later release added take their defaults)."""
    values = json.loads(text)
    known = {f.name for f in fields(JobRecord)}
    values = {k: v for k, v in values.items() if k in known}
    for name in _DATES:
        values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
    return JobRecord(**values)


def enqueue(conn: Connection, job: JobRecord, now: datetime) -> str:
    """Insert the notification of ``job``'s terminal state into the outbox (inside the caller's transaction)."""
    delivery_id = str(uuid.uuid4())
    conn.execute(
        insert(WebhookDelivery),
        {
            "id": delivery_id,
            "tenant_id": job.tenant_id,
            "job_id": job.id,
            "event": f"job.{job.status}",
            "url": job.callback_url,
            "record": snapshot(job),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "created_at": now,
            "delivered_at": None,
        },
    )
    return delivery_id


class WebhookOutbox:
    """Pending notifications, their claims and outcomes, and each tenant's signing secret."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    # -- secrets -------------------------------------------------------------------------
    def rotate_secret(self, tenant_id: str) -> tuple[str, datetime, bool]:
        """A new signing secret for the tenant, replacing any old one: (secret, created_at, replaced)."""
        secret, now = new_secret(), utcnow()
        with write_scope(self._factory) as conn:
            replaced = conn.execute(delete(WebhookSecret).where(WebhookSecret.tenant_id == tenant_id)).rowcount > 0
            conn.execute(insert(WebhookSecret), {"tenant_id": tenant_id, "secret": secret, "created_at": now})
        return secret, now, replaced

    def secret_created_at(self, tenant_id: str) -> datetime | None:
        """When the tenant's current secret was made (None: it has none); never the secret."""
        with read_scope(self._factory) as conn:
            stamp = conn.execute(select(WebhookSecret.created_at).where(WebhookSecret.tenant_id == tenant_id))
            return aware(stamp.scalar_one_or_none())

    def secret(self, tenant_id: str) -> str | None:
        """The tenant's signing secret, for the sender only."""
        with read_scope(self._factory) as conn:
            found = conn.execute(select(WebhookSecret.secret).where(WebhookSecret.tenant_id == tenant_id))
            return found.scalar_one_or_none()

    # -- deliveries ----------------------------------------------------------------------
    def due(self, limit: int = 50, per_tenant: int = 50, skip_tenants: Collection[str] = ()) -> list[tuple[str, str]]:
        """``(id, tenant_id)`` of pending deliveries whose next attempt is due, oldest due first: at most
        ``per_tenant`` of each tenant (so one tenant's backlog cannot fill the list) and none of ``skip_tenants``."""
        d = WebhookDelivery
        rank = func.row_number().over(partition_by=d.tenant_id, order_by=(d.next_attempt_at, d.id))
        ranked = (
            select(d.id, d.tenant_id, d.next_attempt_at, rank.label("rank"))
            .where(d.status == PENDING, d.next_attempt_at <= utcnow(), d.tenant_id.not_in(list(skip_tenants)))
            .subquery()
        )
        stmt = (
            select(ranked.c.id, ranked.c.tenant_id)
            .where(ranked.c.rank <= per_tenant)
            .order_by(ranked.c.next_attempt_at, ranked.c.id)
            .limit(limit)
        )
        with read_scope(self._factory) as conn:
            return [(delivery_id, tenant_id) for delivery_id, tenant_id in conn.execute(stmt)]

    def claim(self, delivery_id: str, hold_s: float) -> Delivery | None:
        """Take a due delivery for one attempt (counted now), holding it ``hold_s``; None when another sender
        took it or it is no longer due."""
        now = utcnow()
        with write_scope(self._factory) as conn:
            taken = conn.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + timedelta(seconds=hold_s))
            ).rowcount
            if taken != 1:
                return None
            row = conn.execute(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)).one()
        return _delivery(row)  # type: ignore[arg-type]

    def delivered(self, delivery_id: str) -> None:
        """Record a delivery the receiver acknowledged (2xx)."""
        now = utcnow()
        with write_scope(self._factory) as conn:
            conn.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(status=DELIVERED, delivered_at=now, last_error=None)
            )

    def attempt_failed(self, delivery_id: str, error: str, retry_in_s: float | None) -> None:
        """Record a failed attempt: try again in ``retry_in_s``, or give up (``failed``) when it is None."""
        values: dict[str, object] = {"last_error": error[:1000]}
        if retry_in_s is None:
            values["status"] = FAILED
        else:
            values["next_attempt_at"] = utcnow() + timedelta(seconds=retry_in_s)
        with write_scope(self._factory) as conn:
            conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))

    def of_job(self, tenant_id: str, job_id: str) -> list[Delivery]:
        """The tenant's deliveries for one job, oldest first."""
        stmt = (
            select(WebhookDelivery)
            .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.created_at)
        )
        with read_scope(self._factory) as conn:
            return [_delivery(row) for row in conn.execute(stmt)]  # type: ignore[arg-type]

    def purge(self, before: datetime, limit: int = 500) -> int:
        """Delete up to ``limit`` delivered or given-up deliveries made before ``before``; how many went."""
        with write_scope(self._factory) as conn:
            ids = list(
                conn.execute(
                    select(WebhookDelivery.id)
                    .where(WebhookDelivery.status != PENDING, WebhookDelivery.created_at < before)
                    .limit(limit)
                ).scalars()
            )
            if ids:
                conn.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
        return len(ids)
