"""Running one job through the API as a client does: submit, then long-poll with ``?wait=`` until it ends."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from tensorq.client import TERMINAL, Job, TensorQClient


@dataclass
class Run:
    """A finished job and the client-side times around it."""

    job: Job
    submit_s: float
    wall_s: float
    seen_wall: float
    gets: int = 0
    worker_cpu_s: float = math.nan

    @property
    def job_s(self) -> float:
        """The job's own time: ``started_at`` (claim) to ``finished_at``."""
        return seconds_between(self.job.started_at, self.job.finished_at)

    def parts(self) -> dict[str, float]:
        """Where the wall time went (the POST, queued, running, noticing the end) and the GETs it took."""
        created, started, finished = self.job.created_at, self.job.started_at, self.job.finished_at
        seen = self.seen_wall - finished.timestamp() if finished else math.nan
        return {
            "post_s": self.submit_s,
            "queued_s": seconds_between(created, started),
            "running_s": seconds_between(started, finished),
            "notice_s": seen,
            "gets": float(self.gets),
        }


def seconds_between(start: datetime | None, end: datetime | None) -> float:
    """Seconds from ``start`` to ``end``; NaN when one is missing."""
    return (end - start).total_seconds() if start and end else math.nan


def run_job(
    client: TensorQClient,
    job_type: str,
    spec: dict,
    timeout: float = 600.0,
    *,
    until_finished: bool = True,
    one_request: bool = True,
) -> Run:
    """Submit a job and wait until it ends, as ``TensorQClient.run`` does: the submission itself waits
    (``POST ?wait=30``, one request for a short job), then ``?wait=30`` GETs ask for the end. With
    ``one_request=False`` the POST answers at once and GETs wait, each asking for the end (``until=finished``)
    or, with ``until_finished=False``, returning at every change. Raises unless the job succeeded."""
    start = time.perf_counter()
    job = client.submit(job_type, spec, wait=30 if one_request else None)
    submitted = time.perf_counter()
    deadline = start + timeout
    gets = 0
    while job.status not in TERMINAL:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{job_type} job {job.id} still {job.status} after {timeout} s")
        job = client.job(job.id, wait=30, until_finished=until_finished)
        gets += 1
    end = time.perf_counter()
    seen_wall = time.time()
    if job.status != "succeeded":
        raise RuntimeError(f"{job_type} job {job.id} ended {job.status}: {job.error}")
    return Run(job, submitted - start, end - start, seen_wall, gets)


def median_parts(runs: list[Run]) -> dict[str, float]:
    """The median of each part of the wall time over ``runs``."""
    if not runs:
        return {}
    parts = [r.parts() for r in runs]
    return {f"median_{k}": float(np.nanmedian([p[k] for p in parts])) for k in parts[0]}
