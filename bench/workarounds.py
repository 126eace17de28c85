"""Work-arounds for core bugs that would stop the bench, each enabled only when a probe shows the bug.

``db/keys.py`` ``KeyStore.authenticate``: once a key's ``last_used_at`` is more than a minute old, the
``UPDATE api_keys ... WHERE last_used_at < :now - 1 min`` runs with SQLAlchemy's default
``synchronize_session="auto"``, which evaluates the WHERE clause in Python against the loaded row; on
SQLite that row holds a naive datetime and the bound value is aware, so it raises ``TypeError`` and
every ``/v1`` request with that key answers 500 from one minute after its first use on. Until that is
fixed, the bench keeps its keys' ``last_used_at`` fresh from a thread (one tiny UPDATE every 15 s), so
the failing branch is never taken.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from db.database import Database
from db.keys import split_key
from db.models import ApiKey, utcnow


def key_last_used_bug(db: Database) -> bool:
    """Whether authenticating a key last used two minutes ago fails (probed with a throw-away key)."""
    key = db.keys.create("bench-probe")
    db.keys.authenticate(key)
    key_id, _ = split_key(key)
    with db.engine.begin() as conn:
        stale = utcnow() - timedelta(minutes=2)
        conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=stale))
    try:
        db.keys.authenticate(key)
    except TypeError:
        return True
    finally:
        db.keys.revoke(key_id)
    return False


class FreshKeys:
    """A daemon thread that sets ``last_used_at = now`` on the tenant's keys every ``interval_s``."""

    def __init__(self, db: Database, tenant_id: str, interval_s: float = 15.0) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-fresh-keys", daemon=True)

    def _touch(self) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(update(ApiKey).where(ApiKey.tenant_id == self.tenant_id).values(last_used_at=utcnow()))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._touch()
            except Exception:  # noqa: BLE001 - a busy database: try again next round
                pass

    def start(self) -> FreshKeys:
        """Touch the keys now, then every ``interval_s``."""
        self._touch()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join(timeout=5)
