"""Shared fixtures: real SQLite and Postgres databases, the test Redis, the API with an injected publisher."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from db.database import Database
from db.migrate import upgrade
from db.records import JobRecord
from tensorq.core.settings import Settings
from tests.parallel import group_of, rank_of
from tests.services import S3_KEY, S3_SECRET, RedisServer, S3Server, free_port

# Tests use a redis-server of their own (started on a free port) and their own Postgres databases.
PG_ADMIN_URL = os.environ.get("TENSORQ_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = os.environ.get("TENSORQ_TEST_PG_DATABASE", "tensorq_test")
# Under pytest-xdist each worker is its own session (gw0, gw1, ...): its databases carry its name.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# In CI every service must be there: a missing one fails the run instead of skipping tests.
REQUIRE_SERVICES = os.environ.get("TENSORQ_TEST_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (tests/parallel.py): group the tests that must share a worker, hand out the long ones first."""
    for item in items:
        fixtureinfo = getattr(item, "_fixtureinfo", None)
        defs = fixtureinfo.name2fixturedefs.values() if fixtureinfo is not None else []
        group = group_of(item.nodeid, (chain[-1].scope for chain in defs if chain))
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            if getattr(config.option, "loadgroup", False) and "@" not in item.nodeid:
                # xdist 3.8 names the group in the node id by setting `_nodeid`, which pytest 9.2 no longer reads
                # (the id is `_id`): without this every group would be split test by test.
                item._id = type(item.id).parse(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]
    if hasattr(config, "workerinput"):  # only in an xdist worker: a plain run keeps the file order
        items.sort(key=lambda item: rank_of(item.nodeid))


SECRET_IN_LOG = re.compile(r"tq_[0-9a-f]{16}_[A-Za-z0-9_-]{20,}|Bearer\s+tq_|Authorization:\s*Bearer\s+tq_")


@pytest.fixture(autouse=True)
def _no_secret_in_any_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test's log lines, at INFO and above, are checked for API keys and Authorization headers."""
    caplog.set_level(logging.INFO)
    yield
    leaked = [r.getMessage() for r in caplog.records if SECRET_IN_LOG.search(r.getMessage())]
    assert leaked == [], "an API key or Authorization header reached the logs"


