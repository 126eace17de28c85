"""Hands job ids to the broker by task name (the outbox's second half)."""

from __future__ import annotations

import logging

from celery import Celery
from kombu import Producer

from db.records import JobRecord
from tensorq.core.routing import Publisher, broker_queue, route_for

log = logging.getLogger(__name__)
__all__ = ["CeleryPublisher", "Publisher"]


class CeleryPublisher:
    """Publishes through a Celery app's producer pool, by task name only."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def publish(self, job: JobRecord, countdown: float | None = None) -> None:
        """Send ``job.id`` to the job type's queue with the job's priority; the Celery task id is the job id.
        The message and its ``task-sent`` event go out together (on Redis one pipelined round trip)."""
        self.publish_many([job], countdown)

    def publish_many(self, jobs: list[JobRecord], countdown: float | None = None) -> None:
        """Send each job's message, in order, through one producer; on Redis the pushes go out as one pipeline
        (kombu's ``Producer.batch``: other transports publish each at once). Each queue is declared once."""
        with self._app.producer_or_acquire() as producer, producer.batch():
            for name in sorted({self._queue(route_for(job.type).queue) for job in jobs}):
                producer.maybe_declare(self._app.amqp.queues[name])  # kombu remembers it per connection
            for job in jobs:
                self._send(job, producer, countdown)

    def _send(self, job: JobRecord, producer: Producer, countdown: float | None) -> None:
        """One job's message, its queue already declared."""
        route = route_for(job.type)
        self._app.send_task(
            route.task,
            args=[job.id],
            producer=producer,
            task_id=job.id,
            queue=self._queue(route.queue),
            priority=job.priority,
            countdown=countdown,
            # A hard backstop behind the cooperative timeout check; the reaper then fails the job.
            time_limit=job.timeout_s + 60 if job.timeout_s else None,
            retry=False,
            declare=(),
            # What Celery's safe repr of the arguments gives, without its cost (Celery also copies both into
            # the message's properties, as for any task sent with them).
            argsrepr=f"[{job.id!r}]",
            kwargsrepr="{}",
        )

    def _queue(self, queue: str) -> str:
        """The broker's name of ``queue`` under the app's ``queue_prefix``."""
        settings = getattr(self._app.conf, "tensorq_settings", None)
        return broker_queue(queue, settings.queue_prefix if settings is not None else "")

    def ping(self) -> None:
        """Open a broker connection and close it; raises when the broker is down."""
        with self._app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    def queue_depth(self, queue: str) -> int | None:
        """Messages waiting in ``queue`` (all priority levels), or None when the broker cannot say."""
        try:
            with self._app.connection_for_read() as conn:
                return conn.default_channel.queue_declare(queue=self._queue(queue), passive=True).message_count
        except Exception:  # noqa: BLE001 - unknown: the caller re-publishes to be safe
            log.warning("depth of queue %s unknown; its stale jobs will be re-published", queue, exc_info=True)
            return None
