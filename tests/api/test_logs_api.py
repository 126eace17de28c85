"""``GET /v1/jobs/{id}/logs``: paged by seq, long-polled, the tenant's own jobs only."""

from __future__ import annotations

import threading
import time

from db.database import Database
from db.joblogs import LogLine
from db.models import utcnow

TRAIN = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2}}


def _lines(*messages: str) -> list[LogLine]:
    return [LogLine(1, "INFO", "worker.runner", m, utcnow()) for m in messages]


def test_lines_page_by_seq(client, auth, db: Database) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    db.logs.append(job_id, _lines("one", "two", "three"))
    first = client.get(f"/v1/jobs/{job_id}/logs?limit=2", headers=auth).get_json()
    assert [line["message"] for line in first["lines"]] == ["one", "two"]
    assert first["finished"] is False
    assert set(first["lines"][0]) == {"seq", "time", "attempt", "level", "logger", "message"}
    rest = client.get(f"/v1/jobs/{job_id}/logs?after={first['next_after']}", headers=auth).get_json()
    assert [line["message"] for line in rest["lines"]] == ["three"]
    empty = client.get(f"/v1/jobs/{job_id}/logs?after={rest['next_after']}", headers=auth).get_json()
    assert empty == {"lines": [], "next_after": rest["next_after"], "finished": False}


def test_another_tenant_gets_404_and_bad_arguments_get_400_or_422(client, auth, other_auth, db) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    db.logs.append(job_id, _lines("secret"))
    theirs = client.get(f"/v1/jobs/{job_id}/logs", headers=other_auth)
    assert theirs.status_code == 404
    assert "secret" not in theirs.get_data(as_text=True)
    assert client.get(f"/v1/jobs/{job_id}/logs").status_code == 401
    assert client.get(f"/v1/jobs/{job_id}/logs?after=x", headers=auth).status_code == 400
    assert client.get(f"/v1/jobs/{job_id}/logs?limit=0", headers=auth).status_code == 422
    assert client.get(f"/v1/jobs/{job_id}/logs?wait=-1", headers=auth).status_code == 422


def test_a_long_poll_answers_when_a_line_comes_or_the_job_ends(client, auth, db) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    timer = threading.Timer(0.5, lambda: db.logs.append(job_id, _lines("late")))
    timer.start()
    started = time.monotonic()
    page = client.get(f"/v1/jobs/{job_id}/logs?wait=10", headers=auth).get_json()
    assert [line["message"] for line in page["lines"]] == ["late"]
    assert time.monotonic() - started < 5
    client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    started = time.monotonic()
    done = client.get(f"/v1/jobs/{job_id}/logs?follow=true&after={page['next_after']}", headers=auth).get_json()
    assert done["lines"] == []
    assert done["finished"] is True
    assert time.monotonic() - started < 2
