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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session, sessionmaker

from db.changes import JobChanges
from db.joblogs import LogLine, log_row
from db.jobs import RUNNING_OF_TENANT, Deferred
from db.models import Job, JobLog, Tenant, utcnow
from db.parents import ended_parents
from db.records import JobRecord, ModelVersionRecord
from db.registry import parse_model_ref, resolve_on
from db.session import write_scope
from db.transitions import Ending, end_running, leased, status_is, transition_many
from tensorq.core.errors import TensorQError


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
class Outcome(Ending):
    """How one job of a batch ended in the worker (an ``Ending``: ``succeeded`` with its result, ``failed`` with
    its error, or ``cancelled``), with the job's own log lines of the attempt."""

    log: list[LogLine] = field(default_factory=list)


class BatchStore:
    """Claims and finishes of micro-batches: the state machine's moves (``db.transitions``) over several jobs,
    signalled through the job store's ``changes``."""

    def __init__(self, factory: sessionmaker[Session], *, lease_s: float, changes: JobChanges) -> None:
        self._factory = factory
        self.lease_s = lease_s
        self.changes = changes

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
                .where(Job.id == job_id, status_is("queued"), Job.cancel_requested.is_(False), Job.children_total == 0)
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
            jobs = self._take(conn, ids, token, worker, now)
        self.changes.note_all((job.id for job in jobs), "running")
        if not jobs:
            return None
        # When the first job went to another worker between the read and the update, its mates still run here.
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
            more = self._take(conn, ids, claim.lease_token, worker, now)
        self.changes.note_all((job.id for job in more), "running")
        return BatchClaim([*claim.jobs, *more], claim.lease_token, claim.version, claim.settings)

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
                Job.children_total == 0,
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

    def _take(self, conn: Connection, ids: list[str], token: str, worker: str, now: datetime) -> list[JobRecord]:
        """``queued -> running`` for those of ``ids`` still queued and not cancelled, in one UPDATE, each with its
        event (``{"worker", "batch_size"}``); the jobs taken, in the order of ``ids``."""
        return transition_many(
            conn,
            ids,
            "queued",
            "running",
            leased(token, worker, self.lease_s, now),
            extra_where=(Job.cancel_requested.is_(False), Job.children_total == 0),
            event_data=lambda _job, moved: {"worker": worker, "batch_size": moved} if moved > 1 else {"worker": worker},
        )

    def finish(self, token: str, outcomes: dict[str, Outcome]) -> dict[str, str]:
        """Record every outcome of a batch in one transaction, each conditional on the job still running under
        ``token`` (``db.transitions.end_running``); a job whose cancel was asked meanwhile ends ``cancelled``
        instead. Each job's log lines are written in the same transaction. Returns each job's end as written
        (``lease_lost`` when nothing was)."""
        if not outcomes:
            return {}
        def logs_of(jobs: list[JobRecord]) -> tuple[Any, list[dict[str, Any]]]:
            return insert(JobLog), [log_row(job.id, line) for job in jobs for line in outcomes[job.id].log]

        with write_scope(self._factory) as conn:
            ended = end_running(conn, token, outcomes, cancel_asked=True, rows_of=logs_of)
            parents = ended_parents(conn)
        self.changes.note_all(ended)
        self.changes.note_all(parents)
        return {job_id: ended[job_id].status if job_id in ended else "lease_lost" for job_id in outcomes}


@dataclass(frozen=True)
class _Seed:
    id: str
    tenant_id: str
    type: str


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
