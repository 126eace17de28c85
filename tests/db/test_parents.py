"""Jobs made of jobs (``db/parents.py``) on each database: a parent's status and totals follow its children's
transitions, in their transactions; cancel cascades; a failed parent reruns only its failed children."""

from __future__ import annotations

from sqlalchemy import select, update

from db.database import Database
from db.jobs import NewJob
from db.models import Job
from db.records import JobRecord
from db.session import write_scope
from db.transitions import transition_many


def _graph(db: Database, tenant: str, children: int, **parent: object) -> tuple[JobRecord, list[JobRecord]]:
    news = [NewJob(tenant, "predict", {"n": i}) for i in range(children)]
    batch = db.jobs.submit_many(news, parent=NewJob(tenant, "group", {}, **parent))  # type: ignore[arg-type]
    assert batch.parent is not None
    return batch.parent, batch.jobs


def _run(db: Database, job_id: str, status: str = "succeeded") -> None:
    claim = db.jobs.claim(job_id, "w")
    assert claim is not None
    assert not isinstance(claim, type(None))
    token = claim.lease_token  # type: ignore[union-attr]
    if status == "succeeded":
        assert db.jobs.finish(job_id, token, {"n": 1})
    elif status == "failed":
        assert db.jobs.fail(job_id, token, {"code": "bad_input", "message": "no"})
    else:
        assert db.jobs.mark_cancelled(job_id, token)


def _states(db: Database, tenant: str, job_id: str) -> list[tuple[str | None, str | None]]:
    return [(e.from_status, e.to_status) for e in db.jobs.events(tenant, job_id) if e.kind == "state"]


