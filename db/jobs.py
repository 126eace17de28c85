"""The job store: owns the state machine; every transition is one conditional UPDATE."""

from __future__ import annotations

import base64
import builtins
import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, delete, false, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.changes import JobChanges
from db.followups import chain_retries
from db.models import Job, JobEvent, JobTag, Model, ModelVersion, Tenant, utcnow
from db.newjob import NewJob, insert_new
from db.parents import ended_parents, insert_graph, parent_progress, settle_parent, unsettled_parents
from db.records import (
    TERMINAL,
    Claim,
    EventRecord,
    JobRecord,
    ModelVersionDraft,
    ModelVersionRecord,
    aware,
)
from db.recovery import Recovery, requeue_abandoned, requeue_expired
from db.registry import insert_version, version_record
from db.reopen import retry_failed_children
from db.session import lock_tenant, read_scope, rowcount, session_scope, write_scope
from db.transitions import RELEASED, Ending, end_running, job_record, leased, status_is, transition, transition_many
from db.tunes import top_up
from tensorq.core.errors import Conflict, InvalidRequest, NotFound, OutOfRange, QuotaExceeded

# The hottest read (every GET and every long-poll wake), built once: a Core select, no ORM session.
JOB_BY_ID = select(Job.__table__).where(Job.__table__.c.id == bindparam("job_id"))


def _bounded_count(*where: Any) -> Any:
    """``count(*)`` of the jobs matching ``where``, reading at most ``:at_most`` index entries: a quota check
    needs to know whether a limit is reached, never how deep a backlog is."""
    matching = select(Job.id).where(*where).limit(bindparam("at_most")).subquery()
    return select(func.count()).select_from(matching)


QUEUED_OF_TENANT = _bounded_count(Job.tenant_id == bindparam("tenant_id"), Job.status == "queued")
RUNNING_OF_TENANT = _bounded_count(Job.tenant_id == bindparam("tenant_id"), Job.status == "running")
QUEUED_OF_TYPES = _bounded_count(Job.type.in_(bindparam("job_types", expanding=True)), Job.status == "queued")
UNBOUNDED = 2**62


@dataclass(frozen=True)
class Submitted:
    """The outcome of a submission: the job, and whether this call created it."""

    job: JobRecord
    created: bool


@dataclass(frozen=True)
class Deferred:
    """A claim refused for now (the tenant is at a quota); the job stays queued."""

    reason: str


class Batch(NamedTuple):
    """The outcome of a batch submission: its jobs in order, whether this call created them, and the parent
    it asked for (None without one)."""

    jobs: list[JobRecord]
    created: bool
    parent: JobRecord | None = None


class Page(NamedTuple):
    """One page of a tenant's jobs, newest first, and the cursor of the next page (None on the last)."""

    jobs: list[JobRecord]
    next_cursor: str | None


class Deleted(NamedTuple):
    """A deleted job, and the files of the model versions it trained (kept: versions outlive their job)."""

    job: JobRecord
    kept_paths: list[str]


class Swept(NamedTuple):
    """A job deleted by retention, and the model files it trained (kept)."""

    job_id: str
    kept_paths: list[str]


# How long an Idempotency-Key answers with the jobs it made; after it the key is free again.
IDEMPOTENCY_TTL = timedelta(hours=24)
# A training job's model registration may collide with a concurrent one (name or version number): tries.
REGISTER_TRIES = 3


def batch_key(key: str, index: int) -> str:
    """The idempotency key stored on job ``index`` of a batch submitted under ``key`` (the unique
    ``(tenant, key)`` constraint holds one job each, and a single submission's key never collides); the
    batch's parent, when it asked for one, holds index -1."""
    return f"batch:{hashlib.sha256(key.encode()).hexdigest()[:40]}:{index}"


