"""Micro-batch claims and finishes (``db/batch_claim.py``) on each database: who is taken with whom, the running
quota over the batch, one transaction per claim and per finish, and a cancel that stops one job of a batch only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from db.batch_claim import BatchClaim, BatchKey, Outcome
from db.database import Database
from db.joblogs import LogLine
from db.jobs import ModelVersionDraft, NewJob
from db.models import JobLog, utcnow
from worker.batch import batchable, shares


@contextmanager
def _commits(db: Database) -> Iterator[list[int]]:
    """Count the commits on ``db``'s engine while the block runs."""
    seen: list[int] = []

    def count(_conn: object) -> None:
        seen.append(1)

    event.listen(db.engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "commit", count)


def _check(job_type: str, spec: dict) -> BatchKey | None:
    return batchable(job_type, spec, max_rows=100)


def _model(db: Database, tenant: str, name: str, kind: str = "tabular", task: str = "classify") -> str:
    draft = ModelVersionDraft(name, f"/{name}.keras", "mlp", {}, {"task": task, "kind": kind})
    return db.models.register(tenant, draft).model_id


def _predict(db: Database, tenant: str, ref: str, **spec: object) -> str:
    return db.jobs.submit(NewJob(tenant, "predict", {"model": ref, "inputs": [[1.0, 2.0]], **spec})).job.id


def _explain(db: Database, tenant: str, ref: str, **spec: object) -> str:
    return db.jobs.submit(NewJob(tenant, "explain", {"model": ref, "inputs": [[1.0, 2.0]], **spec})).job.id


def _claim(db: Database, job_id: str, most: int = 32, limit: int = 1000) -> BatchClaim:
    store = db.batches
    claim = store.claim(job_id, "w", max_jobs=most, batchable=_check, running_limit=lambda _: limit, shares=shares)
    assert isinstance(claim, BatchClaim)
    return claim


def test_a_claim_takes_the_queued_predicts_of_the_same_model_version_in_one_transaction(db: Database) -> None:
    acme, other = db.keys.ensure_tenant("acme"), db.keys.ensure_tenant("other")
    model_id = _model(db, acme, "iris")
    _model(db, acme, "wine")
    _model(db, other, "iris")
    first = _predict(db, acme, "iris")
    same = [_predict(db, acme, "iris:1"), _predict(db, acme, model_id), _predict(db, acme, "iris")]
    apart = [
        _predict(db, acme, "wine"),  # another model
        _predict(db, other, "iris"),  # another tenant's model of the same name
        _predict(db, acme, "missing"),  # resolves to nothing: runs alone, fails alone
        db.jobs.submit(NewJob(acme, "predict", {"model": "iris", "dataset": "builtin:iris"})).job.id,
        db.jobs.submit(NewJob(acme, "train", {"model": "iris", "inputs": [[1.0]]})).job.id,
    ]
    cancelled = _predict(db, acme, "iris")
    db.jobs.cancel(acme, cancelled)
    with _commits(db) as commits:
        claim = _claim(db, first)
    assert [j.id for j in claim.jobs][0] == first
    assert {j.id for j in claim.jobs} == {first, *same}
    assert claim.version is not None
    assert claim.version.model_id == model_id
    assert len(commits) == 1
    for job in claim.jobs:
        current = db.jobs.get_any(job.id)
        assert (current.status, current.attempts) == ("running", 1)
        claimed = [e for e in db.jobs.events(acme, job.id) if e.to_status == "running"]
        assert claimed[0].data == {"worker": "w", "batch_size": 4}
    for job_id in apart:
        assert db.jobs.get_any(job_id).status == "queued"
    assert db.jobs.get_any(cancelled).status == "cancelled"
    # A mate's own message, delivered later, finds its job taken.
    assert db.batches.claim(same[0], "w2", max_jobs=32, batchable=_check) is None
    assert db.jobs.claim(same[0], "w2") is None


