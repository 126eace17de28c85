"""Job change signals: a committed transition publishes the job's id; waiting long-polls wake on it.

The database stays the source of truth: a signal only says "read the job again". Signals travel
over Redis pub/sub on the broker's Redis (channel ``tensorq:job:<id>``). When the listener
(re)subscribes, every waiting reader reads once (signals sent meanwhile are lost); a signal lost
otherwise (its publisher failed to reach Redis) costs a reader at most its fallback interval,
because readers also re-read the row on a slow timer; without Redis (another broker, or Redis down)
readers simply poll.

A signal may carry the status the job moved to (``running`` for a claim; empty when not said): a
reader that waits for the job to finish need not read it again for a change that cannot be its end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "tensorq:job:"
QUIET_AFTER_FAILURE_S = 1.0
# What hears of a committed change: the job's id and the status it moved to (None when not said).
OnChange = Callable[[str, str | None], None]


def redis_url_of(broker_url: str) -> str | None:
    """The broker's URL when it is Redis (signals need pub/sub), else None."""
    return broker_url if broker_url.startswith(("redis://", "rediss://")) else None


class ChangeSignal:
    """Publishes "job <id> changed" after a commit; never raises, and stays quiet a moment after a failure."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.5)
        self._quiet_until = 0.0

    def __call__(self, job_id: str, status: str | None = None) -> None:
        """Publish the signal (with the job's new ``status`` when the caller says it); a broker failure only
        delays readers until their next timed read."""
        now = time.monotonic()
        if now < self._quiet_until:
            return
        try:
            self._client.publish(CHANNEL_PREFIX + job_id, (status or "").encode())
        except redis.RedisError:
            self._quiet_until = now + QUIET_AFTER_FAILURE_S
            log.debug("change signal for job %s not sent", job_id, exc_info=True)


class JobChanges:
    """The stores' one way to say that a committed write changed jobs: calls the signal (``ChangeSignal``, or
    any ``OnChange``) once per job; without one it does nothing."""

    def __init__(self, signal: OnChange | None = None) -> None:
        self.signal = signal

    def note(self, job_id: str, status: str | None = None, *, changed: bool = True) -> bool:
        """Signal that ``job_id`` changed (to ``status`` when the caller knows it for sure) when ``changed``;
        passes ``changed`` through."""
        if changed and self.signal is not None:
            self.signal(job_id, status)
        return changed

    def note_all(self, job_ids: Iterable[str], status: str | None = None) -> None:
        """Signal each of ``job_ids``, committed together."""
        for job_id in job_ids:
            self.note(job_id, status)


# Statuses a signal may name after which the job still has to end: a reader waiting for the end skips them.
UNFINISHED = frozenset({"queued", "running"})


@dataclass(eq=False)
class Watch:
    """One reader waiting for a job to change; ``wait`` returns early when a signal came."""

    job_id: str
    event: threading.Event = field(default_factory=threading.Event)
    _heard: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def notify(self, status: str = "") -> None:
        """A signal came for the job, naming its new status or not ('')."""
        with self._lock:
            self._heard.append(status)
        self.event.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a signal; True when one came (and reset it)."""
        signalled = self.event.wait(max(0.0, timeout))
        self.event.clear()
        return signalled

    def only_unfinished(self) -> bool:
        """Whether every signal since the last call named a status the job still ends after (then the job
        cannot have finished through them); False when none came or one did not say."""
        with self._lock:
            heard, self._heard = self._heard, []
        return bool(heard) and all(status in UNFINISHED for status in heard)


class ChangeListener:
    """One subscriber thread per process that wakes the ``Watch`` objects of changed jobs."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._watches: dict[str, set[Watch]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.connected = threading.Event()

    @contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """Register a watch for ``job_id`` for the block (start it before reading the job)."""
        self._ensure_thread()
        watch = Watch(job_id)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                waiting = self._watches.get(job_id)
                if waiting is not None:
                    waiting.discard(watch)
                    if not waiting:
                        del self._watches[job_id]

    def _ensure_thread(self) -> None:
        # A forked server process inherits no threads: start one per process, on first use.
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.connected.clear()
            self._thread = threading.Thread(target=self._listen_forever, name="job-changes", daemon=True)
            self._thread.start()

    def _listen_forever(self) -> None:
        while True:
            try:
                self._listen()
            except Exception:  # noqa: BLE001 - Redis gone: readers poll meanwhile; reconnect
                self.connected.clear()
                self._wake_all()  # readers waiting on a slow timer read now, then poll until it is back
                log.debug("change listener lost Redis; reconnecting", exc_info=True)
                time.sleep(1.0)

    def _listen(self) -> None:
        client = redis.Redis.from_url(self._url, socket_connect_timeout=1.0, health_check_interval=30)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.psubscribe(CHANNEL_PREFIX + "*")
            while True:
                message = pubsub.get_message(timeout=5.0)
                if pubsub.subscribed and not self.connected.is_set():
                    self.connected.set()
                    self._wake_all()  # signals sent while unsubscribed are lost: every reader reads once now
                if message is not None:
                    job_id = message["channel"].decode().removeprefix(CHANNEL_PREFIX)
                    self._wake(job_id, message["data"].decode() if isinstance(message["data"], bytes) else "")
        finally:
            pubsub.close()
            client.close()

    def _wake_all(self) -> None:
        with self._lock:
            waiting = [watch for watches in self._watches.values() for watch in watches]
        for watch in waiting:
            watch.notify()

    def _wake(self, job_id: str, status: str = "") -> None:
        with self._lock:
            waiting = list(self._watches.get(job_id, ()))
        for watch in waiting:
            watch.notify(status)
