"""Jobs: submit, read (with ``?wait=`` long-poll), list, cancel, retry, delete, events and artifacts."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import replace

from flask import Blueprint, Response, jsonify, request

from api import present, responses, shards
from api.accept import accept, admit, answer, idempotency_key
from api.batch import is_batch, submit_batch
from api.job_stream import job_event_stream, wants_events
from api.longpoll import next_change, read_when_changed, watching
from api.openapi import ARTIFACT, JOB_OR_EVENTS, operation, query
from api.outbox import publish_all
from api.present import HEAVY_FIELDS
from api.references import check_references
from api.request_text import json_body
from api.schemas import JobBatch, JobSubmission, parse_submission, with_spec
from api.services import principal, services
from api.stored_files import send_stored
from api.tune import submit_tune
from api.webhooks import check_callback
from api.workers import public_job
from db.newjob import NewJob
from db.records import JOB_TYPES, STATUSES, JobRecord, Principal
from ml.specs import SPECS, parse
from ml.tuning import TuneSpec
from tensorq.core.errors import Conflict, InvalidRequest, NotFound, OutOfRange

log = logging.getLogger(__name__)
bp = Blueprint("jobs", __name__)

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@bp.post("/jobs")
@operation(
    summary='Submit a train, predict or explain job, or a batch of them ({"jobs": [...]}, all or none)',
    body=(JobSubmission, JobBatch),
    responses={202: (responses.Job, responses.JobBatchResult)},
    errors=(400, 403, 413, 415, 422, 429),
    location=True,
    query=[
        query(
            "wait",
            {"type": "number", "minimum": 0},
            "one job: answer once it has finished, or after this many seconds (at most the server's max_wait_s)",
        )
    ],
    headers=[
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        }
    ],
)
def submit_job():
    """Validate, commit as ``queued``, then publish; answers 202 with the job (or, for ``{"jobs": [...]}``,
    with the batch's jobs in order). With ``?wait=N`` a single job's answer comes once it has finished, or
    after N seconds with its state then (at once when the tenant's long-poll slots are all taken)."""
    body = json_body()
    wait_s = _wait_seconds()
    if is_batch(body):
        if wait_s:
            raise InvalidRequest("wait is for one job's submission; wait on a batch's jobs with GET /v1/jobs/{id}")
        return submit_batch(body)
    submission, spec = parse_submission(body)
    who = principal()
    svc = services()
    svc.broker_guard.check()
    if isinstance(spec, TuneSpec):
        new = NewJob.from_submission(who.tenant_id, submission, default_max_attempts=svc.settings.default_max_attempts)
        return answer(submit_tune(who, new, spec, body))
    checked = check_references(who.tenant_id, spec)
    submission = submission if checked is spec else with_spec(submission, checked)
    check_callback(who.tenant_id, submission.callback_url)
    new = NewJob.from_submission(who.tenant_id, submission, default_max_attempts=svc.settings.default_max_attempts)
    sharded = shards.plan(who.tenant_id, checked, new)
    admit(who, [new])
    if sharded is None and wait_s:
        return answer(_submitted_and_finished(who, new, body, wait_s))
    if sharded is None:
        [job] = accept(who, new, key=idempotency_key(), body=body)
    else:  # the parent, last: the client waits on it (api.shards)
        job = accept(who, sharded[1], key=idempotency_key(), body=body, parent=sharded[0])[-1]
    if wait_s and not job.terminal:
        job = _finished_within(who.tenant_id, job, wait_s)
    return answer(job)


def _submitted_and_finished(who: Principal, new: NewJob, body: object, wait_s: float) -> JobRecord:
    """Accept one job and answer with it once it has finished, or as it is after ``wait_s`` (as accepted when no
    wait slot is free). Its id is chosen first and its change signals watched before it is committed and
    published, so no change is missed and the accepted job is not read again (issue 26: one read less)."""
    svc = services()
    new = replace(new, job_id=str(uuid.uuid4()))
    deadline = time.monotonic() + wait_s
    with svc.wait_slots.hold_if_free(who.tenant_id) as waiting:
        with watching(svc.changes if waiting else None, new.job_id or "") as watch:
            [job] = accept(who, new, key=idempotency_key(), body=body)
            if not waiting or job.terminal:
                return job
            try:
                if job.id != new.job_id:  # an Idempotency-Key's earlier job: read it under a watch of its own
                    left = max(deadline - time.monotonic(), 0.0)
                    return read_when_changed(svc.db.jobs, svc.changes, who.tenant_id, job.id, left, until_finished=True)
                return next_change(svc.db.jobs, svc.changes, watch, job, deadline, until_finished=True)
            except Exception:  # noqa: BLE001 - the job is committed and published: answer with it as accepted
                log.warning("job %s: waiting for its end failed; answering with it as accepted", job.id, exc_info=True)
                return job


def _finished_within(tenant_id: str, accepted: JobRecord, wait_s: float) -> JobRecord:
    """The accepted job once it has finished, or as it is after ``wait_s``; as accepted when no wait slot is
    free or the wait fails (a database blip): the answer to an accepted job is never an error, which a client
    would retry as a second submission."""
    svc = services()
    with svc.wait_slots.hold_if_free(tenant_id) as waiting:
        if not waiting:
            return accepted
        try:
            return read_when_changed(svc.db.jobs, svc.changes, tenant_id, accepted.id, wait_s, until_finished=True)
        except Exception:  # noqa: BLE001 - the job is committed and published: answer with it as accepted
            log.warning(
                "job %s: waiting for its end failed; answering with the job as accepted", accepted.id, exc_info=True
            )
            return accepted


def _wait_seconds() -> float:
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise InvalidRequest("wait must be a number of seconds") from None
    if not 0 <= wait <= 3600:
        raise OutOfRange("wait must be between 0 and 3600 seconds")
    return min(wait, services().settings.max_wait_s)


@bp.get("/jobs/<job_id>")
@operation(
    summary="A job; with wait=N, answered at its next change (or, with until=finished, when it ends); with "
    "Accept: text/event-stream, a stream of its changes",
    responses={200: JOB_OR_EVENTS},
    errors=(400, 404, 422, 429),
    query=[
        query("wait", {"type": "number", "minimum": 0}, "seconds to long-poll (at most the server's max_wait_s)"),
        query("until", {"enum": ["finished"]}, "with wait: answer only once the job has finished"),
    ],
)
def get_job(job_id: str):
    """The job; with ``?wait=N`` it answers on the first change (``until=finished``: the end) or after N seconds;
    ``Accept: text/event-stream`` streams it now and at each change until it has finished (``api.job_stream``)."""
    until = request.args.get("until")
    if until not in (None, "finished"):
        raise InvalidRequest("until must be 'finished'", details={"allowed": ["finished"]})
    svc = services()
    tenant_id, wait_s = principal().tenant_id, _wait_seconds()
    if wants_events():
        return job_event_stream(tenant_id, job_id)
    with svc.wait_slots.hold(tenant_id, wait_s):
        job = read_when_changed(svc.db.jobs, svc.changes, tenant_id, job_id, wait_s, until_finished=until == "finished")
    return jsonify(public_job(job))


@bp.get("/jobs")
@operation(
    summary="The caller's jobs, newest first",
    responses={200: responses.JobPage},
    errors=(400, 422),
    query=[
        query("status", {"enum": list(STATUSES)}, "only jobs in this status"),
        query("type", {"enum": list(JOB_TYPES)}, "only jobs of this type"),
        query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "page size (50)"),
        query("cursor", {"type": "string"}, "next_cursor of the previous page"),
        query("name", {"type": "string", "minLength": 1, "maxLength": 200}, "only jobs of this name"),
        query("tag", {"type": "string", "minLength": 1, "maxLength": 64}, "only jobs with this tag"),
        query("parent", {"type": "string", "minLength": 1, "maxLength": 36}, "only the children of this job"),
        query(
            "fields",
            {"type": "string", "pattern": "^(all|(spec|result)(,(spec|result))?)$"},
            "add the full spec and/or result to each job's summary: spec, result, spec,result or all",
        ),
    ],
)
def list_jobs():
    """The caller's jobs as summaries (no spec or result unless ``fields`` asks), newest first; filters
    ``status``, ``type``, ``name``, ``tag`` and ``parent``; cursor pagination."""
    extra = listed_fields(request.args.get("fields"))
    status = request.args.get("status")
    job_type = request.args.get("type")
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"unknown status '{status}'", details={"known": list(STATUSES)})
    if job_type is not None and job_type not in JOB_TYPES:
        raise InvalidRequest(f"unknown type '{job_type}'", details={"known": list(JOB_TYPES)})
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise InvalidRequest("limit must be an integer") from None
    if not 1 <= limit <= 200:
        raise OutOfRange("limit must be between 1 and 200")
    jobs, cursor = services().db.jobs.list(
        principal().tenant_id,
        status=status,
        type=job_type,
        limit=limit,
        cursor=request.args.get("cursor"),
        name=request.args.get("name") or None,
        tag=request.args.get("tag") or None,
        parent=request.args.get("parent") or None,
    )
    without = [k for k in HEAVY_FIELDS if k not in extra]
    summaries = [public_job(j, without) for j in jobs]
    return jsonify({"jobs": summaries, "next_cursor": cursor})


