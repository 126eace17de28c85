"""Retries with exponential backoff for transient errors (database or broker unavailable) only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tensorq.core.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
# Tries of a call without its own count: the process's setting (``db_retry_attempts``), set by ``configure``.
_attempts = 8


def configure(attempts: int) -> None:
    """Set the tries of every ``with_backoff`` call that names none (a worker child does, from its settings)."""
    global _attempts
    _attempts = attempts


def budget_s(attempts: int, base_s: float = 0.5, cap_s: float = 8.0) -> float:
    """Seconds ``attempts`` tries wait in all between them (8 tries: 31.5 s)."""
    return sum(min(base_s * 2**i, cap_s) for i in range(attempts - 1))


def with_backoff(
    fn: Callable[[], T], *, attempts: int | None = None, base_s: float = 0.5, cap_s: float = 8.0, what: str = "call"
) -> T:
    """``fn()``, retried on ``Unavailable`` with delays base, 2*base, ... capped at ``cap_s``; other errors pass."""
    attempts = attempts or _attempts
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
