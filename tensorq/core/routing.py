"""How a job reaches a worker: the one task, the queue of each job type, and the publisher's interface.

Ground for the API and the worker alike (no Celery, no TensorFlow): the API enqueues by task name through
this table alone, and takes a ``Publisher`` from its app factory instead of importing ``worker/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from db.records import JobRecord

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


def types_of(queue: str) -> tuple[str, ...]:
    """The job types whose messages go to ``queue`` (``predict`` carries imports too)."""
    return tuple(job_type for job_type, route in ROUTES.items() if route.queue == queue)


def broker_queue(queue: str, prefix: str = "") -> str:
    """The broker's name of ``queue`` under ``TENSORQ_QUEUE_PREFIX`` (``staging`` -> ``staging.train``)."""
    if not prefix:
        return queue
    return f"{prefix}{queue}" if prefix[-1] in ".-_:" else f"{prefix}.{queue}"


class Publisher(Protocol):
    """Anything that can send a job's id to its queue (``worker.publisher.CeleryPublisher`` over Celery)."""

    def publish(self, job: JobRecord, countdown: float | None = None) -> None:
        """Send the job's message (after ``countdown`` seconds); raise when the broker cannot take it."""

    def publish_many(self, jobs: list[JobRecord]) -> None:
        """Send each job's message, in order, over one broker connection; raise at the first it cannot take."""

    def ping(self) -> None:
        """Raise when the broker cannot be reached."""

    def queue_depth(self, queue: str) -> int | None:
        """Messages waiting in ``queue``, or None when the broker cannot say."""
