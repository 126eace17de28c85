"""``create_app(settings, publisher=...)``: the Flask application factory."""

from __future__ import annotations

from flask import Blueprint, Flask, request
from flask.json.provider import DefaultJSONProvider

from api import datasets, health, jobs, logs, models, upload_sessions, webhooks, whoami, workers
from api.auth import authenticate_request
from api.broker_guard import BrokerGuard
from api.console import register_console
from api.docs import DOCS_CSP, register_docs
from api.errors import register_error_handlers
from api.metrics import register_metrics
from api.quotas import Quotas
from api.request_text import refuse_nul_in_form, refuse_nul_in_url
from api.services import Services, services
from api.store_probe import StoreProbe
from api.upload_sessions import largest_part
from api.wait_slots import WaitSlots
from db.changes import ChangeListener, redis_url_of
from db.database import Database
from db.outlook import Outlooks
from tensorq.core.routing import Publisher
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def create_app(settings: Settings, *, publisher: Publisher, database: Database | None = None) -> Flask:
    """Build the API for ``settings``, enqueueing through ``publisher`` (``tensorq.webapp.make_app`` passes the
    Celery one); tests may inject the database too."""
    app = Flask("tensorq.api", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = _InOrderJSON(app)
    database = database or Database(settings)
    store = ArtifactStore.from_settings(settings)
    slots = WaitSlots(settings.max_waits_per_tenant, settings.max_waits, settings.wait_reserve)
    app.extensions["tensorq"] = Services(
        settings=settings,
        db=database,
        publisher=publisher,
        broker_guard=BrokerGuard(publisher),
        quotas=Quotas(settings, database, store),
        store=store,
        wait_slots=slots,
        changes=ChangeListener(redis_url) if (redis_url := redis_url_of(settings.broker_url)) else None,
    )

    app.extensions["tensorq.store_probe"] = StoreProbe(store, settings.readyz_store_timeout_s)
    app.extensions["tensorq.served_queues"] = workers.ServedQueues(database.workers)
    outlooks = Outlooks(database.factory, settings.weight, settings.worker_stale_s)
    app.extensions["tensorq.queue_outlooks"] = workers.QueueOutlooks(outlooks, settings.fair_share_queues)
    v1 = Blueprint("v1", __name__, url_prefix="/v1")
    v1.before_request(_limit_body)
    v1.before_request(authenticate_request)
    v1.before_request(refuse_nul_in_form)
    for module in (jobs, logs, upload_sessions, datasets, models, whoami, workers, webhooks):
        v1.register_blueprint(module.bp)
    app.before_request(refuse_nul_in_url)
    app.register_blueprint(v1)
    app.register_blueprint(health.bp)
    register_docs(app)
    register_console(app)
    register_metrics(app, database, slots)
    register_error_handlers(app)

    @app.after_request
    def _security_headers(response):
        if request.path.startswith("/docs"):
            response.headers["Content-Security-Policy"] = DOCS_CSP
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    if settings.cors_origins:
        from flask_cors import CORS

        CORS(app, origins=settings.cors_origins, allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])

    return app


class _InOrderJSON(DefaultJSONProvider):
    """Flask's JSON with each object's keys in the order the API builds them (not sorted)."""

    sort_keys = False


def _limit_body() -> None:
    """Uploads may be as large as ``max_upload_bytes``; every other body ``max_body_bytes``."""
    if request.endpoint in ("v1.datasets.upload_dataset", "v1.models.upload_model"):
        request.max_content_length = services().settings.max_upload_bytes + 1024 * 1024
    elif request.endpoint == "v1.uploads.put_part":
        request.max_content_length = largest_part(services().settings)  # a session's part is never larger
