"""``/metrics`` for Prometheus: request counts and latencies, and jobs by type and status from SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from db.database import Database
from db.models import Job
from db.session import session_scope

bp = Blueprint("metrics", __name__)


class JobCollector(Collector):
    """Counts jobs by type and status at scrape time (the SQL row is the truth, across API processes)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge sample per (type, status)."""
        gauge = GaugeMetricFamily("tensorq_jobs", "Jobs by type and status", labels=["type", "status"])
        with session_scope(self.db.factory) as session:
            rows = session.execute(select(Job.type, Job.status, func.count()).group_by(Job.type, Job.status)).all()
        for job_type, status, count in rows:
            gauge.add_metric([job_type, status], count)
        yield gauge


def register_metrics(app: Flask, db: Database) -> None:
    """Count every request and serve ``/metrics`` from a registry of this app's own."""
    registry = CollectorRegistry()
    requests = Counter("tensorq_http_requests", "HTTP requests", ["method", "endpoint", "status"], registry=registry)
    latency = Histogram("tensorq_http_request_seconds", "HTTP request latency", ["endpoint"], registry=registry)
    registry.register(JobCollector(db))
    app.extensions["tensorq.metrics"] = registry

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):  # type: ignore[no-untyped-def]
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
