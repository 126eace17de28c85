"""A new job: what a submission asks for, and the jobs-table row it becomes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
    callback_url: str | None = None
    max_retries: int = 0
    retry_number: int = 0


def new_row(new: NewJob, now: datetime, publishing: bool) -> dict[str, Any]:
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
        "callback_url": new.callback_url,
        "max_retries": new.max_retries,
        "retry_number": new.retry_number,
        "revision": 0,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "published_at": now if publishing else None,
    }
