"""``GET /v1/jobs/{id}`` with ``Accept: text/event-stream``: the job now and at each committed change, woken by the
change signals on the real test Redis, until it has finished; it holds a wait slot like a long-poll."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from api.present import JOB_KEYS
from api.wait_slots import WaitSlots
from db.database import Database
from db.jobs import NewJob

STREAM = {"Accept": "text/event-stream"}


def _frames(response) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The stream's events (comments and the retry hint left out), each as its fields, read as they come."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
            if "data" in fields:
                yield fields


def _job(db: Database) -> str:
    tenant = db.keys.ensure_tenant("acme")
    return db.jobs.submit(NewJob(tenant, "predict", {"model": "m", "inputs": [[0.0]]})).job.id


@pytest.mark.redis
def test_a_stream_sends_the_job_then_each_change_until_it_has_finished(app, client, auth, db) -> None:
    job_id = _job(db)
    response = client.get(f"/v1/jobs/{job_id}", headers={**auth, **STREAM}, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    frames = _frames(response)
    first = next(frames)
    assert first["event"] == "job"
    queued = json.loads(first["data"])
    assert (queued["status"], list(queued)) == ("queued", list(JOB_KEYS))
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    running = next(frames)
    assert json.loads(running["data"])["status"] == "running"
    assert db.jobs.report_progress(job_id, claim.lease_token, {"done": 1})
    assert json.loads(next(frames)["data"])["progress"] == {"done": 1}
    assert db.jobs.finish(job_id, claim.lease_token, {"ok": True})
    last = next(frames)
    assert json.loads(last["data"])["status"] == "succeeded"
    assert next(frames, None) is None  # a finished job ends its stream
    revisions = [int(first["id"]), int(running["id"]), int(last["id"])]
    assert revisions == sorted(set(revisions))
    response.close()
    assert app.extensions["tensorq"].wait_slots.held() == 0


@pytest.mark.redis
def test_a_finished_jobs_stream_is_one_event(app, client, auth, db) -> None:
    job_id = _job(db)
    db.jobs.cancel(db.keys.ensure_tenant("acme"), job_id)
    response = client.get(f"/v1/jobs/{job_id}", headers={**auth, **STREAM}, buffered=False)
    assert [json.loads(f["data"])["status"] for f in _frames(response)] == ["cancelled"]
    response.close()
    assert app.extensions["tensorq"].wait_slots.held() == 0


def test_another_tenants_job_is_404_before_any_stream(app, client, other_auth, db) -> None:
    response = client.get(f"/v1/jobs/{_job(db)}", headers={**other_auth, **STREAM})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert app.extensions["tensorq"].wait_slots.held() == 0


def test_a_stream_holds_a_wait_slot_and_is_refused_when_none_is_free(app, client, auth, db) -> None:
    app.extensions["tensorq"].wait_slots = slots = WaitSlots(per_tenant=1, total=4)
    job_id = _job(db)
    held = client.get(f"/v1/jobs/{job_id}", headers={**auth, **STREAM}, buffered=False)
    assert held.status_code == 200
    assert slots.held() == 1
    refused = client.get(f"/v1/jobs/{job_id}", headers={**auth, **STREAM})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_waits"
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["status"] == "queued"  # JSON holds none
    held.close()
    assert slots.held() == 0
