"""Workers and queues in view: ``GET /v1/workers``, ``GET /v1/queues``, and why a queued job waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from typing import Any

from flask import Blueprint, g, has_request_context, jsonify

from api import present, responses
from api.openapi import operation
from api.services import principal, services
from db.outlook import Outlook, Outlooks, QueueState
from db.records import JobRecord, iso
from db.workers import WorkerRegistry
from tensorq.core.routing import ROUTES

bp = Blueprint("workers", __name__)
QUEUE_OF_TYPE = {job_type: route.queue for job_type, route in ROUTES.items()}
SERVED_CACHE_S = 2.0  # a job read or a list page asks for the served queues at most this often per process


@bp.get("/workers")
@operation(
    summary="Live workers: name, host, GPU, queues, version, started, busy, last seen",
    responses={200: responses.WorkerList},
    errors=(),
)
def list_workers():
    """Workers seen within ``worker_stale_s``; the job each runs is shown only to that job's tenant."""
    tenant = principal().tenant_id
    workers = services().db.workers.live()
    return jsonify(
        {
            "workers": [
                {
                    "name": w.name,
                    "node": w.node,
                    "host": w.host,
                    "pid": w.pid,
                    "gpu": w.gpu,
                    "queues": w.queues,
                    "version": w.version,
                    "started_at": iso(w.started_at),
                    "busy": w.current_job is not None,
                    "current_job": w.current_job if w.current_job_tenant == tenant else None,
                    "last_seen": iso(w.last_seen),
                }
                for w in workers
            ]
        }
    )


@bp.get("/queues")
@operation(
    summary="Each queue: jobs waiting and running, the oldest wait, live workers",
    responses={200: responses.QueueList},
    errors=(),
)
def list_queues():
    """Depth, running jobs, the oldest queued job's age and the live workers of each queue (all tenants)."""
    stats = services().db.workers.queues(QUEUE_OF_TYPE)
    return jsonify(
        {
            "queues": [
                {
                    "name": q.name,
                    "depth": q.depth,
                    "running": q.running,
                    "oldest_queued_age_s": q.oldest_queued_age_s,
                    "live_workers": q.live_workers,
                }
                for q in stats
            ]
        }
    )


class ServedQueues:
    """The queues some live worker takes, re-read from SQL at most every ``SERVED_CACHE_S``."""

    def __init__(self, registry: WorkerRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._read_at = -SERVED_CACHE_S
        self._served: set[str] = set()

    def get(self) -> set[str]:
        """The served queues now (at most ``SERVED_CACHE_S`` old)."""
        with self._lock:
            if time.monotonic() - self._read_at >= SERVED_CACHE_S:
                self._served = self.registry.served_queues()
                self._read_at = time.monotonic()
            return self._served


def waiting_reason(job: JobRecord, served: ServedQueues, grace_s: float) -> str | None:
    """Why a queued job waits, when its queue has had no live worker for ``grace_s``; else None (a job younger
    than ``grace_s``, as every job just accepted is, is answered without reading the served queues)."""
    if job.status != "queued":
        return None
    queue = QUEUE_OF_TYPE.get(job.type)
    if queue is None:
        return None
    created = job.created_at.timestamp() if job.created_at else time.time()
    if time.time() - created < grace_s or queue in served.get():
        return None
    return f"no live worker serves queue '{queue}'"


class QueueOutlooks:
    """Queued jobs' positions and expected starts; each queue's state re-read at most every ``SERVED_CACHE_S``."""

    def __init__(self, outlooks: Outlooks, fair_queues: Collection[str]) -> None:
        self.outlooks = outlooks
        self.fair_queues = set(fair_queues)
        self._lock = threading.Lock()
        self._states: dict[str, tuple[float, QueueState]] = {}

    def of(self, job: JobRecord) -> Outlook:
        """The job's outlook (empty unless it is queued; a parent's is its children's)."""
        queue = QUEUE_OF_TYPE.get(job.type)
        if job.status != "queued" or queue is None or job.children is not None:
            return Outlook()
        with self._lock:
            read_at, state = self._states.get(queue, (-SERVED_CACHE_S, None))
            if state is None or time.monotonic() - read_at >= SERVED_CACHE_S:
                state = self.outlooks.state(queue, queue in self.fair_queues)
                self._states[queue] = (time.monotonic(), state)
        # A job's outlook depends on its queue, tenant, type, priority and creation time alone: the jobs of one
        # batch (created together) share it, so a request reads it once for them, not once per job (issue 26:
        # a 100-job batch's answer counted the queue 100 times).
        memo: dict[tuple[Any, ...], Outlook] = g.setdefault("tensorq_outlooks", {}) if has_request_context() else {}
        key = (queue, job.tenant_id, job.type, job.priority, job.created_at)
        if key not in memo:
            memo[key] = self.outlooks.of(job, state)
        return memo[key]


def public_job(job: JobRecord, without: Collection[str] = ()) -> dict[str, Any]:
    """The job as every route answers with it (``present.job``), with ``waiting_reason`` when it waits on a
    queue no worker serves, and a queued job's position and expected start; a listing leaves out the keys in
    ``without``."""
    reason = waiting_reason(job, served_queues(), services().settings.worker_stale_s)
    return present.job(job, reason, outlook=queue_outlooks().of(job), without=without)


def queue_outlooks() -> QueueOutlooks:
    """This app's queued-job outlooks."""
    from flask import current_app

    return current_app.extensions["tensorq.queue_outlooks"]


def served_queues() -> ServedQueues:
    """This app's cache of the served queues."""
    from flask import current_app

    return current_app.extensions["tensorq.served_queues"]
