"""Publishing right after the commit: a failure marks the jobs unpublished, and the reaper's outbox sends them."""

from __future__ import annotations

import logging

from api.services import services
from db.records import JobRecord

log = logging.getLogger(__name__)


def publish(job: JobRecord) -> None:
    """Send the job's message (it was committed as published); a failure leaves it for the reaper."""
    svc = services()
    try:
        svc.publisher.publish(job)
    except Exception:  # noqa: BLE001 - any broker failure: the outbox recovers it
        log.warning("publish of job %s failed; the reaper will re-publish it", job.id, exc_info=True)
        svc.broker_guard.mark_down()
        try:
            svc.db.jobs.mark_unpublished(job.id)
        except Exception:  # noqa: BLE001 - then the reaper finds it after publish_grace_s instead
            log.warning("job %s: could not mark it unpublished", job.id, exc_info=True)


def publish_all(jobs: list[JobRecord]) -> None:
    """Send the batch's messages (committed as published); on a failure the rest are left to the reaper."""
    svc = services()
    try:
        svc.publisher.publish_many(jobs)
    except Exception:  # noqa: BLE001 - any broker failure: the outbox recovers them
        log.warning("publish of a batch of %d jobs failed; the reaper will re-publish them", len(jobs), exc_info=True)
        svc.broker_guard.mark_down()
        for job in jobs:
            try:
                svc.db.jobs.mark_unpublished(job.id)  # only those still queued and unclaimed change
            except Exception:  # noqa: BLE001 - then the reaper finds it after publish_grace_s instead
                log.warning("job %s: could not mark it unpublished", job.id, exc_info=True)
