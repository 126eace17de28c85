"""The one task and the queue of each job type; the API enqueues by task name through this table alone."""

from __future__ import annotations

from dataclasses import dataclass

# Every job runs through this one task; the queue (named by the publisher) says which workers take it.
RUN_JOB = "tensorq.run_job"
# Task names of messages published before there was one task; workers still accept them.
LEGACY_TASKS = ("tensorq.run_train", "tensorq.run_predict", "tensorq.run_explain")


@dataclass(frozen=True)
class Route:
    """Where a job type's message goes."""

    task: str
    queue: str


ROUTES: dict[str, Route] = {
    "train": Route(RUN_JOB, "train"),
    "predict": Route(RUN_JOB, "predict"),
    "explain": Route(RUN_JOB, "explain"),
    # Bring-your-own model imports are short: they share the predict queue.
    "import": Route(RUN_JOB, "predict"),
}
QUEUES = tuple(dict.fromkeys(route.queue for route in ROUTES.values()))


def route_for(job_type: str) -> Route:
    """The route of ``job_type``; KeyError for an unknown type."""
    return ROUTES[job_type]


def broker_queue(queue: str, prefix: str = "") -> str:
    """The broker's name of ``queue`` under ``TENSORQ_QUEUE_PREFIX`` (``staging`` -> ``staging.train``)."""
    if not prefix:
        return queue
    return f"{prefix}{queue}" if prefix[-1] in ".-_:" else f"{prefix}.{queue}"
