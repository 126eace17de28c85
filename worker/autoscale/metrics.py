"""The autoscaler's Prometheus metrics, served from its one process (not per API worker)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from worker.autoscale.policy import Decision, QueueLoad


class AutoscaleMetrics:
    """Queue depth, oldest queued job, workers and scale events, in a registry of their own."""

    def __init__(self, service: str, queues: Iterable[str], workers: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.track_workers = workers
        self.service = service
        self.queues = tuple(queues)
        self.depth = Gauge("tensorq_queue_depth", "Jobs queued, per queue.", ["queue"], registry=self.registry)
        self.running = Gauge("tensorq_queue_running", "Jobs running, per queue.", ["queue"], registry=self.registry)
        self.oldest = Gauge(
            "tensorq_oldest_queued_seconds",
            "Age of the oldest queued job, per queue.",
            ["queue"],
            registry=self.registry,
        )
        self.workers = Gauge(
            "tensorq_workers", "Worker replicas running, per service.", ["service"], registry=self.registry
        )
        self.desired = Gauge(
            "tensorq_workers_desired", "Worker replicas the backlog asks for.", ["service"], registry=self.registry
        )
        self.events = Counter(
            "tensorq_autoscale_events", "Replica changes made.", ["service", "direction"], registry=self.registry
        )
        self.draining = Gauge(
            "tensorq_workers_draining", "Worker replicas draining before a stop.", ["service"], registry=self.registry
        )
        self.stops = Counter(
            "tensorq_autoscale_stops",
            "Replicas stopped: drained (nothing ran) or handback (still busy after the longest drain).",
            ["service", "how"],
            registry=self.registry,
        )
        self.read_errors = Counter(
            "tensorq_autoscale_read_errors",
            "Steps that kept the replicas because the backlog or the replicas could not be read.",
            ["service", "error"],
            registry=self.registry,
        )
        self.healthy = Gauge(
            "tensorq_autoscale_reads_ok",
            "1 when the last step could read the backlog and replicas.",
            ["service"],
            registry=self.registry,
        )

    def for_service(self, service: str, queues: Iterable[str]) -> AutoscaleMetrics:
        """The same metrics (one registry, one /metrics) recorded under another scaled ``service``."""
        view = copy.copy(self)
        view.service = service
        view.queues = tuple(queues)
        return view

    def read_failed(self, error: str) -> None:
        """Record a step that could not read the backlog or the replicas (and so changed nothing)."""
        self.read_errors.labels(self.service, error).inc()
        self.healthy.labels(self.service).set(0)

    def stopped(self, how: str) -> None:
        """Record a replica stopped ``drained`` or by ``handback``."""
        self.stops.labels(self.service, how).inc()

    def observe(self, loads: Iterable[QueueLoad], decision: Decision, draining: int = 0) -> None:
        """Record one step: every served queue (zero when idle), the replicas and the change made."""
        by_queue = {load.queue: load for load in loads}
        for queue in sorted(set(self.queues) | set(by_queue)):
            load = by_queue.get(queue, QueueLoad(queue, 0, 0, 0.0))
            self.depth.labels(queue).set(load.queued)
            self.running.labels(queue).set(load.running)
            self.oldest.labels(queue).set(load.oldest_queued_s)
        if not self.track_workers:
            return
        self.healthy.labels(self.service).set(1)
        self.draining.labels(self.service).set(draining)
        self.workers.labels(self.service).set(decision.target)
        self.desired.labels(self.service).set(decision.desired)
        if decision.changes:
            self.events.labels(self.service, "up" if decision.target > decision.current else "down").inc()

    def serve(self, port: int) -> None:
        """Serve ``/metrics`` on ``port`` from a background thread."""
        start_http_server(port, registry=self.registry)
