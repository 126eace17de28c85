"""The job log store on SQLite and Postgres: bounded per job, paged by seq, the tenant's own only."""

from __future__ import annotations

import pytest

from db.database import Database
from db.joblogs import JobLogStore, LogLine
from db.jobs import NewJob
from db.models import utcnow
from tensorq.core.errors import NotFound


def _line(i: int, attempt: int = 1) -> LogLine:
    return LogLine(attempt, "INFO", "worker.runner", f"line {i}", utcnow())


def test_lines_page_in_order_and_only_the_latest_are_kept(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(acme, "train", {})).job.id
    store = JobLogStore(db.factory, max_lines=10)
    store.append(job_id, [_line(i) for i in range(6)])
    store.append(job_id, [_line(i, attempt=2) for i in range(6, 14)])
    page = store.page(acme, job_id)
    assert [line.message for line in page.lines] == [f"line {i}" for i in range(4, 14)]
    assert [line.attempt for line in page.lines] == [1, 1] + [2] * 8
    assert page.finished is False
    first = store.page(acme, job_id, limit=3)
    rest = store.page(acme, job_id, after=first.lines[-1].seq)
    assert [line.message for line in first.lines + rest.lines] == [line.message for line in page.lines]
    assert store.page(acme, job_id, after=page.lines[-1].seq).lines == []


def test_a_batch_over_the_bound_keeps_its_tail_and_long_lines_are_cut(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(acme, "train", {})).job.id
    store = JobLogStore(db.factory, max_lines=10)
    store.append(job_id, [_line(i) for i in range(25)] + [LogLine(1, "ERROR", "x", "y" * 10_000, utcnow())])
    lines = store.page(acme, job_id).lines
    assert len(lines) == 10
    assert lines[0].message == "line 16"
    assert len(lines[-1].message) == 4000


def test_another_tenants_job_log_is_not_found_and_finished_is_reported(db: Database) -> None:
    acme, other = db.keys.ensure_tenant("acme"), db.keys.ensure_tenant("other")
    job_id = db.jobs.submit(NewJob(acme, "train", {})).job.id
    db.logs.append(job_id, [_line(1)])
    with pytest.raises(NotFound):
        db.logs.page(other, job_id)
    with pytest.raises(NotFound):
        db.logs.page(acme, "no-such-job")
    db.jobs.cancel(acme, job_id)
    assert db.logs.page(acme, job_id).finished is True
