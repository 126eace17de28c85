"""A worker whose object store cannot be reached: the job is retried later, then fails ``storage_unavailable``;
neither the store's endpoint nor a key reaches the job's error or its log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.database import Database
from db.jobs import NewJob
from tensorq.core.settings import Settings
from tests.conftest import RecordingPublisher, unreachable_store_settings
from tests.services import S3_KEY, S3_SECRET
from worker.runner import JobRunner


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings whose S3 store nobody answers for, on each database."""
    return unreachable_store_settings(tmp_path, database_url)


def test_an_unreachable_store_is_retried_then_fails_the_job_without_naming_it(settings: Settings, db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1}
    job_id = db.jobs.submit(NewJob(tenant, "train", spec, max_attempts=2)).job.id
    publisher = RecordingPublisher()
    runner = JobRunner(settings, db, publisher=publisher)
    assert runner.run(job_id) == "retry_later"
    job = db.jobs.get_any(job_id)
    assert (job.status, job.attempts, publisher.published) == ("queued", 1, [job_id])
    assert runner.run(job_id) == "failed"
    job = db.jobs.get_any(job_id)
    assert job.error["code"] == "storage_unavailable"
    logged = " ".join(line.message for line in db.logs.page(tenant, job_id).lines)
    for secret in (S3_KEY, S3_SECRET, str(settings.s3_endpoint_url), str(settings.artifact_url)):
        assert secret not in json.dumps(job.error)
        assert secret not in logged
    assert "artifact store cannot be reached" in logged
