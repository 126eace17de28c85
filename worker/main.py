"""Starting a worker: pin the GPU, build the Celery app, warm TensorFlow in the child, run the reaper."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_process_init, worker_shutting_down

from db.workers import WorkerInfo, WorkerRegistry
from tensorq.core.routing import QUEUES, broker_queue
from tensorq.core.settings import Settings
from worker.gpu import pin_gpu

if TYPE_CHECKING:
    from worker.presence import Presence

log = logging.getLogger(__name__)
_app: Celery | None = None
# What this worker serves, for its registration in SQL: set in the parent, read in each pool child.
_serving: dict[str, Any] = {}


@worker_process_init.connect
def _init_child(**_kwargs: object) -> None:
    """In each pool child: register it in SQL, start the reaper and the webhook sender, and import TensorFlow
    there (never in the parent) in a thread, so the child claims a job while TensorFlow loads (the job waits
    for it under its lease: ``worker/tf_boot.py``). It registers first, since the parent takes messages
    meanwhile: a worker killed while it starts is then known gone too, and the reaper puts back what it took."""
    if _app is None:
        return
    from db.database import Database
    from worker import retry
    from worker.broker_watch import BrokerMarker, BrokerWatch
    from worker.drain import install_drain_handler
    from worker.publisher import CeleryPublisher
    from worker.reaper import Reaper
    from worker.tf_boot import start_loading
    from worker.unacked import UnackedMessages
    from worker.webhooks import WebhookSender

    install_drain_handler()
    settings: Settings = _app.conf.tensorq_settings
    retry.configure(settings.db_retry_attempts)
    database = Database(settings)
    presence = _announce(settings, database.workers)
    log.info("worker child registered; loading TensorFlow")
    start_loading(lambda: _load_tensorflow(settings, presence))
    reaper = Reaper(settings, database, CeleryPublisher(_app), UnackedMessages(_app))
    reaper.start()
    if settings.broker_check_s:
        BrokerWatch(BrokerMarker(_app), reaper.refill, settings.broker_check_s).start()
    WebhookSender(settings, database).start()


def _load_tensorflow(settings: Settings, presence: Presence) -> None:
    """Import and set up TensorFlow in this pool child, then describe its GPU in the child's registration."""
    import time
    from dataclasses import replace

    from worker.gpu import configure_tensorflow, gpu_details

    started = time.monotonic()
    gpus = configure_tensorflow(settings.worker_keras_extras)
    from ml.inference import set_cache_size

    set_cache_size(settings.model_cache_size)
    _prime(settings)
    log.info(
        "worker child ready; GPUs visible: %s (TensorFlow loaded in %.1fs)",
        gpus or "none (CPU)",
        time.monotonic() - started,
    )
    gpu = gpu_details(str(_serving.get("gpu", "auto")), gpus)
    if gpu is not None:
        presence.describe(replace(presence.info, gpu=gpu))


def _prime(settings: Settings) -> None:
    """Prime TensorFlow's runtime (``worker/prime.py``) where a low job memory ceiling applies."""
    from worker.memory import ceiling_applies
    from worker.prime import PRIME_BELOW_MB, prime_tensorflow

    if 0 < settings.job_memory_mb < PRIME_BELOW_MB and ceiling_applies(str(_serving.get("gpu", settings.gpu))):
        prime_tensorflow()


def _announce(settings: Settings, registry: WorkerRegistry) -> Presence:
    """Register this pool child in SQL (name, host, queues, version) and keep it heartbeating."""
    import socket

    from celery.utils.nodenames import host_format

    from tensorq.core import __version__
    from worker.presence import Presence, announce

    node = host_format(str(_serving.get("node", "tensorq@%h")))
    info = WorkerInfo(
        name=f"{node}:{os.getpid()}",
        node=node,
        host=socket.gethostname(),
        pid=os.getpid(),
        queues=list(_serving.get("queues", QUEUES)),
        version=__version__,
    )
    presence = Presence(registry, info, settings.heartbeat_s)
    announce(presence)
    return presence


@worker_shutting_down.connect
def _drain(**_kwargs: object) -> None:
    """In the parent, on SIGTERM: ask the pool children to hand their running jobs back."""
    from worker.drain import drain_children

    drain_children()


def node_name(gpu: str, name: str | None = None) -> str:
    """The Celery node name: ``name`` as given, else ``tensorq-<cpu|gpuN>-<pid>@<host>``, unique per process."""
    if name:
        return name if "@" in name else f"{name}@%h"
    label = "cpu" if gpu.lower() in ("none", "cpu", "-1") else f"gpu{gpu.replace(',', '-')}"
    return f"tensorq-{label}-{os.getpid()}@%h"


def check_tenant_quotas(settings: Settings) -> None:
    """Refuse to start when ``tenant_quotas`` names a tenant the database does not know (a typo would otherwise
    leave that tenant at the defaults, its weight too); an unreachable database is only logged."""
    if not settings.tenant_quotas:
        return
    from db.fairshare import unknown_tenants
    from db.session import make_engine, make_session_factory
    from tensorq.core.errors import Unavailable

    engine = make_engine(settings.database_url)
    try:
        unknown = unknown_tenants(make_session_factory(engine), list(settings.tenant_quotas))
    except Unavailable:
        log.warning("could not check the tenants of tenant_quotas: the database is unavailable")
        return
    finally:
        engine.dispose()
    if unknown:
        raise ValueError(f"tenant_quotas names unknown tenants: {', '.join(unknown)} (create them first)")


def start_worker(
    settings: Settings,
    *,
    queues: tuple[str, ...] = QUEUES,
    gpu: str | None = None,
    concurrency: int = 1,
    loglevel: str = "INFO",
    name: str | None = None,
) -> None:
    """Run a Celery worker for ``queues`` pinned to ``gpu``; blocks until it stops."""
    global _app
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise ValueError(f"unknown queues {sorted(unknown)}; known: {', '.join(QUEUES)}")
    check_tenant_quotas(settings)
    gpu = gpu if gpu is not None else settings.gpu
    from worker.gpu_check import check_gpu_request

    for info in check_gpu_request(gpu):  # refuses a GPU this host does not have, before anything starts
        log.info("pinned to GPU %d: %s (%s, %d MiB)", info.index, info.name, info.uuid, info.memory_mib)
    pin_gpu(gpu)
    from worker.celery_app import make_celery, remove_stale_bindings
    from worker.joblog import install_job_id_on_records

    install_job_id_on_records()  # before Celery formats a line with %(job_id)s

    _app = make_celery(settings)
    _serving.update(node=node_name(gpu, name), queues=list(queues), gpu=gpu)
    try:
        for binding in remove_stale_bindings(_app):
            log.warning("removed a stale queue binding: %s", binding)
    except Exception:  # noqa: BLE001 - the broker may be down now; the worker retries its connection itself
        log.warning("could not check the queue bindings", exc_info=True)
    # Celery's worker programmatically, as its ``celery worker`` command builds it, without its command line:
    # ``worker_main`` imports every ``celery`` sub-command first (its shell's prompt toolkit too), seconds of
    # a cold start spent before the pool child even starts to load TensorFlow.
    from celery.utils.nodenames import default_nodename, host_format

    worker = _app.Worker(
        hostname=host_format(default_nodename(_serving["node"])),
        pool_cls="prefork",
        loglevel=loglevel,
        queues=[broker_queue(queue, settings.queue_prefix) for queue in queues],
        concurrency=concurrency,
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