def _refuse_if_held(session: Session, tenant_id: str, stored_key: str, what: str) -> None:
    """OutOfRange ``idempotency_mismatch`` when a job of the tenant made within the key's 24 hours holds
    ``stored_key``: an Idempotency-Key used for a single job may not make a batch, nor the other way round."""
    held = session.scalars(
        select(Job.id).where(
            Job.tenant_id == tenant_id,
            Job.idempotency_key == stored_key,
            Job.created_at >= utcnow() - IDEMPOTENCY_TTL,
        )
    ).first()
    if held is not None:
        raise OutOfRange(
            f"Idempotency-Key was already used for {what} with a different request body",
            code="idempotency_mismatch",
            details={"job_id": held},
        )


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


def _hold_queued_quota(conn: Connection, tenant_id: str, limit: int, batch: int | None = None) -> None:
    """Lock the tenant's row (``lock_tenant``) and refuse with QuotaExceeded (429) when one more job, or the
    ``batch`` more jobs of a batch, would take its queued jobs over ``limit``."""
    lock_tenant(conn, tenant_id)
    queued = conn.execute(QUEUED_OF_TENANT, {"tenant_id": tenant_id, "at_most": limit}).scalar_one()
    if queued + (batch or 1) <= limit:
        return
    if batch is None:
        raise QuotaExceeded(
            f"{limit} jobs are already queued",
            retry_after=10,
            details={"quota": "quota_queued_jobs", "limit": limit},
        )
    raise QuotaExceeded(
        f"{batch} more jobs would exceed the {limit} queued jobs allowed",
        retry_after=10,
        details={"quota": "quota_queued_jobs", "limit": limit, "jobs": batch},
    )