def _unavailable(what: str, exc: Exception) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required but unavailable: {exc}")
    pytest.skip(f"{what} unavailable: {exc}")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable Postgres server."""
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Postgres", exc)
    return PG_ADMIN_URL


class DatabaseDropper:
    """Drops the tests' Postgres databases in a thread of its own: DROP DATABASE waits for a checkpoint (seconds on a
    busy disk) that no test needs to wait for; ``close()`` waits until every one is gone and fails if one is not."""

    def __init__(self, admin_url: str) -> None:
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.failures: list[str] = []
        self._names: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="drop-test-databases", daemon=True)
        self._thread.start()

    def drop(self, name: str) -> None:
        """Drop ``name`` soon (its connections are closed by force)."""
        self._names.put(name)

    def _run(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                with self.engine.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as exc:  # noqa: BLE001 - reported by close()
                self.failures.append(f"{name}: {exc}")

    def close(self) -> None:
        """Wait for the drops asked so far, then stop."""
        self._names.put(None)
        self._thread.join()
        self.engine.dispose()
        assert self.failures == [], "test databases left behind:\n" + "\n".join(self.failures)


@pytest.fixture(scope="session")
def database_dropper(postgres_server: str) -> Iterator[DatabaseDropper]:
    """This session's (this xdist worker's) dropper of test databases."""
    dropper = DatabaseDropper(postgres_server)
    yield dropper
    dropper.close()


@pytest.fixture
def postgres_url(postgres_server: str, database_dropper: DatabaseDropper) -> Iterator[str]:
    """A fresh, empty Postgres database of the tests' own, dropped afterwards."""
    name = f"{PG_DATABASE}_{XDIST_WORKER}_{uuid.uuid4().hex[:8]}"
    with database_dropper.engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    database_dropper.drop(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own."""
    return f"sqlite:///{tmp_path / 'tensorq.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database the project supports, empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tensorq.sqlite3'}"
    return request.getfixturevalue("postgres_url")


_session_redis: list[RedisServer] = []


def session_redis_url() -> str:
    """A redis-server private to this test session, started on first use and stopped at exit."""
    if not _session_redis:
        server = RedisServer(Path(tempfile.mkdtemp(prefix="tensorq-test-redis-"))).start()
        atexit.register(server.stop)
        _session_redis.append(server)
    return _session_redis[0].url


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """An empty redis-server of this test's own."""
    try:
        server = RedisServer(tmp_path / "redis").start()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Redis", exc)
    yield server.url
    server.stop()


_session_s3: list[S3Server] = []


def session_s3() -> S3Server:
    """An ``rclone serve s3`` private to this test session, started on first use and stopped at exit."""
    if not _session_s3:
        try:
            server = S3Server(Path(tempfile.mkdtemp(prefix="tensorq-test-s3-"))).start()
        except Exception as exc:  # noqa: BLE001
            _unavailable("rclone serve s3", exc)
        atexit.register(server.stop)
        _session_s3.append(server)
    return _session_s3[0]


@pytest.fixture(params=["file", "s3"])
def store_fields(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """Settings fields of each artifact store: the test's folder (file://), or a fresh prefix of the session's
    S3 server; the local scratch and model cache folders are the test's own."""
    local = {"scratch_dir": tmp_path / "scratch", "model_cache_dir": tmp_path / "model-cache"}
    if request.param == "file":
        return local
    return {**local, **session_s3().settings(uuid.uuid4().hex[:12])}


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for a test: its own database and artifact folder."""
    values: dict[str, object] = {
        "database_url": database_url,
        "broker_url": session_redis_url(),
        "artifact_dir": tmp_path / "artifacts",
        "lease_s": 30.0,
        "heartbeat_s": 2.0,
        "reaper_interval_s": 2.0,
        "progress_min_interval_s": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def unreachable_store_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for a test whose S3 store nobody answers for (a free port; the test server's keys)."""
    values: dict[str, object] = {
        "artifact_url": f"s3://tensorq/{uuid.uuid4().hex[:8]}",
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
        "aws_access_key_id": S3_KEY,
        "aws_secret_access_key": S3_SECRET,
        "aws_region": "us-east-1",
        "store_timeout_s": 1.0,
        "scratch_dir": tmp_path / "scratch",
    }
    return make_settings(tmp_path, database_url, **{**values, **overrides})


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on each supported database."""
    return make_settings(tmp_path, database_url)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session (per xdist worker), for ``db`` to copy."""
    path = tmp_path_factory.mktemp("schema") / "migrated.sqlite3"
    upgrade(f"sqlite:///{path}")
    assert not path.with_name(path.name + "-wal").exists(), "the migrated file must be whole, its WAL checkpointed"
    return path


@pytest.fixture(scope="session")
def spoken_digits_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where builtin:spoken_digits is made once per session (per xdist worker): give it to workers as
    ``data_cache_dir``."""
    from ml import spoken_digits

    folder = tmp_path_factory.mktemp("data-cache")
    spoken_digits.clips(folder)
    return folder


@pytest.fixture
def db(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated database (a new SQLite file starts as a copy of ``migrated_sqlite``: upgrade finds it at head)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), url.database)
    upgrade(settings.database_url)
    database = Database(settings)
    yield database
    database.dispose()


class RecordingPublisher:
    """A publisher that records job ids instead of reaching a broker (a boundary we own, injected)."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.down = False
        self.depths: dict[str, int] = {}

    def publish(self, job: JobRecord, countdown: float | None = None) -> None:
        """Record the job, or fail like a broker that is down."""
        if self.down:
            raise ConnectionError("broker down")
        self.published.append(job.id)

    def publish_many(self, jobs: list[JobRecord]) -> None:
        """Record each job in order, or fail like a broker that is down."""
        for job in jobs:
            self.publish(job)

    def ping(self) -> None:
        """Fail when set down."""
        if self.down:
            raise ConnectionError("broker down")

    def queue_depth(self, queue: str) -> int | None:
        """Unknown while down, else as set by the test (default: nothing waits)."""
        return None if self.down else self.depths.get(queue, 0)


@pytest.fixture
def publisher() -> RecordingPublisher:
    """A fresh recording publisher."""
    return RecordingPublisher()


@pytest.fixture
def app(settings: Settings, db: Database, publisher: RecordingPublisher):  # type: ignore[no-untyped-def]
    """The API on a migrated database with a recording publisher."""
    from api.app import create_app
    from tests.openapi_check import DocumentCheck

    application = create_app(settings, database=db, publisher=publisher)
    application.testing = True
    # Every request and response of the API tests is checked against the OpenAPI document.
    check = DocumentCheck.install(application)
    yield application
    assert check.violations == [], "traffic that the OpenAPI document does not describe:\n" + "\n".join(
        check.violations
    )


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """A Flask test client."""
    return app.test_client()


@pytest.fixture
def key(db: Database) -> str:
    """An API key of tenant 'acme'."""
    return db.keys.create("acme")


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    """The Authorization header of tenant 'acme'."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def other_auth(db: Database) -> dict[str, str]:
    """The Authorization header of another tenant, 'globex'."""
    return {"Authorization": f"Bearer {db.keys.create('globex')}"}