def listed_fields(raw: str | None) -> set[str]:
    """The heavy fields ``?fields=`` asks a listing for (``all`` for both); InvalidRequest for unknown ones."""
    if raw is None:
        return set()
    asked = {name.strip() for name in raw.split(",") if name.strip()}
    if asked == {"all"}:
        return set(HEAVY_FIELDS)
    unknown = sorted(asked - set(HEAVY_FIELDS))
    if unknown or not asked:
        raise InvalidRequest(
            f"unknown fields {', '.join(unknown) or '(none)'}", details={"known": [*HEAVY_FIELDS, "all"]}
        )
    return asked


@bp.post("/jobs/<job_id>/cancel")
@operation(summary="Cancel a queued or running job", responses={202: responses.Job}, errors=(403, 404, 409))
def cancel_job(job_id: str):
    """Cancel a queued job, or ask a running one to stop at its next boundary; 409 when finished."""
    job = services().db.jobs.cancel(principal().tenant_id, job_id)
    return jsonify(public_job(job)), 202


@bp.delete("/jobs/<job_id>")
@operation(
    summary="Delete a finished job with its events, logs and artifacts (a model it trained stays)",
    responses={200: responses.Deleted},
    errors=(403, 404, 409),
)
def delete_job(job_id: str):
    """Delete a succeeded, failed or cancelled job; 409 while it is queued or running."""
    svc = services()
    svc.store.check()  # a store that cannot be reached: 503 before the record goes, not an orphaned file
    record, kept = svc.db.jobs.delete(principal().tenant_id, job_id)
    freed = svc.store.remove_folder(svc.store.job_location(record.id), keep=kept)
    return jsonify({"deleted": "job", "id": record.id, "freed_bytes": freed})


