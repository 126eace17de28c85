"""Putting a job back in its queue from a worker, and publishing it again: a claim deferred by a quota, a running
job handed back (the worker stops, a service is unavailable) and a running job retried later (the artifact store
refused a write). A publish that fails is left to the reaper, which re-publishes every unpublished queued job."""

from __future__ import annotations

import logging

from db.jobs import JobStore
from db.records import JobRecord
from tensorq.core.errors import Unavailable
from tensorq.core.routing import Publisher
from worker.retry import with_backoff

log = logging.getLogger(__name__)
# How long a deferred job waits before it is delivered again (the tenant is at its running quota).
DEFER_S = 5.0
# How long a job waits before its next attempt after the artifact store refused a write.
STORAGE_RETRY_S = 10.0


class Requeue:
    """A worker's way back to the queue, on its job store and publisher (None: the reaper publishes)."""

    def __init__(self, store: JobStore, publisher: Publisher | None) -> None:
        self.store = store
        self.publisher = publisher

    def defer(self, job_id: str, reason: str) -> str:
        """Leave a queued job queued (its claim was refused for ``reason``) and publish it again a little later;
        ``deferred``."""
        log.info("job %s: deferred (%s)", job_id, reason)
        self._publish(job_id, DEFER_S, "deferral")
        return "deferred"

    def give_back(self, job_id: str) -> str:
        """Leave a queued job unclaimed (this worker drains) and publish it again at once for another worker:
        ``draining``."""
        log.info("job %s: this worker drains; the job goes back to its queue", job_id)
        self._publish(job_id, None, "a drain")
        return "draining"

    def hand_back(self, job: JobRecord, token: str, reason: str) -> str:
        """Return a running job to the queue without counting its attempt, and publish it again: ``handed_back``,
        ``lease_lost`` when it was no longer ours, ``abandoned`` when the database stayed away (its lease expires
        and the reaper re-queues it)."""
        try:
            released = with_backoff(lambda: self.store.release(job.id, token, reason), attempts=4)
        except Unavailable:
            log.warning("job %s: could not hand back; its lease will expire and the reaper re-queues it", job.id)
            return "abandoned"
        if not released:
            return "lease_lost"
        self._publish(job.id, None, "hand-back")
        return "handed_back"

    def retry_later(self, job: JobRecord, token: str, reason: str) -> str:
        """Return a running job to the queue with its attempt counted, published again after ``STORAGE_RETRY_S``:
        ``retry_later``, or ``lease_lost`` when it was no longer ours."""
        if not with_backoff(lambda: self.store.retry_later(job.id, token, reason), attempts=4):
            return "lease_lost"
        self._publish(job.id, STORAGE_RETRY_S, "a storage fault")
        return "retry_later"

    def _publish(self, job_id: str, countdown: float | None, after: str) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.publish(self.store.get_any(job_id), countdown=countdown)
            self.store.mark_published(job_id)
        except Exception:  # noqa: BLE001 - the reaper re-publishes it
            log.warning("job %s: re-publish after %s failed; the reaper will do it", job_id, after)
