"""``make_celery(settings)``: the Celery app shared by workers and the API's publisher.

``app`` is the same app built from ``Settings()`` (the ``TENSORQ_*`` environment) on first use, so
Celery's own tools work as-is: ``celery -A worker.celery_app inspect active``, ``control``, Flower.
Importing this module never imports TensorFlow: tasks import ``ml`` lazily in the child.
"""

from __future__ import annotations

import functools
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

from tensorq.core.routing import QUEUES, broker_queue
from tensorq.core.settings import Settings

# Every line a worker logs names the job it was running ("-" outside a job): see worker/joblog.py.
WORKER_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] [job %(job_id)s] %(name)s: %(message)s"
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


def job_queues(prefix: str = "") -> list[Queue]:
    """One direct exchange per queue, named after it and bound with its own name as the routing key."""
    names = [broker_queue(queue, prefix) for queue in QUEUES]
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in names]


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for TensorQ: JSON only, late acks, one message at a time."""
    app = Celery("tensorq", broker=settings.broker_url, include=["worker.tasks", "worker.remote"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A child left bloated by a job (memory that a failed allocation or a big model did not give back)
        # is replaced after that job; the per-job ceiling is worker.memory.job_memory_ceiling.
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024 or None,
        # A pool child imports TensorFlow at start; Celery's 4 s default kills it under load, in a loop.
        worker_proc_alive_timeout=120,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_options(settings),
        task_queues=job_queues(settings.queue_prefix),
        task_default_queue=broker_queue("predict", settings.queue_prefix),
        task_default_exchange=broker_queue("predict", settings.queue_prefix),
        task_default_routing_key=broker_queue("predict", settings.queue_prefix),
        # Remote control and events of one stack stay apart from another's on a shared Redis.
        control_exchange=broker_queue("celery", settings.queue_prefix),
        event_exchange=broker_queue("celeryev", settings.queue_prefix),
        worker_hijack_root_logger=False,
        worker_log_format=WORKER_LOG_FORMAT,
        worker_task_log_format=WORKER_LOG_FORMAT,
        # Events let Flower and `celery events` follow workers and tasks; the task id is the job id.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        broker_pool_limit=10,
    )
    app.conf.tensorq_settings = settings
    return app


def remove_stale_bindings(app: Celery) -> list[str]:
    """Drop Redis bindings of a job queue to another queue's exchange (left by releases that bound all
    three queues to exchange ``predict``, so one message reached every queue); returns what it removed."""
    removed: set[str] = set()
    names = [broker_queue(queue, app.conf.tensorq_settings.queue_prefix) for queue in QUEUES]
    with app.connection_for_write() as conn:
        if conn.transport.driver_type != "redis":
            return []
        channel = conn.default_channel
        client = channel.client
        for exchange in names:
            for key in (channel.keyprefix_queue % exchange, channel.keyprefix_binding_permanent % exchange):
                for member in client.smembers(key):
                    text = member.decode() if isinstance(member, bytes) else member
                    routing_key, _pattern, queue = text.split(channel.sep)
                    if queue in names and (queue, routing_key) != (exchange, exchange):
                        client.srem(key, member)
                        removed.add(f"{exchange}/{routing_key} -> {queue}")
    return sorted(removed)


@functools.cache
def default_app() -> Celery:
    """The app built from ``Settings()`` (the ``TENSORQ_*`` environment), made once per process."""
    return make_celery(Settings())


def __getattr__(name: str) -> Celery:
    """``app`` (and ``celery``, which Celery's ``-A`` also looks for) is the default app, built lazily."""
    if name in ("app", "celery"):
        return default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
