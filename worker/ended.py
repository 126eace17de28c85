"""Batch-mates this worker process finished: their own deliveries, which come later, are acknowledged from
memory instead of a claim that reads the database to find them taken.

A job that ended ``succeeded`` never runs again under its id (a retry is a new job), so a later delivery of a
job this process saw succeed has nothing to do. The memory is per process and bounded: a delivery that lands
in another process, or after its entry was dropped, takes the claim path and is skipped there, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_SIZE = 8192


class EndedHere:
    """The ids of batch-mates that succeeded in this process, oldest first, at most ``size`` of them."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def note(self, job_ids: Iterable[str]) -> None:
        """Remember ``job_ids`` as succeeded here (dropping the oldest beyond the size)."""
        for job_id in job_ids:
            self._ids[job_id] = None
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def take(self, job_id: str) -> bool:
        """Whether ``job_id`` succeeded here; forgets it (its one delivery has come)."""
        if job_id not in self._ids:
            return False
        del self._ids[job_id]
        return True
