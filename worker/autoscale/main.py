"""``tensorq autoscale``: build the autoscaler from the settings and run it until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from tensorq.core.settings import Settings
from worker.autoscale.gpus import GpuInventory, unknown_exclusions, usable_gpus
from worker.autoscale.loop import Autoscaler, Fleet, queue_loads
from worker.autoscale.metrics import AutoscaleMetrics
from worker.autoscale.policy import Policy, QueueLoad

log = logging.getLogger("tensorq.autoscale")


def policy_from(settings: Settings) -> Policy:
    """The scaling policy the settings describe."""
    return Policy(
        min_workers=settings.autoscale_min_workers,
        max_workers=settings.autoscale_max_workers,
        jobs_per_worker=settings.autoscale_jobs_per_worker,
        cooldown_s=settings.autoscale_cooldown_s,
    )


def gpu_autoscaler(
    settings: Settings,
    client: Any,
    project: str,
    read_backlog: Callable[[], list[QueueLoad]],
    fleet: Fleet,
    inventory: GpuInventory,
    metrics: AutoscaleMetrics | None = None,
    *,
    device_requests: bool = True,
) -> Autoscaler:
    """The GPU workers' autoscaler: one worker per usable GPU of ``inventory`` at most, started on backlog and
    drained after the cooldown; raises RuntimeError (saying why) when the GPUs cannot be listed, an exclusion
    matches no GPU, no GPU is left to use, or a queue is unknown."""
    from tensorq.core.routing import QUEUES
    from worker.autoscale.gpu_replicas import DockerGpuReplicas
    from worker.autoscale.gpus import InventoryUnavailable

    unknown_queues = [queue for queue in settings.autoscale_gpu_queues if queue not in QUEUES]
    if unknown_queues:
        raise RuntimeError(
            f"TENSORQ_AUTOSCALE_GPU_QUEUES names {', '.join(map(repr, unknown_queues))}: no such queue "
            f"(queues: {', '.join(QUEUES)})"
        )
    try:
        gpus = inventory.gpus()
    except InventoryUnavailable as exc:
        raise RuntimeError(f"TENSORQ_AUTOSCALE_GPU_SERVICE is set but the GPUs cannot be listed: {exc}") from exc
    excluded = settings.autoscale_excluded_gpus
    unknown = unknown_exclusions(gpus, excluded)
    if unknown:  # a mistyped exclusion would leave the GPU it meant in use: refuse to start instead
        listed = ", ".join(f"{gpu.index} ({gpu.uuid})" for gpu in gpus) or "none"
        raise RuntimeError(
            f"TENSORQ_AUTOSCALE_EXCLUDED_GPUS names {', '.join(map(repr, unknown))}, which matches no GPU of this "
            f"host by index or UUID (GPUs: {listed})"
        )
    usable = usable_gpus(gpus, excluded)
    if not usable:
        raise RuntimeError(f"no GPU to autoscale workers on: {len(gpus)} found, {len(gpus) - len(usable)} excluded")
    policy = Policy(
        min_workers=min(settings.autoscale_gpu_min_workers, len(usable)),
        max_workers=len(usable),
        jobs_per_worker=settings.autoscale_gpu_jobs_per_worker,
        cooldown_s=settings.autoscale_cooldown_s,
    )
    service = settings.autoscale_gpu_service
    log.info(
        "autoscaling %s/%s on GPUs %s (excluded: %s), %d jobs each",
        project,
        service,
        ", ".join(str(gpu.index) for gpu in usable),
        ", ".join(excluded) or "none",
        policy.jobs_per_worker,
    )
    return Autoscaler(
        policy,
        settings.autoscale_gpu_queues,
        read_backlog,
        DockerGpuReplicas(client, project, service, inventory, excluded, device_requests=device_requests),
        fleet,
        service=service,
        max_drain_s=settings.autoscale_max_drain_s,
        metrics=metrics.for_service(service, settings.autoscale_gpu_queues) if metrics is not None else None,
    )


def run_autoscaler(settings: Settings) -> None:
    """Scale the compose service's replicas from the SQL backlog until SIGTERM or SIGINT."""
    import docker

    from db.backlog import backlog_by_type
    from db.drains import Drains
    from db.session import make_engine, make_session_factory
    from worker.autoscale.replicas import DockerReplicas, own_compose_project

    policy = policy_from(settings)
    client = docker.from_env()
    project = settings.autoscale_project or own_compose_project(client)
    factory = make_session_factory(make_engine(settings.database_url))
    metrics = AutoscaleMetrics(settings.autoscale_service, settings.autoscale_queues)
    if settings.autoscale_metrics_port:
        metrics.serve(settings.autoscale_metrics_port)
    read_backlog = lambda: queue_loads(backlog_by_type(factory))  # noqa: E731 - one reader for every scaler
    scalers = [
        Autoscaler(
            policy,
            settings.autoscale_queues,
            read_backlog,
            DockerReplicas(client, project, settings.autoscale_service),
            Drains(factory),
            service=settings.autoscale_service,
            max_drain_s=settings.autoscale_max_drain_s,
            metrics=metrics,
        )
    ]
    if settings.autoscale_gpu_service:
        from worker.autoscale.gpus import NvmlInventory

        scalers.append(
            gpu_autoscaler(settings, client, project, read_backlog, Drains(factory), NvmlInventory(), metrics)
        )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "autoscaling %s/%s between %d and %d workers, %d jobs each, %.0fs cooldown",
        project,
        settings.autoscale_service,
        policy.min_workers,
        policy.max_workers,
        policy.jobs_per_worker,
        policy.cooldown_s,
    )
    threads = [
        threading.Thread(
            target=scaler.run,
            args=(settings.autoscale_interval_s, stop, settings.autoscale_zero_interval_s),
            name=f"scale-{scaler.service}",
        )
        for scaler in scalers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_queue_metrics(settings: Settings) -> None:
    """Serve only the backlog metrics (no Docker): what KEDA's Prometheus scaler reads on Kubernetes."""
    from db.backlog import backlog_by_type
    from db.session import make_engine, make_session_factory
    from worker.autoscale.policy import Decision, ScaleState

    if not settings.autoscale_metrics_port:
        raise RuntimeError("--metrics-only needs TENSORQ_AUTOSCALE_METRICS_PORT")
    factory = make_session_factory(make_engine(settings.database_url))
    metrics = AutoscaleMetrics(settings.autoscale_service, settings.autoscale_queues, workers=False)
    metrics.serve(settings.autoscale_metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("serving queue metrics on :%d every %.0fs", settings.autoscale_metrics_port, settings.autoscale_interval_s)
    idle = Decision(0, 0, 0, "metrics only", ScaleState())
    while not stop.is_set():
        try:
            metrics.observe(queue_loads(backlog_by_type(factory)), idle)
        except Exception:  # noqa: BLE001 - a database hiccup: keep serving the last figures
            log.exception("reading the backlog failed")
        stop.wait(settings.autoscale_interval_s)
