"""Celery tasks: each receives a job id, hands it to the process's JobRunner and reports how the job ended."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from worker.outcome import JobFailed, report
from worker.runner import JobRunner

_runner: JobRunner | None = None


def runner_for(task: Task) -> JobRunner:
    """The JobRunner of this worker process, built on first use from the app's settings."""
    global _runner
    if _runner is None:
        from worker.publisher import CeleryPublisher

        _runner = JobRunner(task.app.conf.tensorq_settings, publisher=CeleryPublisher(task.app))
    return _runner


@shared_task(name="tensorq.run_train", bind=True, throws=(JobFailed,))
def run_train(self: Task, job_id: str) -> dict[str, Any]:
    """Run a training job by id; the task fails when the job does."""
    runner = runner_for(self)
    return report(self, runner.db.jobs, job_id, runner.run(job_id))


@shared_task(name="tensorq.run_predict", bind=True, throws=(JobFailed,))
def run_predict(self: Task, job_id: str) -> dict[str, Any]:
    """Run a predict job by id; the task fails when the job does."""
    runner = runner_for(self)
    return report(self, runner.db.jobs, job_id, runner.run(job_id))


@shared_task(name="tensorq.run_explain", bind=True, throws=(JobFailed,))
def run_explain(self: Task, job_id: str) -> dict[str, Any]:
    """Run an explain job by id; the task fails when the job does."""
    runner = runner_for(self)
    return report(self, runner.db.jobs, job_id, runner.run(job_id))
