"""Refuses submissions with 503 while the broker is known to be down, before anything is written.

The first submission that finds the broker down is still accepted (its row is committed and the
reaper publishes it later); after that, new submissions get 503 with Retry-After until a probe,
made at most once per ``probe_interval_s``, reaches the broker again.
"""

from __future__ import annotations

import logging
import threading
import time

from tensorq.core.errors import Unavailable
from tensorq.core.routing import Publisher

log = logging.getLogger(__name__)


class BrokerGuard:
    """Remembers a failed publish and probes the broker before letting submissions through again."""

    def __init__(self, publisher: Publisher, probe_interval_s: float = 1.0) -> None:
        self._publisher = publisher
        self._probe_interval_s = probe_interval_s
        self._down = False
        self._last_probe = 0.0
        self._lock = threading.Lock()

    def mark_down(self) -> None:
        """Record that a publish just failed."""
        with self._lock:
            self._down = True
            self._last_probe = time.monotonic()

    def check(self) -> None:
        """Raise Unavailable (503) while the broker is down."""
        if not self._down:
            return
        with self._lock:
            if self._down and time.monotonic() - self._last_probe >= self._probe_interval_s:
                self._last_probe = time.monotonic()
                try:
                    self._publisher.ping()
                    self._down = False
                except Exception:  # noqa: BLE001 - still down, whatever the client library raised
                    log.info("broker probe failed; still refusing submissions", exc_info=True)
            if self._down:
                raise Unavailable("the broker is unavailable; retry later", details={"service": "broker"})
