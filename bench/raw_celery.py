"""The raw-Celery baseline: a no-op task on a Redis broker with a Redis result backend.

The bench starts its worker as ``celery -A bench.raw_celery worker --pool=prefork -c 1`` with
``BENCH_RAW_BROKER`` pointing at its own Redis; the bench process builds its client app with
``make_app(url)``. The Celery settings mirror TensorQ's (JSON, late acks, one message at a time).
"""

from __future__ import annotations

import os

from celery import Celery

QUEUE = "bench_raw"
BROKER_ENV = "BENCH_RAW_BROKER"


def make_app(url: str) -> Celery:
    """A Celery app using ``url`` as broker and result backend, with the no-op task registered."""
    celery = Celery("bench_raw", broker=url, backend=url)
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        result_expires=600,
    )

    @celery.task(name="bench.noop", shared=False)
    def noop() -> None:
        """Do nothing."""

    return celery


app = make_app(os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/1"))
