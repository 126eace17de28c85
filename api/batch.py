"""Batch submission: ``POST /v1/jobs`` with ``{"jobs": [...]}`` validates every job, commits them in one
transaction and publishes them over one broker connection; a bad job fails the whole request."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify

from api.accept import accept, admit, idempotency_key
from api.references import check_references
from api.schemas import ParentSubmission, parse_submission, with_spec
from api.services import principal, services
from api.webhooks import check_callback
from api.workers import public_job
from db.newjob import NewJob
from ml.specs import parse
from tensorq.core.errors import InvalidRequest, OutOfRange, TensorQError

log = logging.getLogger(__name__)


def is_batch(body: Any) -> bool:
    """Whether a submission body is a batch (``{"jobs": [...]}``) rather than one job."""
    return isinstance(body, dict) and "jobs" in body


def _at(index: int, exc: TensorQError) -> TensorQError:
    """The error of job ``index`` of a batch, its index in ``details``."""
    details = exc.details if isinstance(exc.details, dict) else {"errors": exc.details} if exc.details else {}
    exc.details = {**details, "index": index}
    exc.message = f"jobs[{index}]: {exc.message}"
    return exc


def _items(body: dict[str, Any], limits: dict[str, int]) -> list[Any]:
    """The batch's job bodies, unchecked; at most the lowest of ``limits`` (setting name -> jobs)."""
    if not set(body) <= {"jobs", "parent"}:
        unexpected = sorted(set(body) - {"jobs", "parent"})
        raise InvalidRequest("a batch body has only 'jobs' and 'parent'", details={"unexpected": unexpected})
    items = body["jobs"]
    if not isinstance(items, list) or not items:
        raise InvalidRequest("'jobs' must be a non-empty list of job submissions")
    setting = min(limits, key=limits.__getitem__)
    if len(items) > limits[setting]:
        raise OutOfRange(
            f"at most {limits[setting]} jobs in one batch ({setting})",
            code="batch_too_large",
            details={"limit": limits[setting], "jobs": len(items), "setting": setting},
        )
    return items


def _parse(items: list[Any]) -> list[Any]:
    """The batch's (submission, spec) pairs, in order."""
    parsed = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse_submission(item))
        except TensorQError as exc:
            raise _at(index, exc) from None
    return parsed


def submit_batch(body: dict[str, Any]) -> Response:
    """Validate every job, count the batch against the quotas, commit it in one transaction, publish it."""
    svc = services()
    who = principal()
    # A batch larger than the per-minute quota could never be accepted: refused as too large, not 429 forever.
    limits = {
        "max_batch_jobs": svc.settings.max_batch_jobs,
        "quota_submissions_per_minute": svc.quotas.submissions_per_minute(who),
    }
    items = _items(body, limits)
    svc.quotas.check_submission(who, cost=len(items), count=False)  # a 429 before seconds of validation
    parsed = _parse(items)
    svc.broker_guard.check()
    versions: dict[str, Any] = {}
    for index, (submission, spec) in enumerate(parsed):
        try:
            checked = check_references(who.tenant_id, spec, versions)
            check_callback(who.tenant_id, submission.callback_url)
        except TensorQError as exc:
            raise _at(index, exc) from None
        if submission.type == "tune":
            raise _at(index, InvalidRequest("a tune job is submitted alone, not in a batch"))
        if getattr(spec, "shards", None) is not None:
            raise _at(index, InvalidRequest("a sharded job is submitted alone, not in a batch"))
        if checked is not spec:  # records made rows: the form the worker reads
            parsed[index] = (with_spec(submission, checked), checked)
    news = [
        NewJob.from_submission(who.tenant_id, submission, default_max_attempts=svc.settings.default_max_attempts)
        for submission, _ in parsed
    ]
    parent = _parent(who.tenant_id, body.get("parent"))
    admit(who, news)
    jobs = accept(who, news, key=idempotency_key(), body=body, parent=parent)
    if parent is None:
        response = jsonify({"jobs": [public_job(job) for job in jobs]})
    else:
        *jobs, top = jobs
        response = jsonify({"jobs": [public_job(job) for job in jobs], "parent": public_job(top)})
        response.headers["Location"] = f"/v1/jobs/{top.id}"
    response.status_code = 202
    return response


def _parent(tenant_id: str, body: Any) -> NewJob | None:
    """The ``group`` job a batch's ``parent`` asks for (None without one)."""
    if body is None:
        return None
    asked = parse(ParentSubmission, body, where="parent")
    check_callback(tenant_id, asked.callback_url)
    return NewJob(
        tenant_id,
        "group",
        {"failure_policy": asked.failure_policy},
        priority=asked.priority,
        max_attempts=1,
        name=asked.name,
        tags=tuple(dict.fromkeys(asked.tags)),
        callback_url=asked.callback_url,
        max_failed_children=asked.max_failed_children or 0,
    )