def test_a_parent_runs_while_its_children_do_and_succeeds_when_all_succeed(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    parent, children = _graph(db, acme, 3)
    assert [child.parent_id for child in children] == [parent.id] * 3
    assert parent.status == "queued"
    assert parent.children is not None
    assert parent.children.public()["queued"] == 3
    assert db.jobs.claim(parent.id, "w") is None  # a parent is never claimed: only its children run
    _run(db, children[0].id)
    claim = db.jobs.claim(children[1].id, "w")
    got = db.jobs.get(acme, parent.id)
    assert got.status == "running"
    assert got.children is not None
    assert (got.children.queued, got.children.running, got.children.succeeded) == (1, 1, 1)
    assert got.progress == {"done": 1, "total": 3, "fraction": 0.3333}
    assert claim is not None
    db.jobs.finish(children[1].id, claim.lease_token, {})  # type: ignore[union-attr]
    _run(db, children[2].id)
    done = db.jobs.get(acme, parent.id)
    assert done.status == "succeeded"
    assert done.result == {"children": {**done.children.public(), "succeeded": 3}}  # type: ignore[union-attr]
    assert _states(db, acme, parent.id) == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    page = db.jobs.list(acme, parent=parent.id)
    assert sorted(job.id for job in page.jobs) == sorted(child.id for child in children)


def test_fail_fast_cancels_the_rest_and_the_parent_fails_once_they_all_end(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    parent, children = _graph(db, acme, 3)
    running = db.jobs.claim(children[1].id, "w")
    _run(db, children[0].id, "failed")
    assert db.jobs.get_any(children[2].id).status == "cancelled"  # waiting: cancelled at once
    assert db.jobs.get_any(children[1].id).cancel_requested  # running: asked to stop
    assert db.jobs.get(acme, parent.id).status == "running"
    assert running is not None
    db.jobs.mark_cancelled(children[1].id, running.lease_token)  # type: ignore[union-attr]
    failed = db.jobs.get(acme, parent.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["code"] == "children_failed"
    assert failed.children is not None
    assert (failed.children.failed, failed.children.cancelled) == (1, 2)


def test_max_failed_children_tolerates_that_many_failures(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    parent, children = _graph(db, acme, 3, max_failed_children=1)
    _run(db, children[0].id, "failed")
    assert db.jobs.get_any(children[1].id).status == "queued"
    _run(db, children[1].id)
    _run(db, children[2].id)
    assert db.jobs.get(acme, parent.id).status == "succeeded"
    parent, children = _graph(db, acme, 3, max_failed_children=1)
    _run(db, children[0].id, "failed")
    _run(db, children[1].id, "failed")
    assert db.jobs.get_any(children[2].id).status == "cancelled"
    assert db.jobs.get(acme, parent.id).status == "failed"


def test_cancel_of_a_parent_cascades_and_retry_reruns_only_the_failed_children(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    parent, children = _graph(db, acme, 3)
    _run(db, children[0].id)
    running = db.jobs.claim(children[1].id, "w")
    asked = db.jobs.cancel(acme, parent.id)
    assert asked.cancel_requested
    assert asked.status == "running"
    assert db.jobs.get_any(children[2].id).status == "cancelled"
    assert db.jobs.get_any(children[1].id).cancel_requested
    assert running is not None
    db.jobs.mark_cancelled(children[1].id, running.lease_token)  # type: ignore[union-attr]
    assert db.jobs.get(acme, parent.id).status == "cancelled"
    reopened, retries = db.jobs.retry_failed_children(acme, parent.id)
    assert reopened.status == "queued"
    assert not reopened.cancel_requested
    assert sorted(job.retry_of for job in retries) == sorted([children[1].id, children[2].id])  # type: ignore[type-var]
    assert {job.parent_id for job in retries} == {parent.id}
    assert reopened.children is not None
    assert reopened.children.public()["queued"] == 2
    for job in retries:
        _run(db, job.id)
    again = db.jobs.get(acme, parent.id)
    assert again.status == "succeeded"
    assert again.children is not None
    assert again.children.succeeded == 3


def test_a_queued_parent_cancelled_ends_cancelled_with_all_its_children(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    parent, children = _graph(db, acme, 2)
    assert db.jobs.cancel(acme, parent.id).status == "cancelled"
    assert {db.jobs.get_any(child.id).status for child in children} == {"cancelled"}
    assert _states(db, acme, parent.id) == [(None, "queued"), ("queued", "cancelled")]


def test_a_retried_child_takes_its_place_and_the_reaper_settles_a_parent_left_behind(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    news = [NewJob(acme, "predict", {}, max_retries=1), NewJob(acme, "predict", {})]
    batch = db.jobs.submit_many(news, parent=NewJob(acme, "group", {}))
    assert batch.parent is not None
    claim = db.jobs.claim(batch.jobs[0].id, "w")
    assert claim is not None
    db.jobs.fail(batch.jobs[0].id, claim.lease_token, {"code": "worker_lost", "message": "gone"})  # type: ignore[union-attr]
    [retry] = [job for job in db.jobs.list(acme, parent=batch.parent.id).jobs if job.retry_of]
    counts = db.jobs.get(acme, batch.parent.id).children
    assert counts is not None
    assert (counts.failed, counts.queued) == (0, 2)
    _run(db, retry.id)
    # A parent whose last child's move did not move it (as a crash between two writers would leave it).
    with write_scope(db.factory) as conn:
        conn.execute(update(Job).where(Job.id == batch.jobs[1].id).values(parent_id=None))
        transition_many(conn, [batch.jobs[1].id], "queued", "cancelled", {})
        conn.execute(update(Job).where(Job.id == batch.parent.id).values(children_cancelled=1))
    assert db.jobs.get(acme, batch.parent.id).status == "running"
    assert db.jobs.settle_parents() == [batch.parent.id]
    assert db.jobs.get(acme, batch.parent.id).status == "failed"
    with db.engine.connect() as conn:
        assert conn.execute(select(Job.status).where(Job.id == batch.parent.id)).scalar_one() == "failed"


def test_a_cancelled_tune_plans_no_more_trials_and_ends_with_those_it_made(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    tune = NewJob(acme, "tune", {"parallelism": 2}, children_total=5, max_failed_children=4)
    batch = db.jobs.submit_many([NewJob(acme, "train", {}), NewJob(acme, "train", {})], parent=tune)
    assert batch.parent is not None
    assert batch.parent.children is not None
    assert batch.parent.children.total == 5  # planned: the trials not asked for yet count as waiting
    running = db.jobs.claim(batch.jobs[0].id, "w")
    assert running is not None
    db.jobs.cancel(acme, batch.parent.id)
    assert db.jobs.get_any(batch.jobs[1].id).status == "cancelled"
    asked = db.jobs.get(acme, batch.parent.id)
    assert asked.status == "running"
    assert asked.children is not None
    assert asked.children.total == 2
    db.jobs.mark_cancelled(batch.jobs[0].id, running.lease_token)  # type: ignore[union-attr]
    assert db.jobs.get(acme, batch.parent.id).status == "cancelled"


def test_the_end_of_a_parent_is_signalled_after_its_last_childs_commit(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    parent, [child] = _graph(db, acme, 1)
    heard: list[str] = []
    db.jobs.changes.signal = lambda job_id, status=None: heard.append(job_id)
    _run(db, child.id)
    assert heard.count(parent.id) == 1  # a client waiting on the parent's end hears of it at once
    assert child.id in heard
