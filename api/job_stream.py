"""Server-Sent Events of one job (``GET /v1/jobs/{id}`` with ``Accept: text/event-stream``): the job as it is,
then once more at each committed change, until it has finished or the stream has lasted ``event_stream_s``.

Each event is ``event: job``, ``id: <revision>`` and the job's JSON (the same shape as ``GET /v1/jobs/{id}``) in
``data``. A comment line every ``HEARTBEAT_S`` keeps proxies from closing a quiet stream. A stream holds one of
the tenant's wait slots, like a long-poll (429 ``too_many_waits`` before it starts when none is free).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack

from flask import Response, current_app, request, stream_with_context

from api.longpoll import next_change, watching
from api.services import services
from api.workers import public_job
from db.changes import ChangeListener, Watch
from db.jobs import JobStore
from db.records import JobRecord

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
HEARTBEAT_S = 15.0
RETRY_MS = 1000  # how soon a client's EventSource reconnects after the stream ends


def wants_events() -> bool:
    """Whether the request asks for an event stream rather than JSON (``Accept: text/event-stream``)."""
    return request.accept_mimetypes.best_match(["application/json", EVENT_STREAM]) == EVENT_STREAM


def job_event_stream(tenant_id: str, job_id: str) -> Response:
    """The tenant's job as an event stream; NotFound (404) and QuotaExceeded (429) come before it starts."""
    svc = services()
    held = ExitStack()
    try:
        held.enter_context(svc.wait_slots.hold(tenant_id, svc.settings.event_stream_s))
        watch = held.enter_context(watching(svc.changes, job_id))  # before the first read: no change is missed
        job = svc.db.jobs.get(tenant_id, job_id)
    except BaseException:
        held.close()
        raise
    deadline = time.monotonic() + svc.settings.event_stream_s
    events = _events(svc.db.jobs, svc.changes, watch, job, deadline)
    response = Response(stream_with_context(events), mimetype=EVENT_STREAM)
    response.call_on_close(held.close)  # the slot and the watch go when the server closes the stream
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _events(
    store: JobStore, changes: ChangeListener | None, watch: Watch, job: JobRecord, deadline: float
) -> Iterator[str]:
    yield f"retry: {RETRY_MS}\n\n" + _frame(job)
    while not job.terminal and (left := deadline - time.monotonic()) > 0:
        try:
            latest = next_change(store, changes, watch, job, time.monotonic() + min(HEARTBEAT_S, left))
        except Exception:  # noqa: BLE001 - a database blip ends the stream; the client reconnects
            log.warning("job %s: its event stream ends on a failed read", job.id, exc_info=True)
            return
        if latest.revision == job.revision:
            yield ": still\n\n"
            continue
        job = latest
        yield _frame(job)


def _frame(job: JobRecord) -> str:
    """One ``job`` event: its revision as the id, its JSON on one ``data`` line."""
    return f"event: job\nid: {job.revision}\ndata: {current_app.json.dumps(public_job(job))}\n\n"
