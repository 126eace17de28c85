"""Liveness and readiness: ``/healthz`` always, ``/readyz`` when the database, broker and artifact store answer."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from api import responses
from api.openapi import operation
from api.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@operation(summary="Liveness", responses={200: responses.Health}, errors=(), public=True)
def healthz():
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@operation(
    summary="Readiness of the database, broker and artifact store",
    responses={200: responses.Readiness, 503: responses.Readiness},
    errors=(),
    public=True,
)
def readyz():
    """Whether the database, the broker and the artifact store can be reached, each named; 503 when one cannot."""
    svc = services()
    checks: dict[str, str] = {}
    store = current_app.extensions["tensorq.store_probe"]
    for name, probe in (("database", svc.db.ping), ("broker", svc.publisher.ping), ("storage", store.check)):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    response.status_code = 200 if ready else 503
    if not ready:
        response.headers["Retry-After"] = "5"
    return response
