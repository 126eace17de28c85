"""A broker that forgot its messages is found within a check and refilled at once: the marker on a real Redis,
the refill on each database through the real publisher."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

import worker.reaper
from db.database import Database
from db.jobs import NewJob
from db.migrate import upgrade
from tests.conftest import RecordingPublisher, make_settings
from worker.broker_watch import BrokerMarker, BrokerWatch
from worker.celery_app import make_celery
from worker.publisher import CeleryPublisher
from worker.reaper import Reaper

pytestmark = pytest.mark.redis


def test_each_loss_is_reported_once_to_one_of_the_workers_that_check(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'unused.sqlite3'}", broker_url=redis_url)
    one, other = BrokerMarker(make_celery(settings)), BrokerMarker(make_celery(settings))
    client = redis.Redis.from_url(redis_url)
    try:
        assert [one.forgot(), other.forgot(), one.forgot()] == [True, False, False]  # a fresh Redis: no marker yet
        client.flushall()
        assert sorted([one.forgot(), other.forgot()]) == [False, True]
        assert [one.forgot(), other.forgot()] == [False, False]
        client.set(one.key, "the-run-before")  # restarted from a snapshot: the marker names the old run
        assert sorted([other.forgot(), one.forgot()]) == [False, True]
        one.clear()
        assert other.forgot()
        assert client.get(one.key) == client.info("server")["run_id"].encode()
    finally:
        client.close()


def test_the_marker_key_carries_the_queue_prefix(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'unused.sqlite3'}", broker_url=redis_url)
    staging = settings.model_copy(update={"queue_prefix": "staging"})
    assert BrokerMarker(make_celery(settings)).key == "tensorq.broker-marker"
    assert BrokerMarker(make_celery(staging)).key == "staging.tensorq.broker-marker"


def _queued(db: Database, count: int) -> list[str]:
    tenant = db.keys.ensure_tenant("acme")
    return [db.jobs.submit(NewJob(tenant, "train", {}), publishing=True).job.id for _ in range(count)]


def test_a_refill_republishes_only_what_the_broker_lost(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, database_url, publish_grace_s=3600.0)
    upgrade(settings.database_url)
    db = Database(settings)
    try:
        jobs = _queued(db, 5)
        publisher = RecordingPublisher()
        reaper = Reaper(settings, db, publisher)
        publisher.depths["train"] = 5  # restarted with its AOF: every message is still there
        assert reaper.refill() == []
        publisher.depths["train"] = 0  # flushed
        monkeypatch.setattr(worker.reaper, "REFILL_PAGE", 2)  # pages of 2: each job read and sent once
        assert sorted(reaper.refill()) == sorted(jobs)
        assert sorted(publisher.published) == sorted(jobs)
        assert reaper.run_once().republished == []  # all published just now: nothing left to the grace
    finally:
        db.dispose()


def test_a_flushed_broker_gets_every_queued_job_again_within_one_check(
    redis_url: str, tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, broker_url=redis_url, publish_grace_s=3600.0)
    upgrade(settings.database_url)
    db = Database(settings)
    app = make_celery(settings)
    publisher = CeleryPublisher(app)
    client = redis.Redis.from_url(redis_url)
    try:
        watch = BrokerWatch(BrokerMarker(app), Reaper(settings, db, publisher).refill, interval_s=1.0)
        assert watch.check() == []  # a fresh Redis: the first check refills, and nothing was lost
        jobs = _queued(db, 3)
        publisher.publish_many([db.jobs.get_any(job_id) for job_id in jobs])
        assert watch.check() is None
        client.flushall()
        assert publisher.queue_depth("train") is None
        assert sorted(watch.check() or []) == sorted(jobs)
        assert publisher.queue_depth("train") == 3
        assert watch.check() is None  # once per loss
    finally:
        client.close()
        db.dispose()


def test_a_refill_that_fails_leaves_the_loss_for_the_next_check(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'unused.sqlite3'}", broker_url=redis_url)
    marker = BrokerMarker(make_celery(settings))
    calls: list[int] = []

    def refill() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("broker down")
        return []

    watch = BrokerWatch(marker, refill, interval_s=1.0)
    with pytest.raises(ConnectionError):
        watch.check()
    assert watch.check() == []
    assert watch.check() is None
    assert len(calls) == 2
