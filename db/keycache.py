"""A short-lived memory of checked API keys: a request's key is then read from the database at most once per
``ttl_s`` per process. Entries are keyed by a hash of the whole key (never the key itself)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from db.records import Principal

MAX_KEYS = 4096


def key_digest(key: str) -> str:
    """The cache's name for a presented key (a SHA-256 of all of it, secret included)."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyCache:
    """Principals of keys checked within ``ttl_s``, the oldest dropped past ``max_keys``; thread-safe."""

    def __init__(self, ttl_s: float, max_keys: int = MAX_KEYS) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, digest: str) -> Principal | None:
        """The principal checked under ``digest`` within ``ttl_s``, else None."""
        if self.ttl_s <= 0:
            return None
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if time.monotonic() - entry[0] >= self.ttl_s:
                del self._entries[digest]
                return None
            return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        """Remember ``principal`` under ``digest`` from now."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[digest] = (time.monotonic(), principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)

    def forget_key(self, key_id: str) -> None:
        """Drop every entry of the key ``key_id`` (it was revoked)."""
        with self._lock:
            for digest in [d for d, (_at, who) in self._entries.items() if who.key_id == key_id]:
                del self._entries[digest]
