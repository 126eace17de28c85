"""A job's log: the lines its worker wrote while running it, paged by ``after``, long-polled with ``wait``."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from api import responses
from api.openapi import operation, query
from api.services import principal, services
from db.joblogs import LogPage
from db.records import iso
from tensorq.core.errors import InvalidRequest, OutOfRange

bp = Blueprint("logs", __name__)
MAX_LIMIT = 1000
POLL_S = 0.25


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise OutOfRange(f"{name} must be between {low} and {high}")
    return value


def _wait_arg() -> float:
    """``wait=N`` seconds, or ``follow=true`` for the longest wait the API honours."""
    settings = services().settings
    if request.args.get("follow", "").lower() in ("1", "true", "yes"):
        return settings.max_wait_s
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise InvalidRequest("wait must be a number of seconds") from None
    if not 0 <= wait <= 3600:
        raise OutOfRange("wait must be between 0 and 3600 seconds")
    return min(wait, settings.max_wait_s)


@bp.get("/jobs/<job_id>/logs")
@operation(
    summary="A job's log lines, oldest first; with wait=N (or follow=true), answered when new lines come",
    responses={200: responses.LogPage},
    errors=(400, 404, 422, 429),
    query=[
        query("after", {"type": "integer", "minimum": 0}, "only lines with seq above this (next_after of a page)"),
        query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size (500)"),
        query("wait", {"type": "number", "minimum": 0, "maximum": 3600}, "seconds to wait for a new line"),
        query("follow", {"type": "boolean"}, "wait as long as the API allows for a new line"),
    ],
)
def job_logs(job_id: str):
    """The job's lines with ``seq > after``; with a wait, held until one comes or the job finishes."""
    after = _int_arg("after", 0, 0, 2**62)
    limit = _int_arg("limit", 500, 1, MAX_LIMIT)
    wait_s = _wait_arg()
    deadline = time.monotonic() + wait_s
    store, tenant = services().db.logs, principal().tenant_id
    page = store.page(tenant, job_id, after=after, limit=limit)
    if page.lines or page.finished:
        return jsonify(_public(page, after))
    with services().wait_slots.hold(tenant, wait_s):
        while not page.lines and not page.finished and time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0)))
            page = store.page(tenant, job_id, after=after, limit=limit)
    return jsonify(_public(page, after))


def _public(page: LogPage, after: int) -> dict:
    return {
        "lines": [
            {
                "seq": line.seq,
                "time": iso(line.created_at),
                "attempt": line.attempt,
                "level": line.level,
                "logger": line.logger,
                "message": line.message,
            }
            for line in page.lines
        ],
        "next_after": page.lines[-1].seq if page.lines else after,
        "finished": page.finished,
    }