def test_explain_jobs_are_taken_with_those_of_the_same_version_and_settings_only(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    _model(db, acme, "iris")
    _model(db, acme, "digits", kind="image")
    first = _explain(db, acme, "iris", steps=8)
    same = [_explain(db, acme, "iris:1", steps=8, method="integrated_gradients"), _explain(db, acme, "iris", steps=8)]
    apart = [
        _explain(db, acme, "iris", steps=16),  # other settings
        _explain(db, acme, "iris", steps=8, target=1),
        _explain(db, acme, "iris", steps=8, method="smoothgrad"),  # one random stream over all rows: alone
        _explain(db, acme, "iris", steps=8, baseline="mean"),  # the mean of the rows explained: alone
        _predict(db, acme, "iris"),  # another type
    ]
    claim = _claim(db, first)
    assert {j.id for j in claim.jobs} == {first, *same}
    assert claim.version is not None
    assert claim.settings
    for job_id in apart:
        assert db.jobs.get_any(job_id).status == "queued"
    later = _explain(db, acme, "iris", steps=8)
    more = db.batches.claim_more(claim, "w", room=8, batchable=_check)
    assert {j.id for j in more.jobs} == {first, *same, later}
    # An image model's explain jobs write heatmaps: the first runs alone, its mates stay queued.
    image = [_explain(db, acme, "digits") for _ in range(2)]
    alone = _claim(db, image[0])
    assert ([j.id for j in alone.jobs], alone.version) == ([image[0]], None)
    assert db.jobs.get_any(image[1]).status == "queued"


def test_predicts_of_a_recommender_or_a_vae_claim_no_mates(db: Database) -> None:
    """Their results are not one forward pass's outputs: each runs alone, the rest stay for other workers."""
    acme = db.keys.ensure_tenant("acme")
    for name, task in (("films", "recommend"), ("faces", "autoencode")):
        _model(db, acme, name, task=task)
        jobs = [_predict(db, acme, name) for _ in range(3)]
        claim = _claim(db, jobs[0])
        assert ([j.id for j in claim.jobs], claim.version) == ([jobs[0]], None)
        assert [db.jobs.get_any(job_id).status for job_id in jobs[1:]] == ["queued", "queued"]


def test_the_batch_stays_within_its_size_and_the_tenants_running_quota(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    _model(db, acme, "iris")
    ids = [_predict(db, acme, "iris") for _ in range(10)]
    assert len(_claim(db, ids[0], most=4).jobs) == 4
    assert len(_claim(db, ids[5], limit=7).jobs) == 3  # 4 already run: 3 places left under a quota of 7
    store = db.batches
    deferred = store.claim(ids[9], "w", max_jobs=32, batchable=_check, running_limit=lambda _: 7)
    assert not isinstance(deferred, BatchClaim)
    assert deferred is not None
    assert deferred.reason == "quota_running_jobs"


def test_claim_more_adds_jobs_that_arrived_during_the_wait_under_the_same_lease(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    _model(db, acme, "iris")
    claim = _claim(db, _predict(db, acme, "iris"))
    later = [_predict(db, acme, "iris") for _ in range(3)]
    more = db.batches.claim_more(claim, "w", room=2, batchable=_check)
    assert len(more.jobs) == 3
    assert {j.id for j in more.jobs[1:]} <= set(later)
    assert {db.jobs.get_any(j.id).status for j in more.jobs} == {"running"}


def test_a_finish_records_every_outcome_in_one_transaction_and_a_cancel_stops_only_its_job(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    _model(db, acme, "iris")
    ids = [_predict(db, acme, "iris") for _ in range(4)]
    claim = _claim(db, ids[0])
    db.jobs.cancel(acme, ids[1])  # asked while the batch runs
    line = LogLine(1, "INFO", "worker.batch", "one of a batch", utcnow())
    outcomes = {
        ids[0]: Outcome("succeeded", result={"rows": 1}, log=[line]),
        ids[1]: Outcome("succeeded", result={"rows": 1}, log=[line]),
        ids[2]: Outcome("failed", error={"code": "invalid_request", "message": "bad inputs"}, log=[line]),
        ids[3]: Outcome("cancelled"),
    }
    with _commits(db) as commits:
        ended = db.batches.finish(claim.lease_token, outcomes)
    assert len(commits) == 1
    assert ended == {ids[0]: "succeeded", ids[1]: "cancelled", ids[2]: "failed", ids[3]: "cancelled"}
    jobs = {job_id: db.jobs.get_any(job_id) for job_id in ids}
    assert jobs[ids[0]].result == {"rows": 1}
    assert jobs[ids[1]].result is None
    assert jobs[ids[2]].error == {"code": "invalid_request", "message": "bad inputs"}
    for job_id in ids:
        states = [(e.from_status, e.to_status) for e in db.jobs.events(acme, job_id) if e.kind == "state"]
        assert states == [(None, "queued"), ("queued", "running"), ("running", ended[job_id])]
    with db.engine.connect() as conn:
        logged = conn.execute(select(JobLog.job_id)).scalars().all()
    assert sorted(logged) == sorted([ids[0], ids[1], ids[2]])
    # Written once: a second finish under the same token changes nothing.
    assert set(db.batches.finish(claim.lease_token, outcomes).values()) == {"lease_lost"}


def test_a_job_taken_over_by_the_reaper_is_left_alone_by_the_finish(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    _model(db, acme, "iris")
    ids = [_predict(db, acme, "iris") for _ in range(2)]
    claim = _claim(db, ids[0])
    assert db.jobs.release(ids[1], claim.lease_token, "test")  # handed back meanwhile
    ended = db.batches.finish(claim.lease_token, {i: Outcome("succeeded", result={}) for i in ids})
    assert ended == {ids[0]: "succeeded", ids[1]: "lease_lost"}
    assert db.jobs.get_any(ids[1]).status == "queued"


def test_a_batch_finish_sets_off_each_jobs_webhook_and_retry_in_its_transaction(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    _model(db, acme, "iris")
    spec = {"model": "iris", "inputs": [[1.0, 2.0]]}
    hooked = db.jobs.submit(NewJob(acme, "predict", spec, callback_url="https://example.com/hook")).job.id
    retried = db.jobs.submit(NewJob(acme, "predict", spec, max_retries=1)).job.id
    claim = _claim(db, hooked)
    assert {j.id for j in claim.jobs} == {hooked, retried}
    timeout = {"code": "timeout", "message": "job exceeded its timeout_s of 1"}
    outcomes = {hooked: Outcome("succeeded", result={}), retried: Outcome("failed", error=timeout)}
    db.batches.finish(claim.lease_token, outcomes)
    ended = {job_id: [e for e in db.jobs.events(acme, job_id) if e.kind == "state"][-1] for job_id in outcomes}
    assert ended[hooked].data
    assert "delivery" in ended[hooked].data
    retry_id = ended[retried].data["retry_job_id"]
    again = db.jobs.get_any(retry_id)
    assert (again.status, again.retry_of, again.retry_number) == ("queued", retried, 1)


def test_a_cancel_during_a_claim_neither_deadlocks_nor_fails(db: Database) -> None:
    """A client cancels a job with a callback_url while a worker's claim of it holds the tenant's row: the
    cancel's notification row refers to the tenant (a key-share lock on Postgres), the claim then updates the
    job the cancel holds. The claim's tenant lock must not exclude key-share locks, or the two deadlock and
    one of them fails (the cancel as a 503)."""
    import threading

    acme = db.keys.ensure_tenant("acme")
    model_id = _model(db, acme, "iris")
    job_id = db.jobs.submit(
        NewJob(acme, "predict", {"model": model_id, "inputs": [[1.0, 2.0]]}, callback_url="http://127.0.0.1:9/h")
    ).job.id
    cancelled: list[object] = []

    def cancel() -> None:
        try:
            cancelled.append(db.jobs.cancel(acme, job_id).status)
        except Exception as exc:  # noqa: BLE001 - the test reports what the cancel raised
            cancelled.append(exc)

    canceller = threading.Thread(target=cancel)

    def batchable_while_cancelled(job_type: str, spec: dict) -> BatchKey | None:
        """Called inside the claim's transaction, after its tenant lock: the cancel runs now."""
        canceller.start()
        canceller.join(timeout=3)  # it finishes, or it waits on the claim's locks
        return _check(job_type, spec)

    claim = db.batches.claim(job_id, "w", max_jobs=8, batchable=batchable_while_cancelled, running_limit=lambda _: 100)
    canceller.join(timeout=10)
    assert cancelled == ["cancelled"]
    assert claim is None  # the job was cancelled before the claim's update reached it
    assert db.jobs.get_any(job_id).status == "cancelled"
    assert [d.event for d in db.webhooks.of_job(acme, job_id)] == ["job.cancelled"]

    # The one-job claim takes the same tenant lock: its running quota is counted under it.
    job_id = db.jobs.submit(NewJob(acme, "train", {"architecture": "mlp"}, callback_url="http://127.0.0.1:9/h")).job.id
    cancelled.clear()
    canceller = threading.Thread(target=cancel)

    def limit_while_cancelled(_tenant_name: str) -> int:
        canceller.start()
        canceller.join(timeout=3)
        return 100

    assert db.jobs.claim(job_id, "w", running_limit=limit_while_cancelled) is None
    canceller.join(timeout=10)
    assert cancelled == ["cancelled"]
