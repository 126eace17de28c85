"""Queue bindings on a real Redis: each job queue has its own exchange, and one message reaches one queue."""

from __future__ import annotations

from pathlib import Path

import redis
from celery import Celery
from kombu import Queue

from tensorq.core.routing import QUEUES
from tensorq.core.settings import Settings
from tests.conftest import make_settings
from worker.celery_app import make_celery, remove_stale_bindings
from worker.main import node_name


def _lengths(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    lists = [k for k in client.keys("*") if client.type(k) == b"list"]
    return {queue: sum(client.llen(k) for k in lists if k.decode().startswith(queue)) for queue in QUEUES}


def _declare(app: Celery, queues: list[Queue]) -> None:
    with app.connection_for_write() as conn:
        for queue in queues:
            queue(conn.default_channel).declare()


def _settings(tmp_path: Path, redis_url: str) -> Settings:
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", broker_url=redis_url)


def test_a_message_sent_by_exchange_and_routing_key_reaches_only_that_queue(tmp_path: Path, redis_url: str) -> None:
    app = make_celery(_settings(tmp_path, redis_url))
    assert {(q.name, q.exchange.name, q.routing_key) for q in app.conf.task_queues} == {(q, q, q) for q in QUEUES}
    _declare(app, list(app.conf.task_queues))
    for n, queue in enumerate(QUEUES, start=1):
        app.send_task("tensorq.nothing", args=["x"], exchange=queue, routing_key=queue)
        lengths = _lengths(redis_url)
        assert lengths[queue] == 1, (queue, lengths)
        assert sum(lengths.values()) == n


def test_stale_bindings_of_older_releases_are_removed(tmp_path: Path, redis_url: str) -> None:
    settings = _settings(tmp_path, redis_url)
    old = Celery("old", broker=settings.broker_url)
    # How earlier releases declared the queues: no exchange, so every one landed on exchange/key "predict".
    old.conf.update(task_default_queue="predict", task_queues=[Queue(name) for name in QUEUES])
    _declare(old, list(old.amqp.queues.values()))
    app = make_celery(settings)
    _declare(app, list(app.conf.task_queues))
    app.send_task("tensorq.nothing", args=["x"], exchange="predict", routing_key="predict")
    assert _lengths(redis_url) == {"train": 1, "predict": 1, "explain": 1}  # the bug: three copies

    removed = remove_stale_bindings(app)
    assert sorted(removed) == ["predict/predict -> explain", "predict/predict -> train"]
    assert remove_stale_bindings(app) == []
    app.send_task("tensorq.nothing", args=["x"], exchange="predict", routing_key="predict")
    assert _lengths(redis_url) == {"train": 1, "predict": 2, "explain": 1}


def test_node_names_are_unique_per_worker_process() -> None:
    import os

    assert node_name("none") == f"tensorq-cpu-{os.getpid()}@%h"
    assert node_name("1") == f"tensorq-gpu1-{os.getpid()}@%h"
    assert node_name("0", "tensorq-gpu0") == "tensorq-gpu0@%h"
    assert node_name("0", "w1@box") == "w1@box"
