"""``tensorq autoscale``: build the autoscaler from the settings and run it until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from tensorq.core.settings import Settings
from worker.autoscale.loop import Autoscaler, queue_loads
from worker.autoscale.metrics import AutoscaleMetrics
from worker.autoscale.policy import Policy

log = logging.getLogger("tensorq.autoscale")


def policy_from(settings: Settings) -> Policy:
    """The scaling policy the settings describe."""
    return Policy(
        min_workers=settings.autoscale_min_workers,
        max_workers=settings.autoscale_max_workers,
        jobs_per_worker=settings.autoscale_jobs_per_worker,
        cooldown_s=settings.autoscale_cooldown_s,
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
    scaler = Autoscaler(
        policy,
        settings.autoscale_queues,
        lambda: queue_loads(backlog_by_type(factory)),
        DockerReplicas(client, project, settings.autoscale_service),
        Drains(factory),
        service=settings.autoscale_service,
        max_drain_s=settings.autoscale_max_drain_s,
        metrics=metrics,
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
    scaler.run(settings.autoscale_interval_s, stop, settings.autoscale_zero_interval_s)


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
