"""Task names and queues per job type; the API enqueues by name through this table alone."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """Where a job type's message goes."""

    task: str
    queue: str


ROUTES: dict[str, Route] = {
    "train": Route("tensorq.run_train", "train"),
    "predict": Route("tensorq.run_predict", "predict"),
    "explain": Route("tensorq.run_explain", "explain"),
    # Bring-your-own model imports are short: they share the predict queue and its task (which runs any job by id).
    "import": Route("tensorq.run_predict", "predict"),
}
QUEUES = tuple(dict.fromkeys(route.queue for route in ROUTES.values()))


def route_for(job_type: str) -> Route:
    """The route of ``job_type``; KeyError for an unknown type."""
    return ROUTES[job_type]
