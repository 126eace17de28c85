"""Workers and queues in view: /v1/workers, /v1/queues, waiting_reason on queued jobs, and /metrics from SQL."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import update

from api.workers import SERVED_CACHE_S
from db.database import Database
from db.models import Job, utcnow
from db.session import session_scope
from db.workers import WorkerInfo

TRAIN = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2}}


def _worker(db: Database, name: str, queues: list[str]) -> None:
    db.workers.register(WorkerInfo(name, "tensorq-cpu@h", "h", 7, queues, "0.1.0", None))


def _queued_for(db: Database, job_id: str, seconds: float) -> None:
    with session_scope(db.factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(created_at=utcnow() - timedelta(seconds=seconds)))


def test_workers_show_no_other_tenants_job(client, auth, other_auth, db: Database) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    _worker(db, "tensorq-cpu@h:7", ["train", "predict"])
    db.workers.heartbeat("tensorq-cpu@h:7", job_id)
    ours = client.get("/v1/workers", headers=auth).get_json()["workers"]
    assert len(ours) == 1
    assert ours[0]["current_job"] == job_id
    assert ours[0]["busy"] is True
    assert {k: ours[0][k] for k in ("name", "host", "queues", "version", "gpu")} == {
        "name": "tensorq-cpu@h:7",
        "host": "h",
        "queues": ["train", "predict"],
        "version": "0.1.0",
        "gpu": None,
    }
    theirs = client.get("/v1/workers", headers=other_auth).get_json()["workers"]
    assert theirs[0]["busy"] is True
    assert theirs[0]["current_job"] is None
    assert job_id not in client.get("/v1/workers", headers=other_auth).get_data(as_text=True)
    assert client.get("/v1/workers").status_code == 401
    assert client.get("/v1/queues").status_code == 401


def test_queues_count_every_tenant_together(client, auth, other_auth, db: Database) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/jobs", json=TRAIN, headers=auth)
    client.post("/v1/jobs", json=TRAIN, headers=other_auth)
    queues = {q["name"]: q for q in client.get("/v1/queues", headers=auth).get_json()["queues"]}
    assert set(queues) == {"train", "predict", "explain"}
    assert queues["train"]["depth"] == 2
    assert queues["train"]["live_workers"] == 0
    assert queues["train"]["oldest_queued_age_s"] >= 0
    assert queues["predict"]["oldest_queued_age_s"] is None


def test_a_job_waiting_on_a_queue_no_worker_serves_says_so(client, auth, db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["waiting_reason"] is None  # just queued
    _queued_for(db, job_id, settings.worker_stale_s + 5)
    reason = "no live worker serves queue 'train'"
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["waiting_reason"] == reason
    assert client.get("/v1/jobs", headers=auth).get_json()["jobs"][0]["waiting_reason"] == reason
    _worker(db, "w:1", ["predict"])
    time.sleep(SERVED_CACHE_S)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["waiting_reason"] == reason
    _worker(db, "w:2", ["train"])
    time.sleep(SERVED_CACHE_S)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["waiting_reason"] is None


def test_metrics_report_durations_queues_and_workers_from_sql(client, auth, db: Database) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    client.post("/v1/jobs", json=TRAIN, headers=auth)
    claim = db.jobs.claim(job_id, "w:1")
    assert claim is not None
    with session_scope(db.factory) as session:  # as if it had started 2 s ago
        session.execute(update(Job).where(Job.id == job_id).values(started_at=utcnow() - timedelta(seconds=2)))
    assert db.jobs.finish(job_id, claim.lease_token, {})  # the totals /metrics reads are kept up here
    _worker(db, "w:1", ["train"])
    text = client.get("/metrics").get_data(as_text=True)
    assert 'tensorq_job_duration_seconds_bucket{le="1",outcome="succeeded",type="train"} 0.0' in text
    assert 'tensorq_job_duration_seconds_bucket{le="5",outcome="succeeded",type="train"} 1.0' in text
    assert 'tensorq_job_duration_seconds_count{outcome="succeeded",type="train"} 1.0' in text
    assert 'tensorq_queue_depth{queue="train"} 1.0' in text
    assert 'tensorq_queue_live_workers{queue="train"} 1.0' in text
    assert 'tensorq_queue_oldest_age_seconds{queue="train"}' in text
    assert "tensorq_workers_live 1.0" in text
