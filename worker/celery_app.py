"""``make_celery(settings)``: the Celery app shared by workers and the API's publisher.

Importing this module never imports TensorFlow: tasks import ``ml`` lazily in the child.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from kombu import Queue

from tensorq.settings import Settings
from worker.routing import QUEUES, ROUTES

# Above the longest job: recovery relies on leases in SQL, never on redelivery.
VISIBILITY_TIMEOUT_S = 7 * 24 * 3600


def broker_options(settings: Settings) -> dict:
    """Transport options for the configured broker (Redis, or kombu's filesystem transport)."""
    if settings.broker_url.startswith("filesystem://"):
        folder = Path(settings.artifact_dir) / "broker"
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "control_folder": str(folder / "control"),
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
        }
    return {
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "queue_order_strategy": "priority",
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
    }


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for TensorQ: JSON only, late acks, one message at a time."""
    app = Celery("tensorq", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A pool child imports TensorFlow at start; Celery's 4 s default kills it under load, in a loop.
        worker_proc_alive_timeout=120,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_options(settings),
        task_queues=[Queue(name) for name in QUEUES],
        task_routes={route.task: {"queue": route.queue} for route in ROUTES.values()},
        task_default_queue="predict",
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_pool_limit=10,
    )
    app.conf.tensorq_settings = settings
    return app
