"""API keys checked once per ``auth_cache_s``: a good key is remembered, a revoke forgets it at once in the process
that revoked it and after the cache's time in another, a refused key is never remembered."""

from __future__ import annotations

import time

import pytest

from db.database import Database
from tensorq.core.errors import Unauthorized
from tensorq.core.settings import Settings


def _statements(db: Database) -> list[str]:
    from sqlalchemy import event

    seen: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def test_a_checked_key_is_not_read_again_within_the_cache_time(settings: Settings, db: Database) -> None:
    api = Database(settings.model_copy(update={"auth_cache_s": 60.0}))
    try:
        key = api.keys.create("acme")
        first = api.keys.authenticate(key)
        seen = _statements(api)
        assert api.keys.authenticate(key) == first
        assert seen == []
        with pytest.raises(Unauthorized):  # the same id with another secret is read and refused
            api.keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
        assert len(seen) == 1
        api.keys.revoke(first.key_id)  # this process revoked it: forgotten at once
        with pytest.raises(Unauthorized):
            api.keys.authenticate(key)
    finally:
        api.dispose()


def test_a_key_revoked_elsewhere_is_refused_after_the_cache_time(settings: Settings, db: Database) -> None:
    api = Database(settings.model_copy(update={"auth_cache_s": 0.3}))
    try:
        key = db.keys.create("acme")
        principal = api.keys.authenticate(key)
        db.keys.revoke(principal.key_id)  # another process (the CLI) revokes it
        assert api.keys.authenticate(key) == principal  # still remembered
        time.sleep(0.4)
        with pytest.raises(Unauthorized):
            api.keys.authenticate(key)
        with pytest.raises(Unauthorized):  # a refusal is not remembered as good either
            api.keys.authenticate(key)
    finally:
        api.dispose()


def test_no_cache_reads_the_key_on_every_request(settings: Settings, db: Database) -> None:
    api = Database(settings.model_copy(update={"auth_cache_s": 0.0}))
    try:
        key = api.keys.create("acme")
        api.keys.authenticate(key)
        seen = _statements(api)
        api.keys.authenticate(key)
        assert len(seen) == 1
    finally:
        api.dispose()
