"""Job messages a consumer took but never acknowledged, as kombu's Redis transport keeps them, and putting
them back in their queue.

With ``task_acks_late`` kombu moves each delivered message into the ``unacked`` hash (delivery tag ->
``[payload, exchange, routing_key]``) and the ``unacked_index`` sorted set (delivery tag -> the time it was
delivered) in the consumer's process, and deletes both entries when the task acknowledges. A worker killed
outright leaves its entries there until ``visibility_timeout`` (a week): nothing in them names the consumer,
so the reaper asks only for messages delivered before a worker it knows is gone stopped heartbeating.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Protocol

from celery import Celery

from tensorq.core.routing import QUEUES, broker_queue

log = logging.getLogger(__name__)

MOST = 1000  # entries read in one pass (workers hold at most their concurrency each)


@dataclass(frozen=True)
class Held:
    """One unacknowledged job message: its delivery tag, its job and when it was delivered (epoch seconds)."""

    tag: str
    job_id: str
    delivered_at: float


class Unacked(Protocol):
    """The broker's unacknowledged job messages (``UnackedMessages`` over Redis)."""

    def held_before(self, when: float) -> list[Held]:
        """Job messages delivered before ``when`` (epoch seconds) and not acknowledged since."""

    def restore(self, tag: str) -> None:
        """Put the message back at the head of its queue (a no-op when it was acknowledged meanwhile)."""


class UnackedMessages:
    """Reads and restores the job messages a Celery app's Redis broker holds unacknowledged."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        settings = getattr(app.conf, "tensorq_settings", None)
        prefix = settings.queue_prefix if settings is not None else ""
        # Only this stack's job queues: another stack on the same Redis keeps its entries in the same hash.
        self._queues = {broker_queue(queue, prefix) for queue in QUEUES}

    def held_before(self, when: float) -> list[Held]:
        """Job messages of this stack's queues delivered before ``when`` and not acknowledged ([] off Redis)."""
        with self._app.connection_for_read() as conn:
            if conn.transport.driver_type != "redis":
                return []
            channel = conn.default_channel
            client = channel.client
            index = client.zrange(
                channel.unacked_index_key, "-inf", when, byscore=True, offset=0, num=MOST, withscores=True
            )
            if not index:
                return []
            with client.pipeline() as pipe:  # HGETs, not one HMGET: kombu adds a global_keyprefix to HGET only
                for tag, _score in index:
                    pipe.hget(channel.unacked_key, tag)
                entries = pipe.execute()
        held: list[Held] = []
        for (tag, score), entry in zip(index, entries, strict=True):
            job_id = self._job_of(entry)
            if job_id is not None:
                held.append(Held(tag=_text(tag), job_id=job_id, delivered_at=float(score)))
        return held

    def restore(self, tag: str) -> None:
        """Move the message from ``unacked`` back to the consuming end of its queue, as kombu restores one
        (one Redis transaction that watches the hash: restoring twice pushes it once)."""
        with self._app.connection_for_write() as conn:
            conn.default_channel.qos.restore_by_tag(tag)

    def _job_of(self, entry: bytes | str | None) -> str | None:
        """The job id (the Celery task id) of an ``unacked`` entry of this stack's job queues, else None."""
        if entry is None:
            return None
        try:
            payload, exchange, routing_key = json.loads(_text(entry))
            job_id = payload["headers"]["id"]
        except (ValueError, TypeError, KeyError):
            log.debug("an unacked entry that is not a job message: %.200r", entry)
            return None
        # Celery sends through the default exchange ("") with the queue's name as the routing key.
        return str(job_id) if {exchange, routing_key} & self._queues else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
