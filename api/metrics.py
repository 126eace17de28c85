"""``/metrics`` for Prometheus: request counts and latencies, and jobs by type and status from SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from api.wait_slots import WaitSlots
from api.workers import QUEUE_OF_TYPE
from db.database import Database

bp = Blueprint("metrics", __name__)


class JobCollector(Collector):
    """Jobs by type and status, job run times by type and outcome, queue depth and oldest wait, and live workers:
    all read from SQL at scrape time, so any API process answers for the whole system; the queued and running
    counts are read once per scrape (they count the backlog)."""

    def __init__(self, db: Database, queue_of_type: dict[str, str]) -> None:
        self.db = db
        self.queue_of_type = queue_of_type

    def collect(self) -> Iterator[Metric]:
        """The gauges and the histogram, one query each."""
        live = self.db.stats.live()
        gauge = GaugeMetricFamily("tensorq_jobs", "Jobs by type and status", labels=["type", "status"])
        for (job_type, status), count in sorted(self.db.stats.by_type_and_status(live).items()):
            gauge.add_metric([job_type, status], count)
        yield gauge
        durations = HistogramMetricFamily(
            "tensorq_job_duration_seconds",
            "Run time of finished jobs (started to finished)",
            labels=["type", "outcome"],
        )
        for h in self.db.stats.durations():
            buckets = [(_bound(b), n) for b, n in h.buckets] + [("+Inf", h.count)]
            durations.add_metric([h.job_type, h.outcome], buckets, h.total_s)
        yield durations
        depth = GaugeMetricFamily("tensorq_queue_depth", "Jobs queued", labels=["queue"])
        running = GaugeMetricFamily("tensorq_queue_running", "Jobs running", labels=["queue"])
        oldest = GaugeMetricFamily("tensorq_queue_oldest_age_seconds", "Age of the oldest queued job", labels=["queue"])
        serving = GaugeMetricFamily("tensorq_queue_live_workers", "Live workers taking the queue", labels=["queue"])
        workers = self.db.workers.live()
        for q in self.db.workers.queues(self.queue_of_type, live, workers):
            depth.add_metric([q.name], q.depth)
            running.add_metric([q.name], q.running)
            oldest.add_metric([q.name], q.oldest_queued_age_s or 0.0)
            serving.add_metric([q.name], q.live_workers)
        yield from (depth, running, oldest, serving)
        live_workers = GaugeMetricFamily("tensorq_workers_live", "Workers seen within worker_stale_s")
        live_workers.add_metric([], len(workers))
        yield live_workers


class WaitCollector(Collector):
    """The long-polls and event streams this API process holds now (its wait slots)."""

    def __init__(self, slots: WaitSlots) -> None:
        self.slots = slots

    def collect(self) -> Iterator[Metric]:
        """One gauge."""
        held = GaugeMetricFamily("tensorq_api_waits_held", "Long-polls and event streams this API process holds")
        held.add_metric([], self.slots.held())
        yield held


def _bound(value: float) -> str:
    return f"{value:g}"


def register_metrics(app: Flask, db: Database, slots: WaitSlots) -> None:
    """Count every request and serve ``/metrics`` from a registry of this app's own."""
    registry = CollectorRegistry()
    requests = Counter("tensorq_http_requests", "HTTP requests", ["method", "endpoint", "status"], registry=registry)
    latency = Histogram("tensorq_http_request_seconds", "HTTP request latency", ["endpoint"], registry=registry)
    registry.register(JobCollector(db, QUEUE_OF_TYPE))
    registry.register(WaitCollector(slots))
    app.extensions["tensorq.metrics"] = registry

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):
        endpoint = request.endpoint or "unmatched"
        requests.labels(request.method, endpoint, str(response.status_code)).inc()
        if "started" in g:
            latency.labels(endpoint).observe(time.perf_counter() - g.started)
        return response

    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus text exposition."""
    return Response(generate_latest(current_app.extensions["tensorq.metrics"]), mimetype="text/plain; version=0.0.4")
