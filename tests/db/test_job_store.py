"""The job store's state machine on SQLite and Postgres."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from db.database import Database
from db.jobs import ModelVersionDraft, NewJob
from db.models import Job, ModelVersion, utcnow
from db.session import session_scope
from tensorq.core.errors import Conflict, NotFound, OutOfRange


def _tenant(db: Database, name: str = "acme") -> str:
    return db.keys.ensure_tenant(name)


def _submit(db: Database, tenant: str, **kw: object) -> str:
    return db.jobs.submit(NewJob(tenant_id=tenant, type="train", spec={"epochs": 1}, **kw)).job.id


def _draft() -> ModelVersionDraft:
    return ModelVersionDraft("m", "/models/m.keras", "mlp", {"accuracy": 0.9}, {"input_shape": [4]})


def test_happy_path_records_each_state_as_an_event(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant)
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    assert claim.job.status == "running"
    assert claim.job.attempts == 1
    assert db.jobs.report_progress(job_id, claim.lease_token, {"epoch": 1, "epochs": 1})
    assert db.jobs.finish(job_id, claim.lease_token, {"metrics": {}}, _draft())
    job = db.jobs.get(tenant, job_id)
    assert job.status == "succeeded"
    assert job.result["version"] == 1
    assert job.finished_at is not None
    kinds = [(e.kind, e.from_status, e.to_status) for e in db.jobs.events(tenant, job_id)]
    assert kinds == [
        ("state", None, "queued"),
        ("state", "queued", "running"),
        ("progress", None, None),
        ("state", "running", "succeeded"),
    ]


def test_a_second_claim_finds_the_job_taken(db: Database) -> None:
    job_id = _submit(db, _tenant(db))
    assert db.jobs.claim(job_id, "w1") is not None
    assert db.jobs.claim(job_id, "w2") is None


def test_concurrent_claims_have_exactly_one_winner(db: Database) -> None:
    job_id = _submit(db, _tenant(db))
    results: list[object] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait()
        results.append(db.jobs.claim(job_id, threading.current_thread().name))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert db.jobs.get_any(job_id).attempts == 1


def test_writes_under_a_stale_lease_token_are_refused(db: Database) -> None:
    job_id = _submit(db, _tenant(db))
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    assert not db.jobs.finish(job_id, "not-the-token", {})
    assert not db.jobs.report_progress(job_id, "not-the-token", {"epoch": 1})
    assert not db.jobs.heartbeat(job_id, "not-the-token")
    assert db.jobs.get_any(job_id).status == "running"


def test_finish_under_a_lost_lease_registers_no_model(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant)
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    assert not db.jobs.finish(job_id, "stale", {}, _draft())
    assert db.models.list(tenant) == []


def test_at_most_one_model_version_per_training_job(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant)
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    assert db.jobs.finish(job_id, claim.lease_token, {}, _draft())
    version = db.jobs.versions_of_job(job_id)[0]
    with pytest.raises(IntegrityError), session_scope(db.factory) as session:
        session.add(
            ModelVersion(
                id="dup",
                model_id=version.model_id,
                version=2,
                training_job_id=job_id,
                path="/x",
                metrics={},
                signature={},
                created_at=utcnow(),
            )
        )


def test_cancel_queued_is_immediate_and_never_claimable(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant)
    assert db.jobs.cancel(tenant, job_id).status == "cancelled"
    assert db.jobs.claim(job_id, "w1") is None
    with pytest.raises(Conflict):
        db.jobs.cancel(tenant, job_id)


def test_cancel_running_asks_the_worker_to_stop(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant)
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    assert not db.jobs.cancel_requested(job_id)
    job = db.jobs.cancel(tenant, job_id)
    assert job.status == "running"
    assert job.cancel_requested
    assert db.jobs.cancel_requested(job_id)
    assert db.jobs.mark_cancelled(job_id, claim.lease_token)
    assert db.jobs.get(tenant, job_id).status == "cancelled"


def test_cancel_of_another_tenants_job_is_not_found(db: Database) -> None:
    job_id = _submit(db, _tenant(db))
    with pytest.raises(NotFound):
        db.jobs.cancel(_tenant(db, "globex"), job_id)
    with pytest.raises(NotFound):
        db.jobs.get(_tenant(db, "globex"), job_id)


def _expire(db: Database, job_id: str) -> None:
    with session_scope(db.factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))


def test_expired_leases_requeue_then_fail_with_worker_lost(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant, max_attempts=2)
    first = db.jobs.claim(job_id, "w1")
    assert first is not None
    _expire(db, job_id)
    assert db.jobs.requeue_expired().requeued == [job_id]
    assert not db.jobs.heartbeat(job_id, first.lease_token)
    second = db.jobs.claim(job_id, "w2")
    assert second is not None
    assert second.job.attempts == 2
    _expire(db, job_id)
    assert db.jobs.requeue_expired().failed == [job_id]
    job = db.jobs.get(tenant, job_id)
    assert job.status == "failed"
    assert job.error["code"] == "worker_lost"


def _renewed(db: Database, job_id: str, seconds_ago: float) -> None:
    """The job's lease as its worker's last renewal, ``seconds_ago``, left it."""
    expires = utcnow() + timedelta(seconds=db.jobs.lease_s - seconds_ago)
    with session_scope(db.factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=expires))


def test_a_gone_worker_s_running_jobs_requeue_before_their_lease_then_fail_with_worker_lost(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant, max_attempts=2)
    other = _submit(db, tenant)
    first = db.jobs.claim(job_id, "host:1")
    assert first is not None
    assert db.jobs.claim(other, "host:2") is not None
    # Renewed 2 s ago: its worker may still be alive, whatever the registry says.
    assert db.jobs.requeue_abandoned({"host:1"}, idle_s=5.0).requeued == []
    _renewed(db, job_id, 10.0)
    _renewed(db, other, 10.0)
    assert db.jobs.requeue_abandoned(set(), idle_s=5.0).requeued == []
    assert db.jobs.requeue_abandoned({"host:1"}, idle_s=5.0).requeued == [job_id]
    assert db.jobs.get(tenant, other).status == "running"  # another worker's job stays
    assert not db.jobs.heartbeat(job_id, first.lease_token)
    requeued = db.jobs.get(tenant, job_id)
    assert requeued.status == "queued"
    assert requeued.published_at is None  # for the reaper to publish at once
    assert db.jobs.events(tenant, job_id)[-1].data == {"reason": "worker_gone"}
    second = db.jobs.claim(job_id, "host:3")
    assert second is not None
    assert second.job.attempts == 2
    _renewed(db, job_id, 10.0)
    assert db.jobs.requeue_abandoned({"host:3"}, idle_s=5.0).failed == [job_id]
    job = db.jobs.get(tenant, job_id)
    assert job.status == "failed"
    assert job.error["code"] == "worker_lost"


def test_release_hands_back_without_counting_the_attempt(db: Database) -> None:
    job_id = _submit(db, _tenant(db))
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    assert db.jobs.release(job_id, claim.lease_token, "shutdown")
    job = db.jobs.get_any(job_id)
    assert job.status == "queued"
    assert job.attempts == 0


def test_unpublished_jobs_are_found_for_the_outbox(db: Database) -> None:
    tenant = _tenant(db)
    published = _submit(db, tenant)
    db.jobs.mark_published(published)
    lost = _submit(db, tenant)
    assert [j.id for j in db.jobs.unpublished(older_than_s=60, settle_s=0)] == [lost]


def test_idempotency_key_returns_the_same_job_or_422(db: Database) -> None:
    tenant = _tenant(db)
    first = db.jobs.submit(NewJob(tenant, "train", {"a": 1}, idempotency_key="k1", request_hash="h1"))
    again = db.jobs.submit(NewJob(tenant, "train", {"a": 1}, idempotency_key="k1", request_hash="h1"))
    assert first.created
    assert not again.created
    assert again.job.id == first.job.id
    with pytest.raises(OutOfRange):
        db.jobs.submit(NewJob(tenant, "train", {"a": 2}, idempotency_key="k1", request_hash="h2"))
    other = db.jobs.submit(NewJob(_tenant(db, "globex"), "train", {"a": 1}, idempotency_key="k1", request_hash="h1"))
    assert other.created


def test_list_is_newest_first_filtered_and_paginated(db: Database) -> None:
    tenant = _tenant(db)
    ids = [_submit(db, tenant) for _ in range(5)]
    db.jobs.cancel(tenant, ids[0])
    _submit(db, _tenant(db, "globex"))
    page, cursor = db.jobs.list(tenant, limit=2)
    seen = [j.id for j in page]
    while cursor:
        page, cursor = db.jobs.list(tenant, limit=2, cursor=cursor)
        seen += [j.id for j in page]
    assert seen == list(reversed(ids))
    cancelled, _ = db.jobs.list(tenant, status="cancelled")
    assert [j.id for j in cancelled] == [ids[0]]


def test_api_keys_hash_revoke_and_scope(db: Database) -> None:
    from tensorq.core.errors import Unauthorized

    key = db.keys.create("acme", read_only=True)
    principal = db.keys.authenticate(key)
    assert principal.read_only
    listed = db.keys.list()
    assert [k.id for k in listed] == [principal.key_id]
    assert listed[0].last_used_at is not None
    with pytest.raises(Unauthorized):
        db.keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    db.keys.revoke(principal.key_id)
    with pytest.raises(Unauthorized):
        db.keys.authenticate(key)


def test_an_expired_lease_with_a_cancel_request_ends_cancelled(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant)
    assert db.jobs.claim(job_id, "w1") is not None
    db.jobs.cancel(tenant, job_id)
    _expire(db, job_id)
    assert db.jobs.requeue_expired().cancelled == [job_id]
    assert db.jobs.get(tenant, job_id).status == "cancelled"


def test_an_expired_lease_past_its_timeout_fails_with_timeout(db: Database) -> None:
    tenant = _tenant(db)
    job_id = _submit(db, tenant, timeout_s=1)
    assert db.jobs.claim(job_id, "w1") is not None
    with session_scope(db.factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(started_at=utcnow() - timedelta(seconds=5)))
    _expire(db, job_id)
    assert db.jobs.requeue_expired().failed == [job_id]
    assert db.jobs.get(tenant, job_id).error["code"] == "timeout"


def test_a_key_last_used_minutes_ago_authenticates_and_is_touched(db: Database) -> None:
    from db.keys import split_key
    from db.models import ApiKey

    key = db.keys.create("acme")
    db.keys.authenticate(key)
    key_id, _ = split_key(key)
    stale = utcnow() - timedelta(minutes=2)
    with session_scope(db.factory) as session:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=stale))
    db.keys.cache.forget_key(key_id)  # as after auth_cache_s: the key is read (and touched) again
    principal = db.keys.authenticate(key)
    assert principal.tenant_name == "acme"
    (listed,) = db.keys.list()
    assert datetime.fromisoformat(listed.last_used_at) > stale
