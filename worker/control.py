"""A running job's link back to its row: lease heartbeats, progress, cancel and timeout checks."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from db.jobs import JobStore
from tensorq.core.errors import JobCancelled, TensorQError
from worker.drain import DRAINING

log = logging.getLogger(__name__)


class JobTimedOut(TensorQError):
    """The job ran past its ``timeout_s``."""

    code = "timeout"


class WorkerDraining(JobCancelled):
    """The worker is shutting down; hand the job back."""

    code = "worker_shutdown"


class LeaseLost(JobCancelled):
    """Another worker took the job over, or it ended; stop and write nothing."""

    code = "lease_lost"


class LeaseKeeper:
    """One daemon thread per process that renews the leases of the jobs running in it, each on its own beat."""

    def __init__(self) -> None:
        self._controls: set[JobControl] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def keep(self, control: JobControl) -> None:
        """Renew ``control``'s lease every ``heartbeat_s`` until ``drop``."""
        with self._changed:
            self._controls.add(control)
            # A forked pool child inherits no threads: start one per process, on first use.
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()
            self._changed.notify()

    def drop(self, control: JobControl) -> None:
        """Stop renewing ``control``'s lease."""
        with self._changed:
            self._controls.discard(control)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [c for c in self._controls if c.next_beat <= now]
                if not due:
                    soonest = min((c.next_beat for c in self._controls), default=now + 60.0)
                    self._changed.wait(soonest - now)
                    continue
            for control in due:
                control.beat()


LEASES = LeaseKeeper()


class JobControl:
    """Keeps the lease alive (through ``LEASES``) and answers ``should_stop`` cheaply between batches."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        token: str,
        *,
        heartbeat_s: float,
        timeout_s: float | None = None,
        check_interval_s: float = 1.0,
        progress_interval_s: float = 0.5,
        draining: threading.Event | None = None,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.token = token
        self.heartbeat_s = heartbeat_s
        self.deadline = time.monotonic() + timeout_s if timeout_s else None
        self.check_interval_s = check_interval_s
        self.progress_interval_s = progress_interval_s
        self.lease_lost = threading.Event()
        self.draining = draining if draining is not None else DRAINING
        self._stop = threading.Event()
        # The claim has just checked cancel_requested: the first query can wait a check interval.
        self._last_check = time.monotonic()
        self._cancelled = False
        self._last_progress = 0.0
        # What ``check`` raised last: the cause of a stop that the job's code re-raises as a plain JobCancelled.
        self.stopped: TensorQError | None = None
        self.next_beat = time.monotonic() + heartbeat_s
        self._keeper = keeper if keeper is not None else LEASES

    def __enter__(self) -> JobControl:
        self._keeper.keep(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._keeper.drop(self)

    def beat(self) -> None:
        """Renew the lease once (called by the keeper when due); a lost lease stops the job."""
        self.next_beat = time.monotonic() + self.heartbeat_s
        if self._stop.is_set():
            return
        try:
            renewed = self.store.heartbeat(self.job_id, self.token)
        except Exception:  # noqa: BLE001 - a database blip: try again next beat
            log.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
            return
        if not renewed and not self._stop.is_set():
            log.warning("job %s: lease lost", self.job_id)
            self.lease_lost.set()
            self._keeper.drop(self)

    @property
    def reason(self) -> str | None:
        """The code of the stop ``check`` raised last (``lease_lost``, ``worker_shutdown``, ``timeout``,
        ``cancelled``), None while the job may go on."""
        return self.stopped.code if self.stopped is not None else None

    def cause(self, exc: BaseException) -> BaseException:
        """What stopped the job when it raised ``exc``: the stop ``check`` raised when ``exc`` is a stop (the job's
        code stops with a plain JobCancelled once ``should_stop`` said so), else ``exc``."""
        if isinstance(exc, JobCancelled | JobTimedOut) and self.stopped is not None:
            return self.stopped
        return exc

    def check(self) -> None:
        """Raise when the job must stop: lease lost, cancel requested or time over."""
        stop = self._stop_now()
        if stop is not None:
            self.stopped = stop
            raise stop

    def _stop_now(self) -> TensorQError | None:
        if self.lease_lost.is_set():
            return LeaseLost("lease lost")
        if self.draining.is_set():
            return WorkerDraining("worker shutting down")
        if self.deadline is not None and time.monotonic() > self.deadline:
            return JobTimedOut("job exceeded its timeout_s")
        now = time.monotonic()
        if now - self._last_check >= self.check_interval_s:
            self._last_check = now
            try:
                self._cancelled = self.store.cancel_requested(self.job_id)
            except Exception:  # noqa: BLE001 - keep running through a database blip
                log.warning("job %s: cancel check failed", self.job_id, exc_info=True)
        return JobCancelled("cancelled") if self._cancelled else None

    def should_stop(self) -> bool:
        """True when ``check`` would raise; lets ML code stop at a batch boundary."""
        try:
            self.check()
        except (JobCancelled, JobTimedOut):
            return True
        return False

    def report(self, progress: dict[str, Any], *, force: bool = False) -> None:
        """Write progress to the row at a bounded rate; the last epoch is always written."""
        now = time.monotonic()
        last = progress.get("epoch") is not None and progress.get("epoch") == progress.get("epochs")
        if not (force or last) and now - self._last_progress < self.progress_interval_s:
            return
        self._last_progress = now
        try:
            if not self.store.report_progress(self.job_id, self.token, progress):
                self.lease_lost.set()
        except Exception:  # noqa: BLE001 - progress is best effort
            log.warning("job %s: progress write failed", self.job_id, exc_info=True)
