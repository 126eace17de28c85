"""Finding out within seconds that the broker forgot its messages (a flush, a restart without its AOF, or from a
snapshot older than its last messages), so that the reaper publishes the queued jobs again at once instead of
after ``publish_grace_s``.

The sign is a marker key in the broker's Redis holding the server's ``run_id`` (``INFO server``): a Redis that
lost its data has lost the marker too, and a restarted one has a new ``run_id``. One atomic script reads and
sets it, so of all the workers that check, exactly one sees each change and does the refill.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from celery import Celery

from tensorq.core.routing import broker_queue

log = logging.getLogger(__name__)

# 1 when the marker was missing or held another run_id (it now holds this one), else 0.
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class Marker(Protocol):
    """The broker's memory of this stack (``BrokerMarker`` over Redis)."""

    def forgot(self) -> bool:
        """True once per loss of the broker's data, to one caller of all that share the broker."""

    def clear(self) -> None:
        """Delete the marker, so that the next check reports a loss again (a refill that did not finish)."""


class BrokerMarker:
    """The marker key in a Celery app's Redis broker (never a loss off Redis)."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        settings = getattr(app.conf, "tensorq_settings", None)
        self.key = broker_queue("tensorq.broker-marker", settings.queue_prefix if settings is not None else "")

    def forgot(self) -> bool:
        """Whether the marker was missing or named another run of the server; it names this one afterwards."""
        with self._app.connection_for_write() as conn:
            if conn.transport.driver_type != "redis":
                return False
            client = conn.default_channel.client
            run_id = client.info("server")["run_id"]
            return bool(client.eval(_SWAP, 1, self.key, run_id))

    def clear(self) -> None:
        """Delete the marker."""
        with self._app.connection_for_write() as conn:
            if conn.transport.driver_type == "redis":
                conn.default_channel.client.delete(self.key)


class BrokerWatch:
    """Checks the marker every ``interval_s`` in a daemon thread and calls ``refill`` when the broker forgot."""

    def __init__(self, marker: Marker, refill: Callable[[], list[str]], interval_s: float) -> None:
        self.marker = marker
        self.refill = refill
        self.interval_s = interval_s
        self._stop = threading.Event()

    def check(self) -> list[str] | None:
        """One check: the jobs re-published when the broker forgot, else None. A refill that fails clears the
        marker, so the next check (this worker's or another's) tries again."""
        if not self.marker.forgot():
            return None
        log.warning("the broker lost its marker (flushed or restarted without its data): re-publishing queued jobs")
        try:
            return self.refill()
        except Exception:
            self.marker.clear()
            raise

    def start(self) -> BrokerWatch:
        """Check every ``interval_s`` until stopped."""
        threading.Thread(target=self._loop, name="tensorq-broker-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop the loop."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - broker or database down: the next check tries again
                log.warning("broker check failed", exc_info=True)
