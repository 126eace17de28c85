"""What the micro-batch tests share: iris rows, a trained model, submitting, and the checks that a batch ran
as one and gave each job what it gets alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from db.database import Database
from db.jobs import NewJob
from db.records import JobRecord
from tensorq.core.settings import Settings
from tests.conftest import make_settings
from worker.runner import JobRunner

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def submit(db: Database, job_type: str, spec: dict[str, Any]) -> str:
    """Queue a job of tenant ``acme``; its id."""
    return db.jobs.submit(NewJob(db.keys.ensure_tenant("acme"), job_type, spec)).job.id


def trained(settings: Settings, db: Database, seed: int | None = None) -> str:
    """Train the iris MLP ``m`` (one epoch) with a runner; the model's name."""
    spec: dict[str, Any] = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1, "model_name": "m"}
    if seed is not None:
        spec["seed"] = seed
    job_id = submit(db, "train", spec)
    assert JobRunner(settings, db).run(job_id) == "succeeded", db.jobs.get_any(job_id).error
    return "m"


def assert_claimed_in_one_batch(db: Database, jobs: list[JobRecord]) -> None:
    """Each job was claimed once, in a batch of all of them, and its log says so."""
    size = len(jobs)
    for job in jobs:
        claims = [e for e in db.jobs.events(job.tenant_id, job.id) if e.to_status == "running"]
        assert len(claims) == 1
        assert claims[0].data["batch_size"] == size
        assert any(f"in a batch of {size}" in line.message for line in db.logs.page(job.tenant_id, job.id).lines)


def assert_same_as_alone(
    settings: Settings, db: Database, job_type: str, specs: list[dict[str, Any]], batched: list[JobRecord]
) -> None:
    """The same specs run one at a time (micro-batching off) end as the batched jobs did, with equal results."""
    alone = make_settings(Path(settings.artifact_dir).parent, settings.database_url, batch_max_jobs=1)
    one_by_one = [submit(db, job_type, spec) for spec in specs]
    for job_id in one_by_one:
        JobRunner(alone, db).run(job_id)
    for job, single in zip(batched, [db.jobs.get_any(i) for i in one_by_one], strict=True):
        assert job.status == single.status
        assert job.result == single.result
        assert (job.error or {}).get("code") == (single.error or {}).get("code")
