"""Micro-batching in the worker on a real model: one forward pass for the batch, the same results as jobs run one
at a time, a job with bad inputs failing alone, the batch-mates' own deliveries skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from db.database import Database
from db.jobs import NewJob
from tensorq.settings import Settings
from tests.conftest import make_settings
from worker.runner import JobRunner

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite: the claim and finish statements are tested on both databases in tests/db/test_batch_claim.py."""
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'tensorq.sqlite3'}")


def _submit(db: Database, job_type: str, spec: dict) -> str:
    return db.jobs.submit(NewJob(db.keys.ensure_tenant("acme"), job_type, spec)).job.id


def _trained(settings: Settings, db: Database) -> str:
    job_id = _submit(db, "train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1, "model_name": "m"})
    assert JobRunner(settings, db).run(job_id) == "succeeded", db.jobs.get_any(job_id).error
    return "m"


def test_a_batch_gives_each_job_the_result_it_gets_alone(settings: Settings, db: Database) -> None:
    model = _trained(settings, db)
    specs = [
        {"model": model, "inputs": ROWS},
        {"model": f"{model}:1", "inputs": ROWS[1]},
        {"model": model, "inputs": [[1.0, 2.0]]},  # the wrong width: fails alone
        {"model": model, "inputs": ROWS[:2]},
    ]
    batch = [_submit(db, "predict", spec) for spec in specs]
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
    for job in jobs:
        claims = [e for e in db.jobs.events(job.tenant_id, job.id) if e.to_status == "running"]
        assert len(claims) == 1
        assert claims[0].data["batch_size"] == 4
        assert any("in a batch of 4" in line.message for line in db.logs.page(job.tenant_id, job.id).lines)

    alone = make_settings(Path(settings.artifact_dir).parent, settings.database_url, batch_max_jobs=1)
    one_by_one = [_submit(db, "predict", spec) for spec in specs]
    for job_id in one_by_one:
        JobRunner(alone, db).run(job_id)
    for batched, single in zip(jobs, [db.jobs.get_any(i) for i in one_by_one], strict=True):
        assert batched.status == single.status
        assert batched.result == single.result
        assert (batched.error or {}).get("code") == (single.error or {}).get("code")


def test_jobs_of_other_versions_and_dataset_predicts_run_alone(settings: Settings, db: Database) -> None:
    model = _trained(settings, db)
    first = _submit(db, "predict", {"model": model, "inputs": ROWS})
    dataset = _submit(db, "predict", {"model": model, "dataset": "builtin:iris"})
    other = _submit(db, "predict", {"model": "nothing", "inputs": ROWS})
    runner = JobRunner(settings, db)
    assert runner.run(first) == "succeeded"
    assert db.jobs.get_any(dataset).status == "queued"
    assert db.jobs.get_any(other).status == "queued"
    assert runner.run(dataset) == "succeeded"
    assert runner.run(other) == "failed"
    assert db.jobs.get_any(other).error["code"] == "unknown_model"
