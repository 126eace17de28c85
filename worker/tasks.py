"""The one Celery task: it receives a job id, hands it to the process's JobRunner and reports how the job ended."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from tensorq.core.routing import LEGACY_TASKS, RUN_JOB
from worker.drain import stop_consuming
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


def _run(self: Task, job_id: str) -> dict[str, Any]:
    """Run a job of any type by id (the runner reads its type from the database); the task fails when the job does."""
    runner = runner_for(self)
    outcome = runner.run(job_id)
    if outcome == "draining":
        stop_consuming(self.app, self.request.hostname)
    return report(self, runner.db.jobs, runner.ran or job_id, outcome)


run_job = shared_task(name=RUN_JOB, bind=True, throws=(JobFailed,))(_run)
# Messages already queued under the per-type names of earlier versions run the same way.
legacy_tasks = [shared_task(name=name, bind=True, throws=(JobFailed,))(_run) for name in LEGACY_TASKS]
