"""CeleryPublisher on a real Redis: its messages carry what Celery's own ``send_task`` would put in them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from db.records import JobRecord
from tensorq.core.settings import Settings
from worker.celery_app import make_celery
from worker.publisher import CeleryPublisher

pytestmark = pytest.mark.redis

# Fields that differ between any two messages (ids, the sending process, the transport's delivery tag).
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "origin", "argsrepr", "kwargsrepr", "reply_to"}


def _job(job_type: str, priority: int = 5) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=str(uuid.uuid4()), tenant_id="t", type=job_type, status="queued", spec={}, progress=None, result=None,
        error=None, priority=priority, attempts=0, max_attempts=3, timeout_s=None, cancel_requested=False, revision=0,
        created_at=now, started_at=None, finished_at=None,
    )  # fmt: skip


def _messages(url: str) -> dict[str, dict[str, Any]]:
    """Every message waiting in any list of the Redis, by task id."""
    client = redis.Redis.from_url(url)
    found = {}
    for key in client.keys("*"):
        if client.type(key) == b"list":
            for raw in client.lrange(key, 0, -1):
                message = json.loads(raw)
                found[message["headers"]["id"]] = {**message, "queue": key.decode().split("\x06")[0]}
    return found


def _shape(message: dict[str, Any]) -> dict[str, Any]:
    """A message without its per-message values."""
    headers = {k: v for k, v in message["headers"].items() if k not in PER_MESSAGE}
    properties = {k: v for k, v in message["properties"].items() if k not in PER_MESSAGE}
    return {"headers": headers, "properties": properties, "body": message["body"], "queue": message["queue"]}


def test_published_messages_match_celerys_own(redis_url: str, tmp_path: Path) -> None:
    app = make_celery(Settings(broker_url=redis_url, artifact_dir=tmp_path))
    publisher = CeleryPublisher(app)
    single, train, predict = _job("predict"), _job("train", priority=2), _job("predict")
    publisher.publish(single)
    publisher.publish_many([train, predict])
    reference = _job("predict")
    app.send_task("tensorq.run_job", args=[reference.id], task_id=reference.id, queue="predict", priority=5)
    messages = _messages(redis_url)
    assert set(messages) == {single.id, train.id, predict.id, reference.id}
    for job in (single, train, predict):
        headers = messages[job.id]["headers"]
        assert (headers["task"], headers["id"]) == ("tensorq.run_job", job.id)
        assert (headers["argsrepr"], headers["kwargsrepr"]) == (f"['{job.id}']", "{}")  # Celery's saferepr
        assert messages[job.id]["queue"] == job.type
        assert messages[job.id]["properties"]["priority"] == job.priority
    # The same message Celery sends by itself, apart from the ids (and the body, which holds the id).
    ours, celerys = _shape(messages[predict.id]), _shape(messages[reference.id])
    assert {**ours, "body": None} == {**celerys, "body": None}
    app.close()
