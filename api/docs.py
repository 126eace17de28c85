"""``/openapi.json`` and the Swagger UI at ``/docs``, served from package files (no CDN)."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request
from flask_swagger_ui import get_swaggerui_blueprint

bp = Blueprint("openapi", __name__)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document, built once per process; its server is the URL it was fetched from."""
    from api.openapi import build_document

    document = current_app.extensions.setdefault("tensorq.openapi", None)
    if document is None:
        document = current_app.extensions["tensorq.openapi"] = build_document(current_app)
    server = {"url": request.url_root.rstrip("/") or "/", "description": "this TensorQ API"}
    return jsonify({**document, "servers": [server]})


def register_docs(app: Flask) -> None:
    """Mount the document and the Swagger UI."""
    app.register_blueprint(bp)
    app.register_blueprint(
        get_swaggerui_blueprint("/docs", "/openapi.json", config={"app_name": "TensorQ"}), url_prefix="/docs"
    )
