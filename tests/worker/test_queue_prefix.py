"""TENSORQ_QUEUE_PREFIX: two stacks sharing one Redis never take each other's jobs (real Redis, real messages)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery import Celery

from db.records import JobRecord
from tensorq.core.routing import broker_queue
from tensorq.core.settings import Settings
from worker.celery_app import make_celery
from worker.publisher import CeleryPublisher

pytestmark = pytest.mark.redis


def _job(job_type: str) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=str(uuid.uuid4()), tenant_id="t", type=job_type, status="queued", spec={}, progress=None, result=None,
        error=None, priority=5, attempts=0, max_attempts=3, timeout_s=None, cancel_requested=False, revision=0,
        created_at=now, started_at=None, finished_at=None,
    )  # fmt: skip


def _consume(app: Celery) -> list[str]:
    """Every task id waiting in the queues a worker of ``app`` subscribes to, acknowledged."""
    received: list[str] = []

    def take(_body: object, message) -> None:  # type: ignore[no-untyped-def]
        received.append(message.headers["id"])
        message.ack()

    with app.connection_for_read() as conn:
        with conn.Consumer(list(app.amqp.queues.values()), callbacks=[take], accept=["json"]):
            try:
                while True:
                    conn.drain_events(timeout=1)
            except TimeoutError:
                pass
    return received


def test_broker_queue_names() -> None:
    assert broker_queue("train") == "train"
    assert broker_queue("train", "staging") == "staging.train"
    assert broker_queue("train", "staging-") == "staging-train"


def test_prefix_setting_is_checked() -> None:
    with pytest.raises(ValueError):
        Settings(queue_prefix="has space")


def test_two_stacks_on_one_redis_never_take_each_others_jobs(redis_url: str, tmp_path: Path) -> None:
    apps = {
        prefix: make_celery(Settings(broker_url=redis_url, artifact_dir=tmp_path / prefix, queue_prefix=prefix))
        for prefix in ("blue", "green")
    }
    sent: dict[str, set[str]] = {prefix: set() for prefix in apps}
    for prefix, app in apps.items():
        publisher = CeleryPublisher(app)
        for job_type in ("train", "predict", "explain", "import"):
            job = _job(job_type)
            publisher.publish(job)
            sent[prefix].add(job.id)
        assert publisher.queue_depth("train") == 1
        assert publisher.queue_depth("predict") == 2  # imports share it
    try:
        assert set(_consume(apps["green"])) == sent["green"]
        assert set(_consume(apps["blue"])) == sent["blue"]
        # An unprefixed stack on the same Redis sees nothing of either.
        plain = make_celery(Settings(broker_url=redis_url, artifact_dir=tmp_path / "plain"))
        assert _consume(plain) == []
        plain.close()
    finally:
        for app in apps.values():
            app.close()


def test_publish_many_sends_every_message_in_one_pipeline_in_order(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    one_by_one: list[str] = []
    plain = redis.Redis.execute_command

    def record(self, *args, **options):  # type: ignore[no-untyped-def]
        one_by_one.append(str(args[0]).upper())
        return plain(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", record)  # a pipeline buffers its commands instead
    app = make_celery(Settings(broker_url=redis_url, artifact_dir=tmp_path / "a", queue_prefix="pipe"))
    jobs = [_job("predict") for _ in range(25)]
    try:
        CeleryPublisher(app).publish_many(jobs)
        assert "LPUSH" not in one_by_one
        assert _consume(app) == [job.id for job in jobs]
    finally:
        app.close()
