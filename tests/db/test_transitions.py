"""``db/transitions.py`` on each database: ``transition_many`` beside ``transition``, and ``end_running``, the one
place a worker's outcome is written, whether for one job (``JobStore``) or a micro-batch (``BatchStore``)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from db.database import Database
from db.jobs import ModelVersionDraft, NewJob
from db.models import JobTotal, WebhookDelivery, utcnow
from db.session import write_scope
from db.transitions import Ending, end_running, leased, transition_many


def _queued(db: Database, tenant: str, **options: object) -> str:
    return db.jobs.submit(NewJob(tenant, "predict", {}, **options)).job.id  # type: ignore[arg-type]


def _states(db: Database, tenant: str, job_id: str) -> list[tuple[str | None, str | None, object]]:
    return [(e.from_status, e.to_status, e.data) for e in db.jobs.events(tenant, job_id) if e.kind == "state"]


def test_transition_many_moves_the_jobs_still_expected_in_one_statement_each_with_its_event(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    ids = [_queued(db, acme) for _ in range(3)]
    db.jobs.cancel(acme, ids[1])
    before = db.jobs.get_any(ids[0]).revision
    with write_scope(db.factory) as conn:
        moved = transition_many(conn, list(reversed(ids)), "queued", "running", {"worker": "w"}, event_data={"n": 1})
    assert [job.id for job in moved] == [ids[2], ids[0]]  # in the order given; the cancelled one stays
    assert [(job.status, job.revision) for job in moved] == [("running", before + 1)] * 2
    assert _states(db, acme, ids[0])[-1] == ("queued", "running", {"n": 1})
    assert db.jobs.get_any(ids[1]).status == "cancelled"
    with write_scope(db.factory) as conn, pytest.raises(ValueError, match="illegal transition"):
        transition_many(conn, ids, "succeeded", "running", {})
    with write_scope(db.factory) as conn, pytest.raises(ValueError, match="cannot end"):
        end_running(conn, "token", {ids[0]: Ending("queued")})


def _claim_together(db: Database, ids: list[str]) -> str:
    """Claim ``ids`` under one lease token (as a micro-batch's claim does); the token."""
    token = str(uuid.uuid4())
    with write_scope(db.factory) as conn:
        moved = transition_many(conn, ids, "queued", "running", leased(token, "w", 30.0, utcnow()))
    assert len(moved) == len(ids)
    return token


def test_one_job_and_a_batch_end_alike_events_follow_ups_and_totals(db: Database) -> None:
    """The same endings written one job at a time and as one batch leave the same rows behind."""
    acme = db.keys.ensure_tenant("acme")
    hook = {"callback_url": "https://example.com/hook", "max_retries": 1}
    timeout = {"code": "timeout", "message": "job exceeded its timeout_s of 1"}
    endings = [Ending("succeeded", result={"ok": 1}), Ending("failed", error=timeout), Ending("cancelled")]
    alone = [_queued(db, acme, **hook) for _ in endings]
    for job_id, ending in zip(alone, endings, strict=True):
        token = _claim_together(db, [job_id])
        with write_scope(db.factory) as conn:
            assert list(end_running(conn, token, {job_id: ending})) == [job_id]
    batched = [_queued(db, acme, **hook) for _ in endings]
    token = _claim_together(db, batched)
    with write_scope(db.factory) as conn:
        assert list(end_running(conn, token, dict(zip(batched, endings, strict=True)))) == batched
    for one, many, ending in zip(alone, batched, endings, strict=True):
        (_, end_one, data_one), (_, end_many, data_many) = _states(db, acme, one)[-1], _states(db, acme, many)[-1]
        assert end_one == end_many == ending.status
        assert isinstance(data_one, dict)
        assert isinstance(data_many, dict)
        assert sorted(data_one) == sorted(data_many)
        assert "delivery" in data_one
        assert data_one.get("code") == data_many.get("code") == (ending.error or {}).get("code")
    retried = [_states(db, acme, job_id)[-1][2]["retry_job_id"] for job_id in (alone[1], batched[1])]  # type: ignore[index]
    assert [db.jobs.get_any(job_id).retry_of for job_id in retried] == [alone[1], batched[1]]
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one() == 6
        totals = dict(conn.execute(select(JobTotal.status, func.sum(JobTotal.jobs)).group_by(JobTotal.status)).all())
    assert totals == {"succeeded": 2, "failed": 2, "cancelled": 2}


def test_a_trained_model_is_registered_before_the_notification_is_queued(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(acme, "train", {}, callback_url="https://example.com/hook")).job.id
    token = _claim_together(db, [job_id])
    draft = ModelVersionDraft("m", "/m.keras", "mlp", {}, {"task": "classify"})
    assert db.jobs.finish(job_id, token, {"loss": 0.1}, draft)
    job = db.jobs.get_any(job_id)
    assert job.result is not None
    assert job.result["version"] == 1
    assert "delivery" in _states(db, acme, job_id)[-1][2]  # type: ignore[operator]
    with db.engine.connect() as conn:
        record = json.loads(conn.execute(select(WebhookDelivery.record)).scalar_one())
    assert record["result"]["version"] == 1