class JobStore:
    """Jobs, their events and their transitions."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        lease_s: float = 60.0,
        changes: JobChanges | None = None,
    ) -> None:
        self._factory = factory
        self.lease_s = lease_s
        # Tells waiting readers of each committed change (``Database`` shares it with the micro-batch store).
        self.changes = changes if changes is not None else JobChanges()

    # -- helpers -----------------------------------------------------------------
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
        try:
            with write_scope(self._factory) as conn:
                if queued_limit is not None:
                    _hold_queued_quota(conn, new.tenant_id, queued_limit)
                [row] = insert_new(conn, [new], publishing=publishing)
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
                _refuse_if_held(session, new.tenant_id, batch_key(new.idempotency_key or "", 0), "a batch")
                return None
            if aware(row.created_at) < utcnow() - IDEMPOTENCY_TTL:
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
        parent: NewJob | None = None,
    ) -> Batch:
        """Commit a batch of new ``queued`` jobs of one tenant in one transaction, in order; with
        ``idempotency_key`` a repeat of the same batch returns the jobs the first one made. The queued
        quota covers the whole batch (QuotaExceeded when it would go over). With ``parent`` the jobs are
        the children of that new job (``db.parents``), which is never published: it follows them."""
        if not news:
            return Batch([], created=False)
        tenant_id = news[0].tenant_id
        if idempotency_key:
            existing = self._batch_by_key(tenant_id, idempotency_key, request_hash, len(news))
            if existing is not None:
                return Batch(existing, False, self._batch_parent(tenant_id, idempotency_key))
            news = [
                replace(new, idempotency_key=batch_key(idempotency_key, i), request_hash=request_hash)
                for i, new in enumerate(news)
            ]
            if parent is not None:
                parent = replace(parent, idempotency_key=batch_key(idempotency_key, -1), request_hash=request_hash)
        try:
            with write_scope(self._factory) as conn:
                if queued_limit is not None:
                    _hold_queued_quota(conn, tenant_id, queued_limit, batch=len(news))
                top = None
                if parent is None:
                    rows = insert_new(conn, news, publishing=publishing)
                else:
                    top, rows = insert_graph(conn, parent, news, publishing=publishing)
        except IntegrityError:
            # The same batch, committed by a parallel request first.
            existing = (
                self._batch_by_key(tenant_id, idempotency_key, request_hash, len(news)) if idempotency_key else None
            )
            if existing is None:
                raise
            return Batch(existing, False, self._batch_parent(tenant_id, idempotency_key or ""))
        made = None if top is None else job_record(SimpleNamespace(**top))
        return Batch([job_record(SimpleNamespace(**r)) for r in rows], True, made)

    def _batch_parent(self, tenant_id: str, key: str) -> JobRecord | None:
        """The parent a batch under ``key`` made (None when it asked for none)."""
        with read_scope(self._factory) as conn:
            row = conn.execute(
                select(Job.__table__).where(Job.tenant_id == tenant_id, Job.idempotency_key == batch_key(key, -1))
            ).one_or_none()
        return None if row is None else job_record(row)

    def _batch_by_key(self, tenant_id: str, key: str, request_hash: str | None, size: int) -> list[JobRecord] | None:
        """The jobs a batch under ``key`` made (None when there is none, or it expired and is freed)."""
        keys = [batch_key(key, i) for i in range(size)]
        with session_scope(self._factory) as session:
            found = session.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key.in_(keys))).all()
            if not found:
                _refuse_if_held(session, tenant_id, key, "a single job")
                return None
            if any(row.request_hash != request_hash for row in found) or len(found) != size:
                raise OutOfRange(
                    "Idempotency-Key was already used with a different request body",
                    code="idempotency_mismatch",
                    details={"job_ids": [row.id for row in found][:10]},
                )
            if min(aware(row.created_at) for row in found) < utcnow() - IDEMPOTENCY_TTL:
                for row in found:  # an expired key: free it for this new submission
                    row.idempotency_key = None
                return None
            order: dict[str | None, int] = {k: i for i, k in enumerate(keys)}
            return [job_record(row) for row in sorted(found, key=lambda r: order[r.idempotency_key])]

    def mark_published(self, job_id: str) -> None:
        """Record that the job's message was handed to the broker."""
        with session_scope(self._factory) as session:
            session.execute(update(Job).where(Job.id == job_id).values(published_at=utcnow()))

    def mark_unpublished(self, job_id: str) -> None:
        """Record that the job's publish failed, so that the reaper's outbox sends it soon."""
        with session_scope(self._factory) as session:
            session.execute(update(Job).where(Job.id == job_id, status_is("queued")).values(published_at=None))

    def queued_among(self, job_ids: Collection[str]) -> set[str]:
        """Those of ``job_ids`` whose jobs wait in ``queued`` now (each reached by its primary key)."""
        if not job_ids:
            return set()
        with read_scope(self._factory) as connection:
            found = connection.execute(select(Job.id).where(Job.id.in_(list(job_ids)), status_is("queued")))
            return set(found.scalars())

    def still_running_for(self, workers: Collection[str]) -> set[str]:
        """Those of ``workers`` (claimer names) that a ``running`` job still names as its worker."""
        if not workers:
            return set()
        with read_scope(self._factory) as connection:
            found = connection.execute(
                select(Job.worker).where(Job.worker.in_(sorted(workers)), status_is("running")).distinct()
            )
            return {name for name in found.scalars() if name is not None}

    def get(self, tenant_id: str, job_id: str) -> JobRecord:
        """The tenant's job, or NotFound (also for another tenant's)."""
        return self._read(job_id, tenant_id)

    def get_any(self, job_id: str) -> JobRecord:
        """A job whoever owns it (for workers)."""
        return self._read(job_id)

    def chain_retries(self, tenant_id: str, job_id: str) -> int:
        """The highest ``retry_number`` in the tenant's job's retry chain (a manual retry numbers on from it)."""
        with read_scope(self._factory) as connection:
            return chain_retries(connection, tenant_id, job_id)

    def _read(self, job_id: str, tenant_id: str | None = None) -> JobRecord:
        with read_scope(self._factory) as connection:
            row = connection.execute(JOB_BY_ID, {"job_id": job_id}).one_or_none()
            if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
                raise NotFound(f"job {job_id} not found")
            record = job_record(row)
            if record.children is not None:
                record = replace(record, progress=parent_progress(connection, record))
        return record

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
        parent: str | None = None,
    ) -> Page:
        """The tenant's jobs, newest first, with the cursor of the next page (or None); ``name``, ``tag`` and
        ``parent`` filter on the job's name, one of its tags and its parent's id."""
        stmt = select(Job).where(Job.tenant_id == tenant_id)
        if parent:
            stmt = stmt.where(Job.parent_id == parent)
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
        return Page(page, next_cursor)

    def events(self, tenant_id: str, job_id: str) -> builtins.list[EventRecord]:
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
                    .where(Job.id == job_id, status_is("queued"))
                    .with_for_update(of=Tenant, key_share=True)  # as BatchStore.claim: no deadlock with a cancel
                ).one_or_none()
                if tenant is None:
                    return None
                limit = running_limit(tenant.name)
                running = conn.execute(RUNNING_OF_TENANT, {"tenant_id": tenant.id, "at_most": limit}).scalar_one()
                if running >= limit:
                    return Deferred("quota_running_jobs")
            job = transition(
                conn,
                job_id,
                "queued",
                "running",
                leased(token, worker, self.lease_s, now),
                extra_where=(Job.cancel_requested.is_(False), Job.children_total == 0),
                event_data={"worker": worker},
            )
        if job is None:
            return None
        self.changes.note(job_id, "running")
        return Claim(job, token)

    def count_queued_of_types(self, job_types: Collection[str], at_most: int = UNBOUNDED) -> int:
        """How many jobs of any of ``job_types`` wait, across tenants (counting stops at ``at_most``)."""
        with read_scope(self._factory) as connection:
            params = {"job_types": list(job_types), "at_most": at_most}
            return connection.execute(QUEUED_OF_TYPES, params).scalar_one()

    def count_queued(self, tenant_id: str, at_most: int = UNBOUNDED) -> int:
        """How many jobs the tenant has waiting (counting stops at ``at_most``: a Core select, built once)."""
        with read_scope(self._factory) as connection:
            return connection.execute(QUEUED_OF_TENANT, {"tenant_id": tenant_id, "at_most": at_most}).scalar_one()

    def heartbeat(self, job_id: str, token: str) -> bool:
        """Renew the lease; False when it was lost (the job was taken over or ended)."""
        with write_scope(self._factory) as conn:
            stmt = (
                update(Job)
                .where(Job.id == job_id, status_is("running"), Job.lease_token == token)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_s))
            )
            return conn.execute(stmt).rowcount == 1

    def report_progress(self, job_id: str, token: str, progress: dict[str, Any]) -> bool:
        """Store the latest progress and log it as an event; False when the lease was lost."""
        now = utcnow()
        with write_scope(self._factory) as conn:
            stmt = (
                update(Job)
                .where(Job.id == job_id, status_is("running"), Job.lease_token == token)
                .values(progress=progress, revision=Job.revision + 1, updated_at=now)
            )
            if conn.execute(stmt).rowcount != 1:
                return False
            conn.execute(insert(JobEvent), {"job_id": job_id, "kind": "progress", "data": progress, "created_at": now})
        return self.changes.note(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether a cancel was asked for this job (or it is no longer running)."""
        with read_scope(self._factory) as conn:
            row = conn.execute(select(Job.status, Job.cancel_requested).where(Job.id == job_id)).one_or_none()
        return row is None or row.cancel_requested or row.status != "running"

    def finish(self, job_id: str, token: str, result: dict[str, Any], model: ModelVersionDraft | None = None) -> bool:
        """``running -> succeeded`` under the lease; registers the trained model in the same transaction."""
        tries = REGISTER_TRIES if model is not None else 1
        attempt = 1
        while True:
            try:
                with session_scope(self._factory) as session:
                    register = None if model is None else functools.partial(_register, session, model)
                    ending = {job_id: Ending("succeeded", result)}
                    won = job_id in end_running(session.connection(), token, ending, complete=register)
                    parents = ended_parents(session.connection())
                self.changes.note_all(parents)
                return self.changes.note(job_id, changed=won)
            except IntegrityError:
                # A concurrent registration took the model name or version number first: try again.
                if attempt == tries:
                    raise
                attempt += 1

    def fail(self, job_id: str, token: str, error: dict[str, Any]) -> bool:
        """``running -> failed`` under the lease, with ``{"code", "message"}``."""
        with write_scope(self._factory) as conn:
            won = job_id in end_running(conn, token, {job_id: Ending("failed", error=error)})
            parents = ended_parents(conn)
        self.changes.note_all(parents)
        return self.changes.note(job_id, changed=won)

    def mark_cancelled(self, job_id: str, token: str) -> bool:
        """``running -> cancelled`` once the worker has stopped at a boundary."""
        with write_scope(self._factory) as conn:
            won = job_id in end_running(conn, token, {job_id: Ending("cancelled")})
            parents = ended_parents(conn)
        self.changes.note_all(parents)
        return self.changes.note(job_id, changed=won)

    def retry_later(self, job_id: str, token: str, reason: str) -> bool:
        """Put a running job back in the queue after an infrastructure fault; the attempt stays counted."""
        values = {**RELEASED, "published_at": None}
        return self._leave_running(job_id, token, "queued", values, {"reason": reason})

    def release(self, job_id: str, token: str, reason: str) -> bool:
        """Hand a running job back to the queue without counting the attempt (graceful shutdown)."""
        values = {**RELEASED, "attempts": Job.attempts - 1, "published_at": None}
        return self._leave_running(job_id, token, "queued", values, {"reason": reason})

    def _leave_running(
        self, job_id: str, token: str, target: str, values: dict[str, Any], note: dict[str, Any] | None = None
    ) -> bool:
        """``running -> target`` under the lease token in its own transaction; whether it won."""
        with write_scope(self._factory) as conn:
            job = transition(conn, job_id, "running", target, values, token=token, event_data=note)
        return self.changes.note(job_id, changed=job is not None)

    # -- client side -----------------------------------------------------------------
    def cancel(self, tenant_id: str, job_id: str) -> JobRecord:
        """Cancel a queued job now, or ask a running one to stop; a finished job is a Conflict."""
        with session_scope(self._factory) as session:
            row = self._row(session, job_id, tenant_id)
            now = utcnow()
            queued = {"cancel_requested": True, "finished_at": now}
            if row.children_total:
                self._request_cancel(session, row, now)
                settle_parent(session.connection(), job_id, transition_many)
            elif transition(session.connection(), job_id, "queued", "cancelled", queued) is None:
                self._request_cancel(session, row, now)
            session.flush()
            session.refresh(row)
            record = job_record(row)
        self.changes.note(job_id)
        return record

    @staticmethod
    def _request_cancel(session: Session, row: Job, now: datetime) -> None:
        """Flag a running job for its worker to stop at the next batch (a parent, queued or running, for its
        children to be cancelled); Conflict when it already finished."""
        asked = session.execute(
            update(Job)
            .where(Job.id == row.id, or_(status_is("running"), status_is("queued") if row.children_total else false()))
            .values(cancel_requested=True, revision=Job.revision + 1, updated_at=now)
        )
        if rowcount(asked) == 1:
            session.add(JobEvent(job_id=row.id, kind="cancel_requested", created_at=now))
            return
        session.refresh(row)
        if row.status in TERMINAL:
            raise Conflict(f"job {row.id} is already {row.status}", details={"status": row.status})

    def delete(self, tenant_id: str, job_id: str) -> Deleted:
        """Delete a finished job with its events and logs; Conflict while it is queued or running. Returns the
        record and the paths of model versions it trained (their files stay: the versions outlive the job)."""
        with session_scope(self._factory) as session:
            row = self._row(session, job_id, tenant_id)
            # One conditional DELETE: a job that is not finished (or stops being so meanwhile) is never removed.
            record = job_record(row)
            kept = list(session.scalars(select(ModelVersion.path).where(ModelVersion.training_job_id == job_id)))
            deleted = rowcount(session.execute(delete(Job).where(Job.id == job_id, Job.status.in_(TERMINAL))))
            if deleted != 1:
                raise Conflict(
                    f"job {job_id} is {record.status}; cancel it first, or wait for it to finish",
                    code="job_not_finished",
                    details={"status": record.status},
                )
        return Deleted(record, kept)

    def sweep_finished(self, before: datetime, limit: int = 200) -> builtins.list[Swept]:
        """Delete up to ``limit`` jobs that finished before ``before`` (retention); each deleted job's id with
        the model files it trained (kept: versions outlive their job). Concurrent sweeps delete each once."""
        swept: list[Swept] = []
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
                done = rowcount(session.execute(delete(Job).where(Job.id == job_id, Job.status.in_(TERMINAL))))
                if done == 1:
                    swept.append(Swept(job_id, kept))
        return swept

    def retry_failed_children(self, tenant_id: str, job_id: str) -> tuple[JobRecord, builtins.list[JobRecord]]:
        """Reopen the tenant's failed or cancelled parent with a retry of each failed or cancelled child; the
        parent as reopened and the retries (the caller publishes them; a failed publish marks them
        unpublished). Conflict unless the job is a parent that has ended."""
        with write_scope(self._factory) as conn:
            row = conn.execute(JOB_BY_ID, {"job_id": job_id}).one_or_none()
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"job {job_id} not found")
            parent = job_record(row)
            if parent.children is None or parent.status not in ("failed", "cancelled"):
                raise Conflict(
                    f"only a failed or cancelled parent reruns its failed children; job {job_id} is {parent.status}",
                    code="not_retryable",
                    details={"status": parent.status, "type": parent.type},
                )
            rows = retry_failed_children(conn, parent)
            if not rows:
                raise Conflict(f"job {job_id} has no failed children to retry", code="not_retryable")
        self.changes.note(job_id)
        return self.get(tenant_id, job_id), [job_record(SimpleNamespace(**r)) for r in rows]

    def top_up_trials(
        self, parent_id: str, make: Callable[[dict[str, Any], int], builtins.list[NewJob]], *, publishing: bool
    ) -> builtins.list[JobRecord]:
        """The next trials of a tune as one of its trials ends (``db.tunes.top_up``), committed."""
        with write_scope(self._factory) as conn:
            rows = top_up(conn, parent_id, make, publishing=publishing)
        return [job_record(SimpleNamespace(**row)) for row in rows]

    # -- recovery -----------------------------------------------------------------------
    def settle_parents(self, limit: int = 100) -> builtins.list[str]:
        """Move the parents whose children say they should move (all ended, or cancel asked or too many
        failed, with children left to stop): the parents moved or cascaded, each in its own transaction."""
        with read_scope(self._factory) as conn:
            ids = list(conn.execute(unsettled_parents(limit)).scalars())
        for parent_id in ids:
            with write_scope(self._factory) as conn:
                settle_parent(conn, parent_id, transition_many)
            self.changes.note(parent_id)
        return ids

    def requeue_expired(self) -> Recovery:
        """Settle running jobs whose lease expired (``db.recovery.requeue_expired``)."""
        return requeue_expired(self._factory, self.changes)

    def requeue_abandoned(self, workers: Collection[str], idle_s: float) -> Recovery:
        """Settle the running jobs claimed by ``workers`` (known gone) whose lease was not renewed for ``idle_s``
        (``db.recovery.requeue_abandoned``)."""
        return requeue_abandoned(self._factory, workers, self.lease_s, idle_s, self.changes)

    def unpublished(self, older_than_s: float, limit: int = 500, settle_s: float = 2.0) -> builtins.list[JobRecord]:
        """Queued jobs never published (for ``settle_s``), or published longer ago than ``older_than_s``."""
        now = utcnow()
        stmt = (
            select(Job)
            .where(
                Job.status == "queued",
                Job.children_total == 0,
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

    def versions_of_job(self, job_id: str) -> builtins.list[ModelVersionRecord]:
        """Model versions registered by a training job (at most one)."""
        with session_scope(self._factory) as session:
            rows = session.execute(
                select(ModelVersion, Model)
                .join(Model, Model.id == ModelVersion.model_id)
                .where(ModelVersion.training_job_id == job_id)
            ).all()
            return [version_record(v, m) for v, m in rows]


def _register(session: Session, model: ModelVersionDraft, job: JobRecord) -> JobRecord:
    """Insert the model version a training job made, in the transaction of its success; the job with the
    version's id and number in its result (its notification carries them)."""
    version = insert_version(session, job.tenant_id, job.id, model)
    full = {**(job.result or {}), "model_id": version.model_id, "version": version.version}
    session.execute(update(Job).where(Job.id == job.id).values(result=full))
    return replace(job, result=full)
