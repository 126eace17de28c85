"""Engines and the one managed session scope used everywhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, bindparam, create_engine, event, make_url, update
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.models import Tenant
from tensorq.core.errors import Unavailable


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and a created parent folder."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if make_url(url).get_driver_name() == "psycopg":
        # No server-side prepared statements (psycopg prepares a statement on its 5th run): Postgres would then
        # keep the generic plan it made while a table was small, a sequential scan, until the next ANALYZE
        # (1 M jobs later, a /metrics scrape took 0.9 s), and a generic plan of `status = $1` never uses the
        # partial status indexes. Each statement is planned for its values and the table as it is now.
        connect_args["prepare_threshold"] = None
    engine = create_engine(url, pool_size=5, max_overflow=10, connect_args=connect_args)
    ping_when_idle(engine, PING_IDLE_S)
    return engine


# A pooled connection idle this long is pinged at its checkout (issue 26): one checked in under a second ago
# is used as it is, so a request's scopes cost no ping round trip each (``pool_pre_ping`` pinged every checkout).
PING_IDLE_S = 1.0


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Ping a connection at checkout only when it was idle in the pool over ``idle_s``; a dead one is replaced
    (the pool reconnects on ``DisconnectionError``). A connection that dies under a hot path fails its
    statement instead (``Unavailable``), and SQLAlchemy then drops every pooled connection of that engine."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < idle_s:
            return  # new (just connected) or recently used
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means the connection is not usable
            raise DisconnectionError("pooled connection lost") from exc


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` that keeps loaded values after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, always close.

    A lost or refused database connection surfaces as ``Unavailable``.
    """
    session = factory()
    try:
        with _unavailable_when_disconnected():
            yield session
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def _unavailable_when_disconnected() -> Iterator[None]:
    """Raise a lost or refused database connection as ``Unavailable``."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise Unavailable("database unavailable", details={"service": "database"}) from exc


@contextmanager
def read_scope(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """A plain connection for hot reads (no ORM session); ``Unavailable`` like ``session_scope``.

    On a server database each read runs in autocommit: one statement is its own snapshot, and the
    BEGIN and ROLLBACK round trips around it are saved (SQLite never opens a transaction for a read).
    """
    engine: Engine = factory.kw["bind"]
    with _unavailable_when_disconnected(), engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


@contextmanager
def write_scope(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """One transaction on a plain connection (no ORM session): committed on success, else rolled back."""
    engine: Engine = factory.kw["bind"]
    with _unavailable_when_disconnected(), engine.begin() as connection:
        yield connection


# Built once: it runs in every submit and claim.
_LOCK_TENANT = update(Tenant).where(Tenant.id == bindparam("tenant_id")).values(name=Tenant.name)


def lock_tenant(conn: Connection, tenant_id: str) -> None:
    """Hold the tenant's row until the transaction ends: count-then-insert quotas are then atomic per tenant.

    A no-op UPDATE takes the row lock on Postgres and, as the transaction's first write, SQLite's write
    lock (waiting under its busy timeout) before anything is counted, so the count that follows is current.
    """
    conn.execute(_LOCK_TENANT, {"tenant_id": tenant_id})


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched: a session types its result as ``Result``, whose cursor has the count."""
    return cast(CursorResult[Any], result).rowcount
