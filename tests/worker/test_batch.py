"""Micro-batching in the worker on a real model: one forward pass for the batch, the same results as jobs run one
at a time, a job with bad inputs failing alone, the batch-mates' own deliveries skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from db.database import Database
from tensorq.core.settings import Settings
from tests.conftest import make_settings
from tests.worker.batching import ROWS, assert_claimed_in_one_batch, assert_same_as_alone, submit, trained
from worker.runner import JobRunner


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite: the claim and finish statements are tested on both databases in tests/db/test_batch_claim.py."""
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'tensorq.sqlite3'}")


def test_a_batch_gives_each_job_the_result_it_gets_alone(settings: Settings, db: Database) -> None:
    model = trained(settings, db)
    specs = [
        {"model": model, "inputs": ROWS},
        {"model": f"{model}:1", "inputs": ROWS[1]},
        {"model": model, "inputs": [[1.0, 2.0]]},  # the wrong width: fails alone
        {"model": model, "inputs": ROWS[:2]},
    ]
    batch = [submit(db, "predict", spec) for spec in specs]
    runner = JobRunner(settings, db)
    assert runner.run(batch[0]) == "succeeded"
    jobs = [db.jobs.get_any(job_id) for job_id in batch]
    assert [j.status for j in jobs] == ["succeeded", "succeeded", "failed", "succeeded"]
    assert jobs[2].error["details"]["got_shape"] == [1, 2], jobs[2].error
    # The mates' own messages: nothing runs twice. Another process finds them taken in the database; this one
    # knows the two that succeeded without a statement (the failed one's delivery reads it, to report the error).
    assert [JobRunner(settings, db).run(job_id) for job_id in batch[1:]] == ["skipped"] * 3
    statements: list[str] = []

    def record(conn, cursor, statement, *rest) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    assert [runner.run(job_id) for job_id in (batch[1], batch[3])] == ["batched"] * 2
    event.remove(db.engine, "before_cursor_execute", record)
    assert statements == []
    assert [runner.run(job_id) for job_id in batch[1:]] == ["skipped"] * 3  # remembered once only
    assert_claimed_in_one_batch(db, jobs)
    assert_same_as_alone(settings, db, "predict", specs, jobs)


def test_jobs_of_other_versions_and_dataset_predicts_run_alone(settings: Settings, db: Database) -> None:
    model = trained(settings, db)
    first = submit(db, "predict", {"model": model, "inputs": ROWS})
    dataset = submit(db, "predict", {"model": model, "dataset": "builtin:iris"})
    other = submit(db, "predict", {"model": "nothing", "inputs": ROWS})
    runner = JobRunner(settings, db)
    assert runner.run(first) == "succeeded"
    assert db.jobs.get_any(dataset).status == "queued"
    assert db.jobs.get_any(other).status == "queued"
    assert runner.run(dataset) == "succeeded"
    assert runner.run(other) == "failed"
    assert db.jobs.get_any(other).error["code"] == "unknown_model"
