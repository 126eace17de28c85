"""A queued job's position and expected start, against the order and the times at which one real job runner
(on a real database) then starts the jobs."""

from __future__ import annotations

import os
import socket
import time

import pytest

from db.database import Database
from db.jobs import NewJob
from db.outlook import Outlooks, start_in
from db.workers import WorkerInfo
from tensorq.core.settings import Settings
from worker.context import HandlerResult, JobContext
from worker.runner import JobRunner

RUN_S = 0.3  # each job's own run time (a sleep: the estimate is about the queue, not TensorFlow)


def _submit(db: Database, tenant: str, n: int, priority: int = 5) -> list[str]:
    tenant_id = db.keys.ensure_tenant(tenant)
    return [db.jobs.submit(NewJob(tenant_id, "train", {"n": i}, priority=priority)).job.id for i in range(n)]


def _runner(settings: Settings, db: Database, started: list[str], run_s: float = 0.0) -> JobRunner:
    def handler(ctx: JobContext) -> HandlerResult:
        started.append(ctx.job.id)
        time.sleep(run_s)
        return HandlerResult({})

    return JobRunner(settings, db, {"train": handler})


def test_start_in_places_the_jobs_ahead_on_the_first_free_worker() -> None:
    assert start_in(0, [0.0, 0.0], 10.0) == 0.0
    assert start_in(3, [0.0, 4.0], 10.0) == 14.0  # ahead: w1 0-10, w2 4-14, w1 10-20; then w2 at 14
    assert start_in(5, [], 10.0) is None


@pytest.mark.parametrize("fair", [False, True], ids=["fifo", "fair"])
def test_positions_are_the_order_in_which_jobs_then_start(settings: Settings, db: Database, fair: bool) -> None:
    settings.fair_share_queues = ["train"] if fair else []
    jobs = _submit(db, "a", 6) + _submit(db, "b", 3) + _submit(db, "a", 1, priority=1) + _submit(db, "c", 2)
    outlooks = Outlooks(db.factory, settings.weight, settings.worker_stale_s)
    state = outlooks.state("train", fair)
    positions = {job_id: outlooks.of(db.jobs.get_any(job_id), state).queue_position for job_id in jobs}
    started: list[str] = []
    runner = _runner(settings, db, started)
    for job_id in sorted(jobs, key=lambda j: db.jobs.get_any(j).priority):  # the broker's order: priority, age
        runner.run(job_id)
    assert sorted(started) == sorted(jobs)
    assert {job_id: started.index(job_id) for job_id in jobs} == positions


def test_the_expected_start_against_the_real_start(settings: Settings, db: Database, record_property) -> None:  # type: ignore[no-untyped-def]
    """One worker: three jobs give the run time, then ten queued jobs are estimated and run; the error of each
    estimate (expected start against real start) is recorded as a figure."""
    host = socket.gethostname()
    name = f"outlook@{host}:{os.getpid()}"
    db.workers.register(WorkerInfo(name, "outlook@" + host, host, os.getpid(), ["train"], "test"))
    started: list[str] = []
    runner = _runner(settings, db, started, RUN_S)
    for job_id in _submit(db, "a", 3):
        runner.run(job_id)
    outlooks = Outlooks(db.factory, settings.weight, settings.worker_stale_s)
    queued = _submit(db, "a", 5) + _submit(db, "b", 5)
    state = outlooks.state("train", "train" in settings.fair_share_queues)
    expected = {job_id: outlooks.of(db.jobs.get_any(job_id), state) for job_id in queued}
    assert all(o.expected_start_s is not None for o in expected.values())
    by_position = sorted(expected.values(), key=lambda o: o.queue_position or 0)
    assert [o.queue_position for o in by_position] == list(range(10))
    starts = [o.expected_start_s or 0.0 for o in by_position]
    assert starts == sorted(starts)
    began = time.time()
    for job_id in queued:
        runner.run(job_id)
    errors = []
    for job_id in queued:
        real = (db.jobs.get_any(job_id).started_at.timestamp()) - began  # type: ignore[union-attr]
        errors.append(abs(real - (expected[job_id].expected_start_s or 0.0)))
    span = max(o.expected_start_s or 0.0 for o in expected.values())
    record_property("expected_start_mean_abs_error_s", round(sum(errors) / len(errors), 3))
    record_property("expected_start_max_abs_error_s", round(max(errors), 3))
    record_property("expected_start_span_s", span)
    print(
        f"expected start: mean abs error {sum(errors) / len(errors):.3f}s, max {max(errors):.3f}s "
        f"over a queue of {span:.1f}s ({RUN_S}s jobs)"
    )
