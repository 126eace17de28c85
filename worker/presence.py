"""A worker process's presence in SQL: registered when its pool child starts, heartbeating with the job it runs."""

from __future__ import annotations

import logging
import threading

from db.workers import WorkerInfo, WorkerRegistry

log = logging.getLogger(__name__)


class Presence:
    """Keeps one worker's row alive: a daemon thread renews ``last_seen`` every ``interval_s``."""

    def __init__(self, registry: WorkerRegistry, info: WorkerInfo, interval_s: float) -> None:
        self.registry = registry
        self.info = info
        self.interval_s = interval_s
        self.current_job: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-presence", daemon=True)

    def start(self) -> Presence:
        """Register now and keep heartbeating."""
        self._beat(register=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop heartbeating and delete the row."""
        self._stop.set()
        try:
            self.registry.leave(self.info.name)
        except Exception:  # noqa: BLE001 - the row then simply goes stale
            log.warning("could not unregister worker %s", self.info.name, exc_info=True)

    def describe(self, info: WorkerInfo) -> None:
        """Say more about this worker (its GPU, once TensorFlow has named it): its row is written again now."""
        self.info = info
        self._beat(register=True)

    def running(self, job_id: str | None) -> None:
        """Record the job this worker runs now (None: idle), at once."""
        self.current_job = job_id
        self._beat()

    def _beat(self, register: bool = False) -> None:
        try:
            if register or not self.registry.heartbeat(self.info.name, self.current_job):
                self.registry.register(self.info)
                self.registry.heartbeat(self.info.name, self.current_job)
        except Exception:  # noqa: BLE001 - a database outage: the next beat tries again
            log.warning("worker %s: heartbeat failed", self.info.name, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat()


_CURRENT: list[Presence] = []


def announce(presence: Presence) -> None:
    """Make ``presence`` this process's (the runner reports its jobs to it)."""
    _CURRENT[:] = [presence.start()]


def note_job(job_id: str | None) -> None:
    """Tell this process's presence, if any, which job it runs now."""
    for presence in _CURRENT:
        presence.running(job_id)
