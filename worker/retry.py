"""Retries with exponential backoff for transient errors (database or broker unavailable) only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tensorq.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_backoff(
    fn: Callable[[], T], *, attempts: int = 8, base_s: float = 0.5, cap_s: float = 8.0, what: str = "call"
) -> T:
    """``fn()``, retried on ``Unavailable`` with delays base, 2*base, ... capped at ``cap_s``; other errors pass."""
    delay = base_s
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Unavailable:
            if attempt == attempts:
                raise
            log.warning("%s: service unavailable (attempt %d/%d); retrying in %.1f s", what, attempt, attempts, delay)
            time.sleep(delay)
            delay = min(delay * 2, cap_s)
    raise AssertionError("unreachable")
