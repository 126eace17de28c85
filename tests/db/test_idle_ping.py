"""A pooled Postgres connection is pinged at checkout only after it idled (``db.session.ping_when_idle``): a hot
checkout costs no round trip, and a connection the server dropped while idle is replaced, not failed on."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, text

from db.database import Database
from db.session import PING_IDLE_S


@pytest.fixture
def pg(db: Database) -> Database:
    if db.engine.dialect.name == "sqlite":
        pytest.skip("a SQLite file has no server to lose")
    return db


def _pings(db: Database) -> list[object]:
    pinged: list[object] = []
    real = db.engine.dialect.do_ping
    db.engine.dialect.do_ping = lambda conn: pinged.append(conn) or real(conn)  # type: ignore[method-assign]
    return pinged


def test_a_hot_checkout_is_not_pinged(pg: Database) -> None:
    pg.ping()
    pinged = _pings(pg)
    for _ in range(5):
        pg.ping()
    assert pinged == []


def test_a_connection_dropped_while_idle_is_replaced(pg: Database) -> None:
    other = pg.engine.connect()
    with pg.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    # Another connection kills the pooled one, as a server restart would; then it is gone itself.
    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.invalidate()
    pinged = _pings(pg)
    time.sleep(PING_IDLE_S + 0.2)
    connects: list[object] = []
    event.listen(pg.engine, "connect", lambda *args: connects.append(args))
    with pg.engine.connect() as conn:  # the idle one is pinged, found dead and replaced
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    assert pinged
    assert connects
