"""The job store: owns the state machine; every transition is one conditional UPDATE."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.jobstats import count_finished
from db.models import Job, JobEvent, JobTag, Model, ModelVersion, Tenant, utcnow
from db.records import (
    TERMINAL,
    Claim,
    EventRecord,
    JobRecord,
    ModelVersionRecord,
    aware,
)
from db.registry import insert_version, version_record
from db.session import lock_tenant, read_scope, session_scope, write_scope
from tensorq.errors import Conflict, InvalidRequest, NotFound, OutOfRange, QuotaExceeded

# The hottest read (every GET and every long-poll wake), built once: a Core select, no ORM session.
JOB_BY_ID = select(Job.__table__).where(Job.__table__.c.id == bindparam("job_id"))


def _bounded_count(*where: Any) -> Any:
    """``count(*)`` of the jobs matching ``where``, reading at most ``:at_most`` index entries: a quota check
    needs to know whether a limit is reached, never how deep a backlog is."""
    matching = select(Job.id).where(*where).limit(bindparam("at_most")).subquery()
    return select(func.count()).select_from(matching)


QUEUED_OF_TENANT = _bounded_count(Job.tenant_id == bindparam("tenant_id"), Job.status == "queued")
RUNNING_OF_TENANT = _bounded_count(Job.tenant_id == bindparam("tenant_id"), Job.status == "running")
QUEUED_OF_TYPE = _bounded_count(Job.type == bindparam("job_type"), Job.status == "queued")
UNBOUNDED = 2**62


def _status_is(status: str) -> Any:
    """The status test of a statement that reaches its job by id: written as an expression that no index
    (and no partial index's predicate) matches, so the planner takes the primary key whatever its statistics
    say. Behind 50,000 queued jobs with stale statistics Postgres otherwise walked the status index (70 ms)."""
    return Job.status.concat("") == status


LEGAL_TRANSITIONS = {
    (None, "queued"),
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "queued"),
}


def job_record(row: Any) -> JobRecord:
    """The plain record of a job row (an ORM ``Job`` or a Core row of the jobs table)."""
    return JobRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        type=row.type,
        status=row.status,
        spec=row.spec,
        progress=row.progress,
        result=row.result,
        error=row.error,
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        timeout_s=row.timeout_s,
        cancel_requested=row.cancel_requested,
        revision=row.revision,
        created_at=aware(row.created_at),
        started_at=aware(row.started_at),
        finished_at=aware(row.finished_at),
        published_at=aware(row.published_at),
        retry_of=getattr(row, "retry_of", None),
        name=getattr(row, "name", None),
        tags=list(getattr(row, "tags", None) or []),
    )


@dataclass(frozen=True)
class NewJob:
    """What a submission asks for."""

    tenant_id: str
    type: str
    spec: dict[str, Any]
    priority: int = 5
    max_attempts: int = 3
    timeout_s: int | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    retry_of: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Submitted:
    """The outcome of a submission: the job, and whether this call created it."""

    job: JobRecord
    created: bool


@dataclass(frozen=True)
class Deferred:
    """A claim refused for now (the tenant is at a quota); the job stays queued."""

    reason: str


@dataclass
class Recovery:
    """What one pass over expired leases did."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelVersionDraft:
    """A trained model to register in the same transaction that finishes its job."""

    model_name: str
    path: str
    architecture: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    lineage: dict[str, Any] | None = None


def _new_row(new: NewJob, now: datetime, publishing: bool) -> dict[str, Any]:
    """The jobs-table row of a new ``queued`` job."""
    return {
        "id": str(uuid.uuid4()),
        "tenant_id": new.tenant_id,
        "type": new.type,
        "status": "queued",
        "spec": new.spec,
        "progress": None,
        "result": None,
        "error": None,
        "priority": new.priority,
        "attempts": 0,
        "max_attempts": new.max_attempts,
        "timeout_s": new.timeout_s,
        "cancel_requested": False,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
        "retry_of": new.retry_of,
        "name": new.name,
        "tags": list(new.tags) or None,
        "revision": 0,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "published_at": now if publishing else None,
    }


def batch_key(key: str, index: int) -> str:
    """The idempotency key stored on job ``index`` of a batch submitted under ``key`` (the unique
    ``(tenant, key)`` constraint holds one job each, and a single submission's key never collides)."""
    return f"batch:{hashlib.sha256(key.encode()).hexdigest()[:40]}:{index}"


def _encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = json.dumps([aware(created_at).isoformat(), job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, job_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(stamp), str(job_id)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("malformed cursor", details={"cursor": cursor}) from exc


class JobStore:
    """Jobs, their events and their transitions."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        lease_s: float = 60.0,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._factory = factory
        self.lease_s = lease_s
        self._on_change = on_change

    def _changed(self, job_id: str, changed: bool = True) -> bool:
        """Tell waiting readers that a committed write changed the job; passes ``changed`` through."""
        if changed and self._on_change is not None:
            self._on_change(job_id)
        return changed

    # -- helpers -----------------------------------------------------------------
    def _transition(
        self,
        conn: Connection,
        job_id: str,
        expected: str,
        target: str,
        values: dict[str, Any],
        *,
        token: str | None = None,
        extra_where: list[Any] | None = None,
        event_data: dict[str, Any] | None = None,
        returning: bool = False,
    ) -> Any:
        """One conditional UPDATE from ``expected`` to ``target``; logs the event when it wins.

        Returns whether it won, or with ``returning`` the updated row (None when it lost).
        """
        assert (expected, target) in LEGAL_TRANSITIONS, (expected, target)
        where = [Job.id == job_id, _status_is(expected), *(extra_where or [])]
        if token is not None:
            where.append(Job.lease_token == token)
        now = utcnow()
        stmt = (
            update(Job)
            .where(and_(*where))
            .values(status=target, revision=Job.revision + 1, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if returning:
            won = conn.execute(stmt.returning(*Job.__table__.c)).one_or_none()
        elif target in TERMINAL:
            won = conn.execute(stmt.returning(Job.type, Job.started_at, Job.finished_at)).one_or_none()
        else:
            won = conn.execute(stmt).rowcount == 1
        if not won:
            return None if returning else False
        if target in TERMINAL:
            count_finished(conn, won.type, target, won.started_at, won.finished_at)
            won = won if returning else True
        event = {"kind": "state", "from_status": expected, "to_status": target, "data": event_data}
        conn.execute(insert(JobEvent), {"job_id": job_id, "created_at": now, **event})
        return won

    def _row(self, session: Session, job_id: str, tenant_id: str | None = None) -> Job:
        row = session.get(Job, job_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise NotFound(f"job {job_id} not found")
        return row

    # -- submission and reads --------------------------------------------------------
    def submit(self, new: NewJob, *, publishing: bool = False, queued_limit: int | None = None) -> Submitted:
        """Commit a new ``queued`` job, or return the one an idempotency key already made.

        With ``queued_limit`` the tenant's queued jobs are counted and the job inserted in one transaction
        that holds the tenant's row lock (``lock_tenant``), so parallel submissions cannot overdraw the
        quota; over it, QuotaExceeded (429). With ``publishing`` the caller promises to publish the job right
        after this commit: it is recorded as published now (no second write), and a failed publish must call
        ``mark_unpublished``.
        """
        if new.idempotency_key:
            existing = self._by_idempotency_key(new)
            if existing is not None:
                return existing
        row = _new_row(new, utcnow(), publishing)
        job_id = row["id"]
        now = row["created_at"]
        try:
            with write_scope(self._factory) as conn:
                if queued_limit is not None:
                    lock_tenant(conn, new.tenant_id)
                    queued = conn.execute(QUEUED_OF_TENANT, {"tenant_id": new.tenant_id, "at_most": queued_limit})
                    if queued.scalar_one() >= queued_limit:
                        raise QuotaExceeded(
                            f"{queued_limit} jobs are already queued",
                            retry_after=10,
                            details={"quota": "quota_queued_jobs", "limit": queued_limit},
                        )
                conn.execute(insert(Job), row)
                if new.tags:
                    conn.execute(insert(JobTag), [{"job_id": job_id, "tag": tag} for tag in dict.fromkeys(new.tags)])
                event = {"job_id": job_id, "kind": "state", "from_status": None, "to_status": "queued", "data": None}
                conn.execute(insert(JobEvent), {**event, "created_at": now})
        except IntegrityError:
            existing = self._by_idempotency_key(new) if new.idempotency_key else None
            if existing is None:
                raise
            return existing
        return Submitted(job_record(SimpleNamespace(**row)), created=True)

    def _by_idempotency_key(self, new: NewJob) -> Submitted | None:
        with session_scope(self._factory) as session:
            row = session.scalars(
                select(Job).where(Job.tenant_id == new.tenant_id, Job.idempotency_key == new.idempotency_key)
            ).first()
            if row is None:
                return None
            if aware(row.created_at) < utcnow() - timedelta(hours=24):
                # An expired key: free it for this new submission.
                row.idempotency_key = None
                return None
            if row.request_hash != new.request_hash:
                raise OutOfRange(
                    "Idempotency-Key was already used with a different request body",
                    code="idempotency_mismatch",
                    details={"job_id": row.id},
                )
            return Submitted(job_record(row), created=False)

    def submit_many(
        self,
        news: list[NewJob],
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        publishing: bool = False,
        queued_limit: int | None = None,
    ) -> tuple[list[JobRecord], bool]:
        """Commit a batch of new ``queued`` jobs of one tenant in one transaction, in order; with
        ``idempotency_key`` a repeat of the same batch returns the jobs the first one made. The queued
        quota covers the whole batch (QuotaExceeded when it would go over). Returns (jobs, created)."""
        if not news:
            return [], False
        tenant_id = news[0].tenant_id
        if idempotency_key:
            existing = self._batch_by_key(tenant_id, idempotency_key, request_hash, len(news))
            if existing is not None:
                return existing, False
            news = [
                replace(new, idempotency_key=batch_key(idempotency_key, i), request_hash=request_hash)
                for i, new in enumerate(news)
            ]
        now = utcnow()
        rows = [_new_row(new, now, publishing) for new in news]
        events = [
            {
                "job_id": r["id"],
                "kind": "state",
                "from_status": None,
                "to_status": "queued",
                "data": None,
                "created_at": now,
            }
            for r in rows
        ]
        try:
            with write_scope(self._factory) as conn:
                if queued_limit is not None:
                    lock_tenant(conn, tenant_id)
                    queued = conn.execute(QUEUED_OF_TENANT, {"tenant_id": tenant_id, "at_most": queued_limit})
                    if queued.scalar_one() + len(rows) > queued_limit:
                        raise QuotaExceeded(
                            f"{len(rows)} more jobs would exceed the {queued_limit} queued jobs allowed",
                            retry_after=10,
                            details={"quota": "quota_queued_jobs", "limit": queued_limit, "jobs": len(rows)},
                        )
                conn.execute(insert(Job), rows)
                tags = [
                    {"job_id": r["id"], "tag": tag}
                    for new, r in zip(news, rows, strict=True)
                    for tag in dict.fromkeys(new.tags)
                ]
                if tags:
                    conn.execute(insert(JobTag), tags)
                conn.execute(insert(JobEvent), events)
        except IntegrityError:
            # The same batch, committed by a parallel request first.
            existing = (
                self._batch_by_key(tenant_id, idempotency_key, request_hash, len(rows)) if idempotency_key else None
            )
            if existing is None:
                raise
            return existing, False
        return [job_record(SimpleNamespace(**r)) for r in rows], True

    def _batch_by_key(self, tenant_id: str, key: str, request_hash: str | None, size: int) -> list[JobRecord] | None:
        """The jobs a batch under ``key`` made (None when there is none, or it expired and is freed)."""
        keys = [batch_key(key, i) for i in range(size)]
        with session_scope(self._factory) as session:
            found = session.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key.in_(keys))).all()
            if not found:
                return None
            if any(row.request_hash != request_hash for row in found) or len(found) != size:
                raise OutOfRange(
                    "Idempotency-Key was already used with a different request body",
                    code="idempotency_mismatch",
                    details={"job_ids": [row.id for row in found][:10]},
                )
            if min(aware(row.created_at) for row in found) < utcnow() - timedelta(hours=24):
                for row in found:  # an expired key: free it for this new submission
                    row.idempotency_key = None
                return None
            order = {k: i for i, k in enumerate(keys)}
            return [job_record(row) for row in sorted(found, key=lambda r: order[r.idempotency_key])]

    def mark_published(self, job_id: str) -> None:
        """Record that the job's message was handed to the broker."""
        with session_scope(self._factory) as session:
            session.execute(update(Job).where(Job.id == job_id).values(published_at=utcnow()))

    def mark_unpublished(self, job_id: str) -> None:
        """Record that the job's publish failed, so that the reaper's outbox sends it soon."""
        with session_scope(self._factory) as session:
            session.execute(update(Job).where(Job.id == job_id, _status_is("queued")).values(published_at=None))

    def get(self, tenant_id: str, job_id: str) -> JobRecord:
        """The tenant's job, or NotFound (also for another tenant's)."""
        return self._read(job_id, tenant_id)

    def get_any(self, job_id: str) -> JobRecord:
        """A job whoever owns it (for workers)."""
        return self._read(job_id)

    def _read(self, job_id: str, tenant_id: str | None = None) -> JobRecord:
        with read_scope(self._factory) as connection:
            row = connection.execute(JOB_BY_ID, {"job_id": job_id}).one_or_none()
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise NotFound(f"job {job_id} not found")
        return job_record(row)

    def list(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        name: str | None = None,
        tag: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """The tenant's jobs, newest first, with the cursor of the next page (or None); ``name`` and ``tag``
        filter on the job's name and one of its tags."""
        stmt = select(Job).where(Job.tenant_id == tenant_id)
        if name:
            stmt = stmt.where(Job.name == name)
        if tag:
            stmt = stmt.where(Job.id.in_(select(JobTag.job_id).where(JobTag.tag == tag)))
        if status:
            stmt = stmt.where(Job.status == status)
        if type:
            stmt = stmt.where(Job.type == type)
        if cursor:
            created_at, last_id = _decode_cursor(cursor)
            stmt = stmt.where(or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < last_id)))
        stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        with session_scope(self._factory) as session:
            rows = list(session.scalars(stmt))
        page = [job_record(r) for r in rows[:limit]]
        next_cursor = _encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
        return page, next_cursor

    def events(self, tenant_id: str, job_id: str) -> list[EventRecord]:
        """The job's events in the order they happened."""
        with session_scope(self._factory) as session:
            self._row(session, job_id, tenant_id)
            rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
            return [EventRecord(r.id, r.kind, r.from_status, r.to_status, r.data, aware(r.created_at)) for r in rows]

    # -- worker side -------------------------------------------------------------------
    def claim(
        self, job_id: str, worker: str, running_limit: Callable[[str], int] | None = None
    ) -> Claim | Deferred | None:
        """Take a queued job with a fresh lease; None when someone else has it or it is over.

        With ``running_limit`` (tenant name -> most running jobs), a tenant at its limit gets
        ``Deferred`` instead and the job stays queued; the tenant row is locked while counting.
        """
        token = str(uuid.uuid4())
        now = utcnow()
        with write_scope(self._factory) as conn:
            if running_limit is not None:
                tenant = conn.execute(
                    select(Tenant.id, Tenant.name)
                    .join(Job, Job.tenant_id == Tenant.id)
                    .where(Job.id == job_id, _status_is("queued"))
                    .with_for_update(of=Tenant)
                ).one_or_none()
                if tenant is None:
                    return None
                limit = running_limit(tenant.name)
                running = conn.execute(RUNNING_OF_TENANT, {"tenant_id": tenant.id, "at_most": limit}).scalar_one()
                if running >= limit:
                    return Deferred("quota_running_jobs")
            row = self._transition(
                conn,
                job_id,
                "queued",
                "running",
                {
                    "lease_token": token,
                    "lease_expires_at": now + timedelta(seconds=self.lease_s),
                    "attempts": Job.attempts + 1,
                    "started_at": now,
                    "worker": worker,
                },
                extra_where=[Job.cancel_requested.is_(False)],
                event_data={"worker": worker},
                returning=True,
            )
            if row is None:
                return None
            claim = Claim(job_record(row), token)
        self._changed(job_id)
        return claim

    def count_queued_of_type(self, job_type: str, at_most: int = UNBOUNDED) -> int:
        """How many jobs of ``job_type`` wait, across tenants (counting stops at ``at_most``)."""
        with read_scope(self._factory) as connection:
            return connection.execute(QUEUED_OF_TYPE, {"job_type": job_type, "at_most": at_most}).scalar_one()

    def count_queued(self, tenant_id: str, at_most: int = UNBOUNDED) -> int:
        """How many jobs the tenant has waiting (counting stops at ``at_most``: a Core select, built once)."""
        with read_scope(self._factory) as connection:
            return connection.execute(QUEUED_OF_TENANT, {"tenant_id": tenant_id, "at_most": at_most}).scalar_one()

    def heartbeat(self, job_id: str, token: str) -> bool:
        """Renew the lease; False when it was lost (the job was taken over or ended)."""
        with write_scope(self._factory) as conn:
            stmt = (
                update(Job)
                .where(Job.id == job_id, _status_is("running"), Job.lease_token == token)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_s))
            )
            return conn.execute(stmt).rowcount == 1

    def report_progress(self, job_id: str, token: str, progress: dict[str, Any]) -> bool:
        """Store the latest progress and log it as an event; False when the lease was lost."""
        now = utcnow()
        with write_scope(self._factory) as conn:
            stmt = (
                update(Job)
                .where(Job.id == job_id, _status_is("running"), Job.lease_token == token)
                .values(progress=progress, revision=Job.revision + 1, updated_at=now)
            )
            if conn.execute(stmt).rowcount != 1:
                return False
            conn.execute(insert(JobEvent), {"job_id": job_id, "kind": "progress", "data": progress, "created_at": now})
        return self._changed(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether a cancel was asked for this job (or it is no longer running)."""
        with read_scope(self._factory) as conn:
            row = conn.execute(select(Job.status, Job.cancel_requested).where(Job.id == job_id)).one_or_none()
        return row is None or row.cancel_requested or row.status != "running"

    def finish(self, job_id: str, token: str, result: dict[str, Any], model: ModelVersionDraft | None = None) -> bool:
        """``running -> succeeded`` under the lease; registers the trained model in the same transaction."""
        if model is None:
            with write_scope(self._factory) as conn:
                done = {"finished_at": utcnow(), "lease_token": None, "lease_expires_at": None}
                won = self._transition(conn, job_id, "running", "succeeded", {"result": result, **done}, token=token)
            return self._changed(job_id, won)
        for attempt in range(3):
            try:
                with session_scope(self._factory) as session:
                    done = {"finished_at": utcnow(), "lease_token": None, "lease_expires_at": None}
                    if not self._transition(
                        session.connection(), job_id, "running", "succeeded", {"result": result, **done}, token=token
                    ):
                        return False
                    tenant_id = session.scalar(select(Job.tenant_id).where(Job.id == job_id))
                    version = insert_version(session, tenant_id, job_id, model)
                    full = {**result, "model_id": version.model_id, "version": version.version}
                    session.execute(update(Job).where(Job.id == job_id).values(result=full))
                return self._changed(job_id)
            except IntegrityError:
                # A concurrent registration took the model name or version number first: try again.
                if attempt == 2:
                    raise
        return False

    def fail(self, job_id: str, token: str, error: dict[str, Any]) -> bool:
        """``running -> failed`` under the lease, with ``{"code", "message"}``."""
        with write_scope(self._factory) as conn:
            won = self._transition(
                conn,
                job_id,
                "running",
                "failed",
                {"error": error, "finished_at": utcnow(), "lease_token": None, "lease_expires_at": None},
                token=token,
                event_data={"code": error.get("code")},
            )
        return self._changed(job_id, won)

    def mark_cancelled(self, job_id: str, token: str) -> bool:
        """``running -> cancelled`` once the worker has stopped at a boundary."""
        with write_scope(self._factory) as conn:
            won = self._transition(
                conn,
                job_id,
                "running",
                "cancelled",
                {"finished_at": utcnow(), "lease_token": None, "lease_expires_at": None},
                token=token,
            )
        return self._changed(job_id, won)

    def retry_later(self, job_id: str, token: str, reason: str) -> bool:
        """Put a running job back in the queue after an infrastructure fault; the attempt stays counted."""
        with write_scope(self._factory) as conn:
            won = self._transition(
                conn,
                job_id,
                "running",
                "queued",
                {"lease_token": None, "lease_expires_at": None, "published_at": None},
                token=token,
                event_data={"reason": reason},
            )
        return self._changed(job_id, won)

    def release(self, job_id: str, token: str, reason: str) -> bool:
        """Hand a running job back to the queue without counting the attempt (graceful shutdown)."""
        with write_scope(self._factory) as conn:
            won = self._transition(
                conn,
                job_id,
                "running",
                "queued",
                {"attempts": Job.attempts - 1, "lease_token": None, "lease_expires_at": None, "published_at": None},
                token=token,
                event_data={"reason": reason},
            )
        return self._changed(job_id, won)

    # -- client side -----------------------------------------------------------------
    def cancel(self, tenant_id: str, job_id: str) -> JobRecord:
        """Cancel a queued job now, or ask a running one to stop; a finished job is a Conflict."""
        with session_scope(self._factory) as session:
            row = self._row(session, job_id, tenant_id)
            now = utcnow()
            queued = {"cancel_requested": True, "finished_at": now}
            if self._transition(session.connection(), job_id, "queued", "cancelled", queued):
                pass
            elif (
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, _status_is("running"))
                    .values(cancel_requested=True, revision=Job.revision + 1, updated_at=now)
                ).rowcount
                == 1
            ):
                session.add(JobEvent(job_id=job_id, kind="cancel_requested", created_at=now))
            else:
                session.refresh(row)
                if row.status in TERMINAL:
                    raise Conflict(f"job {job_id} is already {row.status}", details={"status": row.status})
            session.flush()
            session.refresh(row)
            record = job_record(row)
        self._changed(job_id)
        return record

    def delete(self, tenant_id: str, job_id: str) -> tuple[JobRecord, list[str]]:
        """Delete a finished job with its events and logs; Conflict while it is queued or running. Returns the
        record and the paths of model versions it trained (their files stay: the versions outlive the job)."""
        with session_scope(self._factory) as session:
            row = self._row(session, job_id, tenant_id)
            # One conditional DELETE: a job that is not finished (or stops being so meanwhile) is never removed.
            record = job_record(row)
            kept = list(session.scalars(select(ModelVersion.path).where(ModelVersion.training_job_id == job_id)))
            deleted = session.execute(delete(Job).where(Job.id == job_id, Job.status.in_(TERMINAL))).rowcount
            if deleted != 1:
                raise Conflict(
                    f"job {job_id} is {record.status}; cancel it first, or wait for it to finish",
                    code="job_not_finished",
                    details={"status": record.status},
                )
        return record, kept

    def sweep_finished(self, before: datetime, limit: int = 200) -> list[tuple[str, list[str]]]:
        """Delete up to ``limit`` jobs that finished before ``before`` (retention); each deleted job's id with
        the model files it trained (kept: versions outlive their job). Concurrent sweeps delete each once."""
        swept: list[tuple[str, list[str]]] = []
        with session_scope(self._factory) as session:
            ids = list(
                session.scalars(
                    select(Job.id)
                    .where(Job.status.in_(TERMINAL), Job.finished_at < before)
                    .order_by(Job.finished_at)
                    .limit(limit)
                )
            )
            for job_id in ids:
                kept = list(session.scalars(select(ModelVersion.path).where(ModelVersion.training_job_id == job_id)))
                done = session.execute(delete(Job).where(Job.id == job_id, Job.status.in_(TERMINAL))).rowcount
                if done == 1:
                    swept.append((job_id, kept))
        return swept

    # -- recovery -----------------------------------------------------------------------
    def requeue_expired(self) -> Recovery:
        """Deal with running jobs whose lease expired: each is cancelled when a cancel was asked,
        failed with ``timeout`` past its ``timeout_s``, failed with ``worker_lost`` at ``max_attempts``,
        and re-queued otherwise."""
        now = utcnow()
        recovery = Recovery()
        with read_scope(self._factory) as conn:
            expired = conn.execute(
                select(
                    Job.id,
                    Job.lease_token,
                    Job.attempts,
                    Job.max_attempts,
                    Job.cancel_requested,
                    Job.timeout_s,
                    Job.started_at,
                ).where(Job.status == "running", Job.lease_expires_at < now)
            ).all()
        for row in expired:
            # One transaction per job: a worker finishing one of them at the same time never waits on a
            # lock this pass holds for another job (or for the finished-job totals).
            target, values, note, bucket = self._settle_expired(row, now, recovery)
            with write_scope(self._factory) as conn:
                won = self._transition(conn, row.id, "running", target, values, token=row.lease_token, event_data=note)
            if won:
                bucket.append(row.id)
        for job_id in recovery.requeued + recovery.failed + recovery.cancelled:
            self._changed(job_id)
        return recovery

    @staticmethod
    def _settle_expired(row: Any, now: datetime, recovery: Recovery) -> tuple[str, dict[str, Any], dict, list[str]]:
        """Where an expired lease leads: cancelled, failed (timeout or worker_lost) or back to queued."""
        released = {"lease_token": None, "lease_expires_at": None}
        done = {**released, "finished_at": now}
        started = aware(row.started_at)
        if row.cancel_requested:
            return "cancelled", done, {"reason": "lease_expired"}, recovery.cancelled
        if row.timeout_s and started and now - started > timedelta(seconds=row.timeout_s):
            error = {"code": "timeout", "message": f"job exceeded its timeout_s of {row.timeout_s}"}
            return "failed", {**done, "error": error}, {"code": "timeout"}, recovery.failed
        if row.attempts >= row.max_attempts:
            error = {"code": "worker_lost", "message": f"worker lost {row.attempts} times; giving up"}
            return "failed", {**done, "error": error}, {"code": "worker_lost"}, recovery.failed
        return "queued", {**released, "published_at": None}, {"reason": "lease_expired"}, recovery.requeued

    def unpublished(self, older_than_s: float, limit: int = 500, settle_s: float = 2.0) -> list[JobRecord]:
        """Queued jobs never published (for ``settle_s``), or published longer ago than ``older_than_s``."""
        now = utcnow()
        stmt = (
            select(Job)
            .where(
                Job.status == "queued",
                or_(
                    and_(Job.published_at.is_(None), Job.updated_at < now - timedelta(seconds=settle_s)),
                    Job.published_at < now - timedelta(seconds=older_than_s),
                ),
            )
            .order_by(Job.created_at)
            .limit(limit)
        )
        with session_scope(self._factory) as session:
            return [job_record(r) for r in session.scalars(stmt)]

    def versions_of_job(self, job_id: str) -> list[ModelVersionRecord]:
        """Model versions registered by a training job (at most one)."""
        with session_scope(self._factory) as session:
            rows = session.execute(
                select(ModelVersion, Model)
                .join(Model, Model.id == ModelVersion.model_id)
                .where(ModelVersion.training_job_id == job_id)
            ).all()
            return [version_record(v, m) for v, m in rows]
