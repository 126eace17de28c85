"""A new job is built one way (``NewJob.from_submission``, ``NewJob.retry_of``) and inserted one way
(``insert_new``: the row, its tags and its first state event), on each supported database."""

from __future__ import annotations

from dataclasses import replace

from api.schemas import parse_submission
from db.database import Database
from db.followups import insert_retry
from db.newjob import NewJob, insert_new
from db.session import write_scope


def test_a_submission_becomes_a_new_job_with_its_options_and_the_default_attempts() -> None:
    body = {
        "type": "train",
        "spec": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2},
        "priority": 7,
        "timeout_s": 60,
        "name": "nightly",
        "tags": ["a", "b", "a"],
        "callback_url": "https://example.com/hook",
        "max_retries": 2,
    }
    submission, _ = parse_submission(body)
    new = NewJob.from_submission("t1", submission, default_max_attempts=4)
    assert new == NewJob(
        tenant_id="t1",
        type="train",
        spec=new.spec,
        priority=7,
        max_attempts=4,
        timeout_s=60,
        name="nightly",
        tags=("a", "b"),
        callback_url="https://example.com/hook",
        max_retries=2,
    )
    assert (new.spec["epochs"], new.spec["batch_size"]) == (2, 32)  # the validated spec, defaults filled in
    asked, _ = parse_submission({**body, "max_attempts": 9})
    assert NewJob.from_submission("t1", asked, default_max_attempts=4).max_attempts == 9


def test_a_retry_repeats_the_job_one_further_down_its_chain(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    first = NewJob(tenant, "train", {"epochs": 1}, priority=2, max_attempts=5, timeout_s=9, name="n", tags=("x",))
    old = db.jobs.submit(replace(first, callback_url="https://example.com/h", max_retries=3, idempotency_key="k")).job
    again = NewJob.retry_of(old)
    assert again == replace(
        first, callback_url="https://example.com/h", max_retries=3, retry_of_id=old.id, retry_number=1
    )
    assert NewJob.retry_of(replace(old, retry_number=1)).retry_number == 2


def test_insert_new_writes_rows_tags_and_first_events_in_the_callers_transaction(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    news = [NewJob(tenant, "train", {}, tags=("a", "b")), NewJob(tenant, "predict", {"model": "m"})]
    with write_scope(db.factory) as conn:
        rows = insert_new(conn, news, publishing=False, note={"reason": "test"})
    assert [r["type"] for r in rows] == ["train", "predict"]
    jobs = [db.jobs.get(tenant, r["id"]) for r in rows]
    assert [(j.status, j.tags, j.published_at) for j in jobs] == [("queued", ["a", "b"], None), ("queued", [], None)]
    assert [j.id for j in db.jobs.list(tenant, tag="b").jobs] == [rows[0]["id"]]
    for job in jobs:
        [event] = db.jobs.events(tenant, job.id)
        assert (event.kind, event.from_status, event.to_status, event.data) == (
            "state",
            None,
            "queued",
            {"reason": "test"},
        )
    with write_scope(db.factory) as conn:
        assert insert_new(conn, [], publishing=True) == []


def test_the_retry_policy_inserts_its_retry_the_same_way(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    old = db.jobs.submit(NewJob(tenant, "train", {}, tags=("a",), max_retries=2)).job
    with write_scope(db.factory) as conn:
        retry_id = insert_retry(conn, old)
    retry = db.jobs.get(tenant, retry_id)
    assert (retry.retry_of, retry.retry_number, retry.tags, retry.published_at) == (old.id, 1, ["a"], None)
    [event] = db.jobs.events(tenant, retry_id)
    assert event.data == {"reason": "retry_policy", "retry_of": old.id, "retry_number": 1}
