"""Registered models: list, get, and download a version's ``.keras`` file."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify, request, send_file

from api import responses
from api.openapi import BINARY, operation, query
from api.services import principal, services
from tensorq.errors import InvalidRequest, NotFound

bp = Blueprint("models", __name__)


@bp.get("/models")
@operation(summary="The caller's models", responses={200: responses.ModelList})
def list_models():  # type: ignore[no-untyped-def]
    """The caller's models with their versions."""
    return jsonify({"models": [m.to_public() for m in services().db.models.list(principal().tenant_id)]})


@bp.get("/models/<model_id>")
@operation(summary="One model with its versions", responses={200: responses.ModelOut})
def get_model(model_id: str):  # type: ignore[no-untyped-def]
    """One model, its versions, metrics and training jobs."""
    return jsonify(services().db.models.get(principal().tenant_id, model_id).to_public())


@bp.get("/models/<model_id>/download")
@operation(
    summary="A model version's .keras file",
    responses={200: BINARY},
    query=[query("version", {"type": "string", "pattern": "^[0-9]{1,9}$"}, "version number (default the latest)")],
)
def download_model(model_id: str):  # type: ignore[no-untyped-def]
    """The ``.keras`` file of ``?version=N`` (default the latest)."""
    version = request.args.get("version")
    if version is not None and not version.isdigit():
        raise InvalidRequest("version must be a positive integer")
    ref = f"{model_id}:{version}" if version else model_id
    svc = services()
    record = svc.db.models.resolve(principal().tenant_id, ref)
    root = Path(svc.settings.artifact_dir).resolve()
    path = Path(record.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"model file of {model_id} version {record.version} is missing")
    return send_file(path, as_attachment=True, download_name=f"{record.model_name}-v{record.version}.keras")
