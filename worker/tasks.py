"""Celery tasks: each receives a job id and hands it to the process's JobRunner."""

from __future__ import annotations

from celery import Task, shared_task

from worker.runner import JobRunner

_runner: JobRunner | None = None


def runner_for(task: Task) -> JobRunner:
    """The JobRunner of this worker process, built on first use from the app's settings."""
    global _runner
    if _runner is None:
        from worker.publisher import CeleryPublisher

        _runner = JobRunner(task.app.conf.tensorq_settings, publisher=CeleryPublisher(task.app))
    return _runner


@shared_task(name="tensorq.run_train", bind=True)
def run_train(self: Task, job_id: str) -> None:
    """Run a training job by id."""
    runner_for(self).run(job_id)


@shared_task(name="tensorq.run_predict", bind=True)
def run_predict(self: Task, job_id: str) -> None:
    """Run a predict job by id."""
    runner_for(self).run(job_id)


@shared_task(name="tensorq.run_explain", bind=True)
def run_explain(self: Task, job_id: str) -> None:
    """Run an explain job by id."""
    runner_for(self).run(job_id)
