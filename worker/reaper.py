"""The reaper: re-queues jobs whose lease expired or whose worker is known gone, puts back the messages that
workers now gone took and never acknowledged, re-publishes queued jobs the broker may have lost (at once when
``worker.broker_watch`` finds the broker forgot), and (with ``job_retention_days``) deletes finished jobs past
their retention.

It runs as a thread inside every worker child process (never in the forking parent), so recovery
needs no extra service; concurrent reapers are safe because every transition is a conditional UPDATE
and a duplicate message finds its claim taken.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from db.database import Database
from db.records import JobRecord
from db.recovery import Recovery
from db.workers import GoneWorker, claimer
from tensorq.core.routing import Publisher, route_for, types_of
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore
from worker.unacked import Unacked
from worker.upload_reaper import expire_uploads

log = logging.getLogger(__name__)

REFILL_PAGE = 500  # queued jobs read at a time by a refill


class Reaper:
    """Recovers jobs from lost workers and lost messages."""

    def __init__(self, settings: Settings, db: Database, publisher: Publisher, unacked: Unacked | None = None) -> None:
        self.settings = settings
        self.db = db
        self.publisher = publisher
        self.unacked = unacked
        self.store = ArtifactStore.from_settings(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Recovery:
        """One pass: expired leases first, then the running jobs and held messages of gone workers, then queued
        jobs without a recent publish, then retention, then the parents whose children say they should move
        (``db.parents``: a parent whose last child's writer died before moving it)."""
        report = self.db.jobs.requeue_expired()
        self._recover_from_gone(report)
        done = set(report.requeued) | set(report.restored)
        pending = [self.db.jobs.get_any(job_id) for job_id in report.requeued]
        pending += self._maybe_lost(
            [j for j in self.db.jobs.unpublished(self.settings.publish_grace_s) if j.id not in done]
        )
        for job in pending:
            try:
                self.publisher.publish(job)
            except Exception:  # noqa: BLE001 - the broker is down: try again next pass
                log.warning("re-publish of job %s failed", job.id, exc_info=True)
                break
            self.db.jobs.mark_published(job.id)
            report.republished.append(job.id)
        report.swept = self._sweep()
        report.parents = self.db.jobs.settle_parents()
        self._expire_uploads()
        if report.did_anything():
            log.info("reaper: %s", report)
        return report

    def refill(self) -> list[str]:
        """The broker forgot its messages (``worker.broker_watch``): re-publish now, without waiting for
        ``publish_grace_s``, the queued jobs of every queue that holds fewer messages than it has jobs waiting.
        Raises when the broker refuses a message (the jobs not sent are left to the next refill or the grace)."""
        began = time.time()
        republished: list[str] = []
        while True:
            # Jobs published before the refill began: those it sent are not read again.
            page = self.db.jobs.unpublished(max(time.time() - began, 0.0), limit=REFILL_PAGE)
            lost = self._maybe_lost(page)
            for job in lost:
                self.publisher.publish(job)
                self.db.jobs.mark_published(job.id)
                republished.append(job.id)
            if len(page) < REFILL_PAGE or not lost:
                break
        log.info("broker refill: re-published %d queued job(s)", len(republished))
        return republished

    def _recover_from_gone(self, report: Recovery) -> None:
        """Re-queue the running jobs of workers known gone (as an expired lease would be, without waiting for
        it), then put back the messages they held; their rows are forgotten only once both succeeded."""
        try:
            gone = self.db.workers.gone()
            if not gone:
                return
            abandoned = self._requeue_abandoned(gone)
        except Exception:  # noqa: BLE001 - database down: the rows stay, the next pass tries again
            log.warning("could not re-queue the jobs of gone workers", exc_info=True)
            return
        report.requeued += abandoned.requeued
        report.failed += abandoned.failed
        report.cancelled += abandoned.cancelled
        report.restored = self._restore_held_by_gone(gone, skip=set(report.requeued))

    def _requeue_abandoned(self, gone: list[GoneWorker]) -> Recovery:
        """Settle the running jobs claimed by gone workers and not renewed for ``worker_stale_s`` either (a
        live worker renews its leases every ``heartbeat_s``); a live worker that took a gone one's host and
        process id keeps its jobs."""
        live = {claimer(worker.host, worker.pid) for worker in self.db.workers.live()}
        names = {worker.claims_as for worker in gone} - live
        return self.db.jobs.requeue_abandoned(names, self.settings.worker_stale_s)

    def _restore_held_by_gone(self, gone: list[GoneWorker], skip: set[str]) -> list[str]:
        """Put back in their queues the messages of still-queued jobs that were delivered, and never acknowledged,
        before a worker now known gone (its heartbeat ``worker_stale_s`` old) stopped heartbeating; their jobs.
        The gone workers' rows are deleted only once that succeeded, so a pass that fails (broker down) leaves
        them for the next pass to try again instead of leaving the jobs to the publish grace."""
        restored: list[str] = []
        if self.unacked is None:
            return restored
        try:
            # The gone worker took its last message before it missed its heartbeats; a live worker claims what
            # it takes within a heartbeat, so a message older than that and still unclaimed is not being run.
            last = max(worker.last_seen for worker in gone).timestamp()
            before = min(last + self.settings.worker_stale_s, time.time() - self.settings.heartbeat_s)
            held = [m for m in self.unacked.held_before(before) if m.job_id not in skip]
            queued = self.db.jobs.queued_among({m.job_id for m in held})
            for message in held:
                if message.job_id in queued and message.job_id not in restored:
                    self.unacked.restore(message.tag)
                    self.db.jobs.mark_published(message.job_id)
                    restored.append(message.job_id)
            # Reapers that saw the same rows may have restored the same messages: restoring twice pushes once.
            # A gone worker whose running job was not settled yet (its lease was renewed after its last
            # heartbeat, so not yet unrenewed for worker_stale_s) keeps its row until a later pass settles it.
            unsettled = self.db.jobs.still_running_for({worker.claims_as for worker in gone})
            for worker in gone:
                if worker.claims_as not in unsettled:
                    self.db.workers.forget(worker)
        except Exception:  # noqa: BLE001 - broker or database down: the rows stay, the next pass tries again
            log.warning("could not put back the messages of gone workers", exc_info=True)
            return restored
        if restored:
            log.info("put back %d message(s) held by %d gone worker(s): %s", len(restored), len(gone), restored)
        return restored

    def _sweep(self) -> list[str]:
        """Retention: delete finished jobs older than ``job_retention_days`` with their folders (not their models)."""
        days = self.settings.job_retention_days
        if not days:
            return []
        swept = self.db.jobs.sweep_finished(datetime.now(UTC) - timedelta(days=days))
        for job in swept:
            self.store.remove_folder(self.store.job_location(job.job_id), keep=job.kept_paths)
        return [job.job_id for job in swept]

    def _expire_uploads(self) -> None:
        """Remove abandoned uploads (``worker.upload_reaper``); a store that cannot be reached waits a pass."""
        try:
            expire_uploads(self.db, self.store, self.settings)
        except Exception:  # noqa: BLE001 - the store or database is down: the next pass tries again
            log.warning("could not remove expired uploads", exc_info=True)

    def _maybe_lost(self, candidates: list[JobRecord]) -> list[JobRecord]:
        """Jobs whose message may be gone: never published, or published long ago while their queue
        holds fewer messages than there are such jobs (Redis lost it) — not merely waiting in a long queue."""
        never = [j for j in candidates if j.published_at is None]
        stale: dict[str, list[JobRecord]] = {}
        for job in candidates:
            if job.published_at is not None:
                stale.setdefault(route_for(job.type).queue, []).append(job)
        lost: list[JobRecord] = []
        for queue, jobs in stale.items():
            depth = self.publisher.queue_depth(queue)
            # Jobs never published have no message to count: only the others must be matched by the queue.
            unsent = sum(1 for j in never if route_for(j.type).queue == queue)
            if depth is None or depth + unsent < self._waiting_in(queue, at_most=depth + unsent + 1):
                lost.extend(jobs)
        return never + lost

    def _waiting_in(self, queue: str, at_most: int) -> int:
        """Queued jobs of every type routed to ``queue`` (imports share predict's), counted up to ``at_most``."""
        return self.db.jobs.count_queued_of_types(types_of(queue), at_most=at_most)

    def start(self) -> None:
        """Run passes every ``reaper_interval_s`` in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="tensorq-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reaper_interval_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - keep reaping through database blips
                log.warning("reaper pass failed", exc_info=True)
