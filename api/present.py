"""How the HTTP API shows the stores' records: one function per record type (``api/responses.py`` documents
each shape for OpenAPI). Records never serialise themselves; server paths and tenant ids are never shown."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict
from typing import Any

from db.outlook import Outlook
from db.records import DatasetRecord, EventRecord, JobRecord, ModelEventRecord, ModelRecord, ModelVersionRecord, iso
from db.webhooks import Delivery


def public_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job's error as clients see it: code, message and details, without the traceback that jobs failed
    before tracebacks moved to the job's log still hold."""
    if error is None:
        return None
    details = error.get("details")
    if not isinstance(details, dict) or "traceback" not in details:
        return error
    return {**error, "details": {k: v for k, v in details.items() if k != "traceback"}}


# The keys of every job the API answers with or a webhook sends, in order: ``job`` emits each of them, always
# (a listing's summary leaves out the heavy ones it was not asked for); the client's ``Job`` reads each.
JOB_KEYS = (
    "id",
    "type",
    "status",
    "spec",
    "progress",
    "result",
    "error",
    "priority",
    "attempts",
    "max_attempts",
    "timeout_s",
    "cancel_requested",
    "created_at",
    "started_at",
    "finished_at",
    "retry_of",
    "name",
    "tags",
    "callback_url",
    "max_retries",
    "retry_number",
    "waiting_reason",
    "queue_position",
    "expected_start_s",
    "parent_id",
    "children",
)
# What a listing leaves out unless ``?fields=`` asks: a result may hold thousands of outputs or attributions.
HEAVY_FIELDS = ("spec", "result")


def job(
    record: JobRecord,
    waiting_reason: str | None = None,
    *,
    outlook: Outlook | None = None,
    without: Collection[str] = (),
) -> dict[str, Any]:
    """The job as every answer and notification shows it: always the keys of ``JOB_KEYS`` (a listing leaves
    out those in ``without``); ``waiting_reason`` says why a queued job waits and ``outlook`` where it stands
    (``api.workers.public_job``)."""
    outlook = outlook or Outlook()
    shown = {
        "id": record.id,
        "type": record.type,
        "status": record.status,
        "spec": record.spec,
        "progress": record.progress,
        "result": record.result,
        "error": public_error(record.error),
        "priority": record.priority,
        "attempts": record.attempts,
        "max_attempts": record.max_attempts,
        "timeout_s": record.timeout_s,
        "cancel_requested": record.cancel_requested,
        "created_at": iso(record.created_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "retry_of": record.retry_of,
        "name": record.name,
        "tags": list(record.tags),
        "callback_url": record.callback_url,
        "max_retries": record.max_retries,
        "retry_number": record.retry_number,
        "waiting_reason": waiting_reason,
        "queue_position": outlook.queue_position,
        "expected_start_s": outlook.expected_start_s,
        "parent_id": record.parent_id,
        "children": None if record.children is None else record.children.public(),
    }
    return {k: v for k, v in shown.items() if k not in without} if without else shown


def notification(record: JobRecord) -> bytes:
    """A webhook's body: the job as ``GET /v1/jobs/{id}`` shows a finished job, as compact JSON."""
    return json.dumps(job(record), separators=(",", ":")).encode()


def webhook_delivery(record: Delivery) -> dict[str, Any]:
    """A webhook delivery as the HTTP API shows it (its body is the job's record)."""
    return {
        "id": record.id,
        "job_id": record.job_id,
        "event": record.event,
        "url": record.url,
        "status": record.status,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "created_at": iso(record.created_at),
        "delivered_at": iso(record.delivered_at),
    }


def event(record: EventRecord | ModelEventRecord) -> dict[str, Any]:
    """A job's or a model's event as the HTTP API shows it."""
    out = asdict(record)
    out["created_at"] = iso(record.created_at)
    return out


def dataset(record: DatasetRecord, preview: bool = False) -> dict[str, Any]:
    """The dataset as the HTTP API shows it (no server path); with ``preview`` its schema and first rows."""
    public = {
        "id": record.id,
        "name": record.name,
        "format": record.format,
        "size_bytes": record.size_bytes,
        "info": record.info,
        "created_at": iso(record.created_at),
    }
    if preview:
        public["schema"] = record.schema
        public["preview"] = (record.profile or {}).get("preview")
    return public


def model_version(record: ModelVersionRecord) -> dict[str, Any]:
    """The version as the HTTP API shows it (no server path)."""
    return {
        "version": record.version,
        "training_job_id": record.training_job_id,
        "architecture": record.architecture,
        "metrics": record.metrics,
        "signature": record.signature,
        "lineage": record.lineage,
        "created_at": iso(record.created_at),
    }


def model(record: ModelRecord) -> dict[str, Any]:
    """The model as the HTTP API shows it, with its versions oldest first."""
    return {
        "id": record.id,
        "name": record.name,
        "created_at": iso(record.created_at),
        "latest_version": record.versions[-1].version if record.versions else None,
        "aliases": dict(sorted(record.aliases.items())),
        "versions": [model_version(v) for v in record.versions],
    }