@bp.post("/jobs/<job_id>/retry")
@operation(
    summary="Submit a failed or cancelled job's spec again as a new job linked to it (retry_of); a parent is "
    "reopened instead, with a retry of each of its failed or cancelled children",
    responses={202: responses.Job},
    errors=(403, 404, 409, 429),
    location=True,
)
def retry_job(job_id: str):
    """A new queued job with the old one's type, spec, priority and limits (a parent: itself, reopened, its
    failed children rerun); 409 unless it failed or was cancelled."""
    who = principal()
    svc = services()
    old = svc.db.jobs.get(who.tenant_id, job_id)
    if old.children is not None:
        return _retry_parent(who, old)
    if old.status not in ("failed", "cancelled") or old.type not in SPECS:
        raise Conflict(
            f"only failed or cancelled train, predict and explain jobs can be retried; job {job_id} is {old.status}",
            code="not_retryable",
            details={"status": old.status, "type": old.type},
        )
    svc.broker_guard.check()
    spec = parse(SPECS[old.type], old.spec, where="spec")
    check_references(who.tenant_id, spec)
    # The chain's budget goes on: a retry of an early job numbers on from the chain's highest retry.
    new = NewJob.retry_of(old, retry_number=svc.db.jobs.chain_retries(who.tenant_id, old.id) + 1)
    admit(who, [new])
    [job] = accept(who, new)
    return answer(job)


def _retry_parent(who: Principal, old: JobRecord) -> Response:
    """Reopen a failed or cancelled parent with a retry of each failed or cancelled child, and publish those."""
    svc = services()
    svc.broker_guard.check()
    svc.quotas.check_submission(who, cost=max(1, old.children.failures if old.children else 1))
    parent, retries = svc.db.jobs.retry_failed_children(who.tenant_id, old.id)
    publish_all(retries)
    return answer(parent)


@bp.get("/jobs/<job_id>/events")
@operation(summary="A job's state changes and progress, in order", responses={200: responses.EventList}, errors=(404,))
def job_events(job_id: str):
    """The job's state changes and progress events, in order."""
    events = services().db.jobs.events(principal().tenant_id, job_id)
    return jsonify({"events": [present.event(e) for e in events]})


@bp.get("/jobs/<job_id>/artifacts/<name>")
@operation(
    summary="A file the job produced (heatmap PNG, predictions CSV, outputs npz)",
    responses={200: ARTIFACT},
    errors=(404,),
)
def job_artifact(job_id: str, name: str):
    """A file the job listed in its result; the path is checked to stay in the job's folder."""
    svc = services()
    job = svc.db.jobs.get(principal().tenant_id, job_id)
    listed = (job.result or {}).get("artifacts", [])
    if not ARTIFACT_NAME.match(name) or name not in listed:
        raise NotFound(f"artifact {name} not found")
    return send_stored(svc.store, svc.store.job_location(job_id, name), name, f"artifact {name} not found")
