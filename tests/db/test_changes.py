"""Job change signals on the real test Redis: committed transitions wake long-polls; polling remains the fallback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from api.longpoll import read_when_changed
from db.changes import ChangeListener, ChangeSignal
from db.database import Database
from db.jobs import NewJob
from tensorq.core.settings import Settings


@pytest.fixture
def listener(settings: Settings) -> ChangeListener:
    """A change listener on the Redis the test database signals to, subscribed."""
    changes = ChangeListener(settings.broker_url)
    with changes.watch("warm-up"):
        assert changes.connected.wait(10), "the listener never subscribed"
    return changes


def _job(db: Database) -> str:
    return db.jobs.submit(NewJob(db.keys.ensure_tenant("acme"), "predict", {})).job.id


class SelectCounter:
    """Counts the SELECT statements an engine runs while in the block."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine
        self.selects = 0

    def _count(self, *args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("SELECT"):
            self.selects += 1

    def __enter__(self) -> SelectCounter:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


@pytest.mark.redis
def test_each_committed_transition_wakes_the_jobs_watches_only(db: Database, listener: ChangeListener) -> None:
    job_id, other = _job(db), _job(db)
    with listener.watch(job_id) as watch, listener.watch(other) as bystander:
        claim = db.jobs.claim(job_id, "w1")
        assert claim is not None
        assert watch.wait(10)
        assert db.jobs.report_progress(job_id, claim.lease_token, {"epoch": 1})
        assert watch.wait(10)
        assert db.jobs.finish(job_id, claim.lease_token, {"ok": True})
        assert watch.wait(10)
        assert not bystander.wait(0.2)


@pytest.mark.redis
def test_a_long_poll_reads_the_row_again_only_when_signalled(db: Database, listener: ChangeListener) -> None:
    job_id = _job(db)
    tenant = db.jobs.get_any(job_id).tenant_id
    with listener.watch(job_id) as claimed:  # let the claim's own signal arrive before the long-poll starts
        claim = db.jobs.claim(job_id, "w1")
        assert claim is not None
        assert claimed.wait(10)
    finisher = threading.Timer(0.5, lambda: db.jobs.finish(job_id, claim.lease_token, {"ok": True}))
    with SelectCounter(db) as counter:
        finisher.start()
        job = read_when_changed(db.jobs, listener, tenant, job_id, wait_s=30)
    finisher.join()
    assert job.status == "succeeded"
    assert job.result == {"ok": True}
    # The first read and the one after the signal; polling every 20-250 ms would have read 5 times or more.
    assert counter.selects == 2


@pytest.mark.redis
def test_a_claims_signal_names_running_and_a_finish_does_not(db: Database, listener: ChangeListener) -> None:
    job_id = _job(db)
    with listener.watch(job_id) as watch:
        claim = db.jobs.claim(job_id, "w1")
        assert claim is not None
        assert watch.wait(10)
        assert watch.only_unfinished()  # the claim: the job cannot have ended through it
        assert db.jobs.finish(job_id, claim.lease_token, {"ok": True})
        assert watch.wait(10)
        assert not watch.only_unfinished()
        assert not watch.only_unfinished()  # nothing heard since: not "only unfinished" either


@pytest.mark.redis
def test_a_long_poll_until_finished_does_not_read_the_row_at_the_claim(
    db: Database, settings: Settings, listener: ChangeListener
) -> None:
    job_id = _job(db)
    tenant = db.jobs.get_any(job_id).tenant_id
    worker_db = Database(settings)  # the worker's own engine: its statements are not counted

    def run() -> None:
        claim = worker_db.jobs.claim(job_id, "w1")
        assert claim is not None
        threading.Event().wait(0.3)
        worker_db.jobs.finish(job_id, claim.lease_token, {"ok": True})

    worker = threading.Timer(0.3, run)
    try:
        with SelectCounter(db) as counter:
            worker.start()
            job = read_when_changed(db.jobs, listener, tenant, job_id, wait_s=30, until_finished=True)
        worker.join()
    finally:
        worker_db.dispose()
    assert job.status == "succeeded"
    # The first read and the one after the finish's signal; the claim's signal said "running".
    assert counter.selects == 2


def test_without_signals_a_long_poll_falls_back_to_polling(db: Database) -> None:
    job_id = _job(db)
    tenant = db.jobs.get_any(job_id).tenant_id
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    finisher = threading.Timer(0.3, lambda: db.jobs.finish(job_id, claim.lease_token, {"ok": True}))
    finisher.start()
    job = read_when_changed(db.jobs, None, tenant, job_id, wait_s=30)
    finisher.join()
    assert job.status == "succeeded"


def test_a_signal_to_an_unreachable_redis_is_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    signal = ChangeSignal("redis://127.0.0.1:1/0")
    with caplog.at_level(logging.DEBUG, logger="db.changes"):
        assert signal("some-job") is None  # refused: no error raised
        assert signal("some-job") is None  # and the next one is skipped without trying
    assert [r.getMessage() for r in caplog.records] == ["change signal for job some-job not sent"]


@pytest.fixture
def unreachable_broker_db(tmp_path: object, sqlite_url: str) -> Iterator[Database]:
    """A database whose change signals go to a Redis that is not there."""
    from db.migrate import upgrade
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, sqlite_url, broker_url="redis://127.0.0.1:1/0")  # type: ignore[arg-type]
    upgrade(settings.database_url)
    database = Database(settings)
    yield database
    database.dispose()


def test_transitions_commit_when_signals_cannot_be_sent(unreachable_broker_db: Database) -> None:
    db = unreachable_broker_db
    job_id = _job(db)
    claim = db.jobs.claim(job_id, "w1")
    assert claim is not None
    assert db.jobs.finish(job_id, claim.lease_token, {"ok": True})
    assert db.jobs.get_any(job_id).status == "succeeded"


@pytest.mark.redis
def test_every_waiting_reader_is_woken_when_the_listener_loses_redis_and_again_when_it_is_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.services import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        changes = ChangeListener(server.url)
        with changes.watch("job-a") as a, changes.watch("job-b") as b:
            assert changes.connected.wait(10), "the listener never subscribed"
            a.wait(0.5)  # a wake from the first subscription, if any, is not what this test is about
            b.wait(0.5)
            server.stop()  # signals sent now would be lost: every reader must read again, then poll
            assert a.wait(30)
            assert b.wait(30)
            assert not changes.connected.is_set()
            server.start()
            assert changes.connected.wait(30), "the listener never subscribed again"
            assert a.wait(10)  # subscribed again: signals sent meanwhile are lost, so each reads once more
            assert b.wait(10)
            assert not a.only_unfinished()  # a wake that names no status: the reader reads the row
    finally:
        server.stop()
