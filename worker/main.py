"""Starting a worker: pin the GPU, build the Celery app, warm TensorFlow in the child, run the reaper."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import worker_process_init

from tensorq.settings import Settings
from worker.gpu import pin_gpu
from worker.routing import QUEUES

log = logging.getLogger(__name__)
_app: Celery | None = None


@worker_process_init.connect
def _init_child(**_kwargs: object) -> None:
    """In each pool child: import TensorFlow there (never in the parent) and start the reaper."""
    if _app is None:
        return
    from db.database import Database
    from worker.gpu import configure_tensorflow
    from worker.publisher import CeleryPublisher
    from worker.reaper import Reaper

    settings: Settings = _app.conf.tensorq_settings
    gpus = configure_tensorflow()
    log.info("worker child ready; GPUs visible: %s", gpus or "none (CPU)")
    Reaper(settings, Database(settings), CeleryPublisher(_app)).start()


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
    gpu = gpu if gpu is not None else settings.gpu
    pin_gpu(gpu)
    from worker.celery_app import make_celery

    _app = make_celery(settings)
    label = "cpu" if gpu.lower() in ("none", "cpu", "-1") else f"gpu{gpu.replace(',', '-')}"
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--loglevel={loglevel}",
        f"--hostname={name or f'tensorq-{label}'}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    _app.worker_main(argv)
