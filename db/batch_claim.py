"""Micro-batch claims: a worker takes a queued job together with queued jobs of the same tenant, kind,
resolved model version and settings, in one transaction, and finishes them all in one transaction.

Which jobs may share a pass is the worker's call: ``batchable`` gives a job's ``BatchKey`` (the model reference
to resolve and an opaque settings string that mates must match exactly), ``shares`` whether jobs of a kind may
share a pass on a resolved version at all.

Every job of a batch keeps its own row, lease, events and result: the claim moves each row
``queued -> running`` (one conditional UPDATE over their ids, one state event each) and the finish moves
each ``running -> succeeded | failed | cancelled`` conditional on the batch's lease token, so a job that a
reaper took over, or that ended meanwhile, is left alone. A job whose cancel was asked while its batch ran
ends ``cancelled``, the others of the batch are unaffected. The rows share one lease token (each row has
its own lease expiry, renewed per job); that lets the finish address the batch in a few statements.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, bindparam, insert, or_, select, update

from db.followups import follow_up
from db.joblogs import MAX_MESSAGE_CHARS, LogLine
from db.jobs import RUNNING_OF_TENANT, Deferred, JobStore
from db.jobstats import count_finished_many
from db.models import Job, JobEvent, JobLog, Tenant, utcnow
from db.records import TERMINAL, JobRecord, ModelVersionRecord
from db.registry import parse_model_ref, resolve_on
from db.session import write_scope
from db.transitions import job_record, status_is
from tensorq.errors import TensorQError


@dataclass(frozen=True)
class BatchKey:
    """What a job that may share a pass shares it by: ``model``, the reference its mates must resolve to the
    same version, and ``settings``, opaque here, which its mates must have the same of."""

    model: str
    settings: str = ""


# The key of a job (type, spec) that may share a pass, or None (it runs alone): the worker's call.
Batchable = Callable[[str, dict[str, Any]], BatchKey | None]
# Whether jobs of a type may share a pass on a resolved version (else the first runs alone, no mates taken).
Shares = Callable[[str, ModelVersionRecord], bool]
# Queued jobs a claim reads to pick its batch-mates from, per free place in the batch (bounded whatever the backlog).
SCAN_PER_PLACE = 4
MIN_SCAN = 64


@dataclass(frozen=True)
class BatchClaim:
    """Jobs claimed together under one lease token: the job the message named first, then its mates.

    ``version`` is the model version they all resolved to (None when the first job is not batchable, its
    reference did not resolve or its version shares no pass: it then runs alone, as it would without
    batching); ``settings`` the key's settings they all have."""

    jobs: list[JobRecord]
    lease_token: str
    version: ModelVersionRecord | None = None
    settings: str = ""

    @property
    def first(self) -> JobRecord:
        """The job whose message was delivered."""
        return self.jobs[0]


@dataclass(frozen=True)
class Outcome:
    """How one job of a batch ended in the worker: ``succeeded`` with its result, ``failed`` with its error, or
    ``cancelled`` (it stopped before the forward pass)."""

    status: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    log: list[LogLine] = field(default_factory=list)


