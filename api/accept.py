"""Accepting new jobs: every route that creates jobs (submit, batch, retry, model upload) counts them against the
tenant's quotas (``admit``), commits them as ``queued`` and publishes them (``accept``), and answers 202."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flask import Response, jsonify, request

from api.outbox import publish, publish_all
from api.schemas import request_hash
from api.services import services
from api.workers import public_job
from db.newjob import NewJob
from db.records import JobRecord, Principal
from tensorq.core.errors import InvalidRequest


def idempotency_key() -> str | None:
    """The request's ``Idempotency-Key`` header (None without one); InvalidRequest unless 1 to 200 characters."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200):
        raise InvalidRequest("Idempotency-Key must be 1 to 200 characters")
    return key


def admit(who: Principal, news: Sequence[NewJob]) -> None:
    """Refuse training while the tenant's model storage is full, then count ``news`` against its submissions
    per minute (QuotaExceeded or PayloadTooLarge before anything is written)."""
    svc = services()
    if any(new.type == "train" for new in news):
        svc.quotas.check_model_bytes(who)
    svc.quotas.check_submission(who, cost=len(news))


def accept(
    who: Principal,
    news: NewJob | Sequence[NewJob],
    *,
    key: str | None = None,
    body: Any = None,
    parent: NewJob | None = None,
) -> list[JobRecord]:
    """Commit one job, or a batch all or none, as ``queued`` under the tenant's queued-jobs quota, and publish
    what this call created; the jobs, in order, then the ``parent`` a batch asked for (never published: it
    follows its children). With ``key`` (the Idempotency-Key) a repeat of the same ``body`` returns the jobs
    the first request made, and another body under that key is refused."""
    svc = services()
    limit = svc.quotas.queued_limit(who)
    body_hash = request_hash(body) if key else None
    if isinstance(news, NewJob):
        one = replace(news, idempotency_key=key, request_hash=body_hash) if key else news
        outcome = svc.db.jobs.submit(one, publishing=True, queued_limit=limit)
        if outcome.created:
            publish(outcome.job)
        return [outcome.job]
    jobs, created, top = svc.db.jobs.submit_many(
        list(news), idempotency_key=key, request_hash=body_hash, publishing=True, queued_limit=limit, parent=parent
    )
    if created:
        publish_all(jobs)
    return jobs if top is None else [*jobs, top]


def answer(job: JobRecord) -> Response:
    """202 Accepted with the job and its ``Location``."""
    response = jsonify(public_job(job))
    response.status_code = 202
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response
