"""``outcome_of``: the one mapping from what a run raised to how its job ends, for a job alone and in a batch."""

from __future__ import annotations

import errno
import threading
from typing import Any

import pytest

from db.models import utcnow
from db.records import JobRecord
from tensorq.core.errors import InvalidRequest, JobCancelled, StorageUnavailable, Unavailable
from worker.control import JobControl, JobTimedOut, LeaseLost, WorkerDraining
from worker.outcome import JobOutcome, outcome_of


def _job(attempts: int = 1, max_attempts: int = 3) -> JobRecord:
    return JobRecord(
        id="j1",
        tenant_id="t1",
        type="predict",
        status="running",
        spec={},
        progress=None,
        result=None,
        error=None,
        priority=0,
        attempts=attempts,
        max_attempts=max_attempts,
        timeout_s=5,
        cancel_requested=False,
        revision=2,
        created_at=utcnow(),
        started_at=utcnow(),
        finished_at=None,
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (LeaseLost("lease lost"), JobOutcome("lease_lost")),
        (WorkerDraining("worker shutting down"), JobOutcome("handed_back", reason="worker_shutdown")),
        (JobTimedOut("over"), JobOutcome("failed", {"code": "timeout", "message": "job exceeded its timeout_s of 5"})),
        (JobCancelled("cancelled"), JobOutcome("cancelled")),
        (Unavailable("database down"), JobOutcome("handed_back", reason="service_unavailable")),
        (StorageUnavailable("read-only"), JobOutcome("retry_later", reason="storage_unavailable")),
        (OSError(errno.EROFS, "read-only file system"), JobOutcome("retry_later", reason="storage_unavailable")),
    ],
)
def test_each_stop_and_fault_ends_the_job_one_way(exc: BaseException, expected: JobOutcome) -> None:
    assert outcome_of(exc, _job()) == expected


def test_a_storage_fault_on_the_last_attempt_fails_the_job_without_paths() -> None:
    outcome = outcome_of(OSError(errno.EROFS, "read-only", "/secret/path"), _job(attempts=3, max_attempts=3))
    assert outcome.end == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == "storage_unavailable"
    assert outcome.error["details"] == {"service": "storage", "attempts": 3}
    assert "/secret" not in outcome.error["message"]


def test_an_error_of_the_job_fails_it_with_its_code_details_and_phase() -> None:
    exc = InvalidRequest("inputs have the wrong shape", details={"expected": [4]})
    outcome = outcome_of(exc, _job(), phase="predicting")
    error: dict[str, Any] = {
        "code": "invalid_request",
        "message": "inputs have the wrong shape",
        "details": {"expected": [4], "phase": "predicting"},
    }
    assert outcome == JobOutcome("failed", error)


def test_a_refused_allocation_and_an_unexpected_error_fail_with_their_codes() -> None:
    over = outcome_of(MemoryError(), _job())
    assert over.error is not None
    assert (over.end, over.error["code"]) == ("failed", "resource_exhausted")
    unexpected = outcome_of(ValueError("row 3 of /data/x.csv"), _job(), phase="loading data")
    assert unexpected.error == {
        "code": "internal",
        "message": "unexpected ValueError while loading data",
        "details": {"phase": "loading data"},
    }


def test_a_plain_cancel_raised_by_the_job_after_a_drain_is_the_drain() -> None:
    """Keras stops with a plain JobCancelled once ``should_stop`` is true: the control knows the real cause."""
    draining = threading.Event()
    draining.set()
    control = JobControl(None, "j1", "token", heartbeat_s=30, draining=draining)  # type: ignore[arg-type]
    assert control.should_stop()
    assert control.reason == "worker_shutdown"
    outcome = outcome_of(control.cause(JobCancelled("cancelled")), _job())
    assert outcome == JobOutcome("handed_back", reason="worker_shutdown")
    assert control.cause(InvalidRequest("bad")).__class__ is InvalidRequest