class BatchStore:
    """Claims and finishes of micro-batches, on a ``JobStore``'s database and change signal."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs
        self._factory = jobs._factory  # noqa: SLF001 - the same database as the store's transitions

    def claim(
        self,
        job_id: str,
        worker: str,
        *,
        max_jobs: int,
        batchable: Batchable,
        running_limit: Callable[[str], int] | None = None,
        shares: Shares | None = None,
    ) -> BatchClaim | Deferred | None:
        """Take the queued job ``job_id`` and, when ``batchable`` gives its key (and ``shares`` allows its
        resolved version), up to ``max_jobs - 1`` more queued jobs of its tenant and type with the same key
        settings whose references resolve to the same model version, in one transaction; None when the job is
        taken, cancelled or over. The tenant's running quota covers the whole batch (``Deferred`` when not even
        the first job fits)."""
        token = str(uuid.uuid4())
        now = utcnow()
        with write_scope(self._factory) as conn:
            first = conn.execute(
                select(Job.id, Job.tenant_id, Job.type, Job.spec, Tenant.name)
                .join(Tenant, Tenant.id == Job.tenant_id)
                .where(Job.id == job_id, status_is("queued"), Job.cancel_requested.is_(False))
                # FOR NO KEY UPDATE: claims of the tenant wait for each other, but a cancel's notification row
                # (a key-share lock on the tenant) does not wait for this one while holding the job: no deadlock.
                .with_for_update(of=Tenant, key_share=True)
            ).one_or_none()
            if first is None:
                return None
            room = max_jobs
            if running_limit is not None:
                limit = running_limit(first.name)
                params = {"tenant_id": first.tenant_id, "at_most": limit}
                running = conn.execute(RUNNING_OF_TENANT, params).scalar_one()
                if running >= limit:
                    return Deferred("quota_running_jobs")
                room = min(room, limit - running)
            version, ids = None, [job_id]
            key = batchable(first.type, first.spec)
            if key is not None:
                resolved: dict[str, ModelVersionRecord | None] = {}
                version = _resolve(conn, first.tenant_id, key.model, resolved)
                if version is not None and shares is not None and not shares(first.type, version):
                    version = None
                if version is not None and room > 1:
                    ids += self._mates(conn, first, version, key.settings, room - 1, batchable, resolved)
            rows = self._take(conn, ids, token, worker, now)
        for row in rows:
            self._jobs._changed(row.id, status="running")  # noqa: SLF001 - the store's change signal, one per job
        if not rows:
            return None
        order = {i: n for n, i in enumerate(ids)}
        # When the first job went to another worker between the read and the update, its mates still run here.
        jobs = sorted((job_record(r) for r in rows), key=lambda j: order[j.id])
        return BatchClaim(jobs, token, version, key.settings if key is not None and version is not None else "")

    def claim_more(
        self,
        claim: BatchClaim,
        worker: str,
        *,
        room: int,
        batchable: Batchable,
        running_limit: Callable[[str], int] | None = None,
    ) -> BatchClaim:
        """Add up to ``room`` queued jobs of the same tenant, type, model version and settings to ``claim`` under
        its lease token (after a batching wait); the claim as it then is."""
        if claim.version is None or room < 1:
            return claim
        first = claim.first
        now = utcnow()
        with write_scope(self._factory) as conn:
            tenant = conn.execute(
                select(Tenant.id, Tenant.name).where(Tenant.id == first.tenant_id).with_for_update(key_share=True)
            )
            row = tenant.one()
            if running_limit is not None:
                limit = running_limit(row.name)
                params = {"tenant_id": row.id, "at_most": limit}
                room = min(room, limit - conn.execute(RUNNING_OF_TENANT, params).scalar_one())
            if room < 1:
                return claim
            seed = _Seed(first.id, first.tenant_id, first.type)
            taken = {j.id for j in claim.jobs}
            ids = self._mates(conn, seed, claim.version, claim.settings, room, batchable, {}, exclude=taken)
            rows = self._take(conn, ids, claim.lease_token, worker, now) if ids else []
        for r in rows:
            self._jobs._changed(r.id, status="running")  # noqa: SLF001
        jobs = [*claim.jobs, *(job_record(r) for r in rows)]
        return BatchClaim(jobs, claim.lease_token, claim.version, claim.settings)

    def _mates(
        self,
        conn: Connection,
        first: Any,
        version: ModelVersionRecord,
        settings: str,
        room: int,
        batchable: Batchable,
        resolved: dict[str, ModelVersionRecord | None],
        exclude: set[str] | None = None,
    ) -> list[str]:
        """Ids of up to ``room`` queued jobs of ``first``'s tenant and type, not cancelled, whose keys have
        ``settings`` and references that resolve to ``version``; reads a bounded number of queued rows (skipping
        rows other claims hold on Postgres), so a deep backlog never makes a claim slower."""
        scan = max(MIN_SCAN, SCAN_PER_PLACE * room)
        candidates = conn.execute(
            select(Job.id, Job.type, Job.spec)
            .where(
                Job.tenant_id == first.tenant_id,
                Job.status == "queued",
                Job.type == first.type,
                Job.cancel_requested.is_(False),
                Job.id != first.id,
            )
            .limit(scan)
            .with_for_update(skip_locked=True)
        ).all()
        chosen: list[str] = []
        for candidate in candidates:
            if exclude and candidate.id in exclude:
                continue
            key = batchable(candidate.type, candidate.spec)
            if key is None or key.settings != settings:
                continue
            mate = _resolve(conn, first.tenant_id, key.model, resolved)
            if mate is not None and mate.id == version.id:
                chosen.append(candidate.id)
                if len(chosen) == room:
                    break
        return chosen

    def _take(self, conn: Connection, ids: list[str], token: str, worker: str, now: datetime) -> Sequence[Row[Any]]:
        """``queued -> running`` for those of ``ids`` still queued and not cancelled, in one UPDATE; their events."""
        rows = conn.execute(
            update(Job)
            .where(Job.id.in_(ids), status_is("queued"), Job.cancel_requested.is_(False))
            .values(
                status="running",
                revision=Job.revision + 1,
                updated_at=now,
                lease_token=token,
                lease_expires_at=now + timedelta(seconds=self._jobs.lease_s),
                attempts=Job.attempts + 1,
                started_at=now,
                worker=worker,
            )
            .execution_options(synchronize_session=False)
            .returning(*Job.__table__.c)
        ).all()
        if rows:
            data = {"worker": worker, "batch_size": len(rows)} if len(rows) > 1 else {"worker": worker}
            events = [
                {"job_id": r.id, "kind": "state", "from_status": "queued", "to_status": "running", "data": data}
                for r in rows
            ]
            conn.execute(insert(JobEvent), [{**e, "created_at": now} for e in events])
        return rows

    def finish(self, token: str, outcomes: dict[str, Outcome]) -> dict[str, str]:
        """Record every outcome of a batch in one transaction, each conditional on the job still running under
        ``token``; a job whose cancel was asked meanwhile ends ``cancelled`` instead. Each job's log lines are
        written in the same transaction. Returns each job's end as written (``lease_lost`` when nothing was)."""
        if not outcomes:
            return {}
        now = utcnow()
        ended: dict[str, str] = dict.fromkeys(outcomes, "lease_lost")
        done = {"finished_at": now, "lease_token": None, "lease_expires_at": None, "updated_at": now}
        owned = [Job.lease_token == token, status_is("running")]
        events: list[dict[str, Any]] = []
        finished: list[tuple[str, str, datetime | None, datetime | None]] = []
        with write_scope(self._factory) as conn:
            stopped = [job_id for job_id, outcome in outcomes.items() if outcome.status == "cancelled"]
            asked: ColumnElement[bool] = Job.cancel_requested.is_(True)
            if stopped:
                asked = or_(asked, Job.id.in_(stopped))
            cancelled = conn.execute(
                update(Job)
                .where(Job.id.in_(list(outcomes)), *owned, asked)
                .values(status="cancelled", revision=Job.revision + 1, **done)
                .execution_options(synchronize_session=False)
                .returning(*Job.__table__.c)
            ).all()
            for row in cancelled:
                ended[row.id] = "cancelled"
                events.append(_event(row.id, "cancelled", follow_up(conn, job_record(row)) or None))
                finished.append((row.type, "cancelled", row.started_at, now))
            statement = (
                update(Job)
                .where(Job.id == bindparam("job_id"), *owned)
                .values(
                    status=bindparam("to_status"),
                    result=bindparam("result_value"),
                    error=bindparam("error_value"),
                    revision=Job.revision + 1,
                    **done,
                )
                .execution_options(synchronize_session=False)
                .returning(*Job.__table__.c)
            )
            for job_id, outcome in outcomes.items():
                if ended[job_id] == "cancelled" or outcome.status == "cancelled":
                    continue
                won = conn.execute(
                    statement,
                    {
                        "job_id": job_id,
                        "to_status": outcome.status,
                        "result_value": outcome.result,
                        "error_value": outcome.error,
                    },
                ).one_or_none()
                if won is None:
                    continue
                ended[job_id] = outcome.status
                code = (outcome.error or {}).get("code") if outcome.status == "failed" else None
                data = {"code": code} if code else {}
                # The job's webhook notification and automatic retry, in this transaction (db.followups).
                data.update(follow_up(conn, job_record(won)))
                events.append(_event(job_id, outcome.status, data or None))
                finished.append((won.type, outcome.status, won.started_at, now))
            if events:
                conn.execute(insert(JobEvent), [{**e, "created_at": now} for e in events])
                count_finished_many(conn, finished)
            logs = [
                _log_row(job_id, line)
                for job_id, outcome in outcomes.items()
                if ended[job_id] in TERMINAL
                for line in outcome.log
            ]
            if logs:
                conn.execute(insert(JobLog), logs)
        for job_id, status in ended.items():
            if status in TERMINAL:
                self._jobs._changed(job_id)  # noqa: SLF001
        return ended


@dataclass(frozen=True)
class _Seed:
    id: str
    tenant_id: str
    type: str


def _event(job_id: str, target: str, data: dict[str, Any] | None) -> dict[str, Any]:
    return {"job_id": job_id, "kind": "state", "from_status": "running", "to_status": target, "data": data}


def _log_row(job_id: str, line: LogLine) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "attempt": line.attempt,
        "level": line.level[:10],
        "logger": line.logger[:100],
        "message": line.message[:MAX_MESSAGE_CHARS],
        "created_at": line.created_at,
    }


def _resolve(
    conn: Connection, tenant_id: str, ref: str, resolved: dict[str, ModelVersionRecord | None]
) -> ModelVersionRecord | None:
    """The version ``ref`` names now (read on the claim's connection, once per reference); None when it names none."""
    if ref not in resolved:
        try:
            resolved[ref] = resolve_on(conn, tenant_id, parse_model_ref(ref))
        except TensorQError:
            resolved[ref] = None
    return resolved[ref]
