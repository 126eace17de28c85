"""A failed job's task fails with ``JobFailed('job <id> failed: <code>: <message>')``, the code its error recorded."""

from __future__ import annotations

import pytest

from db.database import Database
from db.jobs import NewJob
from db.records import Claim
from worker.outcome import JobFailed, failure, report
from worker.tasks import run_job


def _failed_with(db: Database, error: dict[str, str]) -> str:
    """A job claimed and failed with ``error``; its id."""
    tenant = db.keys.ensure_tenant("acme")
    job = db.jobs.submit(NewJob(tenant, "train", {})).job
    claim = db.jobs.claim(job.id, "w")
    assert isinstance(claim, Claim)
    assert db.jobs.fail(job.id, claim.lease_token, error)
    return job.id


def test_a_failed_job_s_task_names_the_code_its_error_recorded(db: Database) -> None:
    job_id = _failed_with(db, {"code": "resource_exhausted", "message": "out of memory"})
    with pytest.raises(JobFailed, match=f"^job {job_id} failed: resource_exhausted: out of memory$"):
        report(run_job, db.jobs, job_id, "failed")


def test_an_error_without_a_code_shows_its_message_alone_not_a_made_up_code() -> None:
    assert failure({"message": "x"}) == "x"
    assert failure(None) == "no error recorded"
    assert failure({"code": "timeout", "message": "job exceeded its timeout_s of 1"}).startswith("timeout: ")
