"""Registered models: list, get, download a version's ``.keras`` file, and bring your own (``POST /v1/models``).

An uploaded model is only stored here (under a server-made name, after a check that it is a zip with the
``.keras`` layout); an ``import`` job loads it in a worker, never in the API process.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import IO

from flask import Blueprint, jsonify, request, send_file

from api import responses
from api.jobs import _publish
from api.openapi import BINARY, MULTIPART, operation, query
from api.services import principal, services
from api.uploads import multipart_file, write_limited
from db.jobs import NewJob
from ml.model_import import check_zip, staging_path
from ml.specs import ModelUpload, parse
from tensorq.errors import NotFound

bp = Blueprint("models", __name__)


def _save(stream: IO[bytes], path: Path, max_bytes: int) -> int:
    """Write ``stream`` to ``path`` (via a partial file), refusing more than ``max_bytes``; the size written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    try:
        size = write_limited(stream, partial, max_bytes)
        check_zip(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return size


def _model_name(filename: str | None) -> str:
    """The ``name`` form field (checked like a train spec's ``model_name``), else the file's stem when it makes
    a valid name, else "imported"."""
    raw = request.form.get("name")
    if raw is not None:
        return parse(ModelUpload, {"name": raw}).name
    stem = Path(filename or "").stem[:200]
    try:
        return ModelUpload(name=stem).name
    except ValueError:
        return "imported"


@bp.post("/models")
@operation(
    summary="Upload a .keras model; answers with its import job",
    body=MULTIPART,
    responses={202: responses.Job},
    errors=(400, 403, 413, 415, 429),
    location=True,
)
def upload_model():  # type: ignore[no-untyped-def]
    """Store a multipart ``file`` (a ``.keras`` model) and queue its import; 202 with the import job."""
    upload = multipart_file("models")
    svc = services()
    who = principal()
    name = _model_name(upload.filename)
    svc.broker_guard.check()
    svc.quotas.check_submission(who)
    svc.quotas.check_model_bytes(who, request.content_length or 0)
    upload_id = str(uuid.uuid4())
    path = staging_path(svc.settings.artifact_dir, who.tenant_id, upload_id)
    size = _save(upload.stream, path, svc.settings.max_upload_bytes)
    try:
        svc.quotas.check_model_bytes(who, size)  # the bytes written: a chunked body declares no length
        outcome = svc.db.jobs.submit(
            NewJob(
                tenant_id=who.tenant_id,
                type="import",
                spec={"upload": upload_id, "model_name": name, "size_bytes": size},
                max_attempts=svc.settings.default_max_attempts,
            ),
            publishing=True,
            queued_limit=svc.quotas.queued_limit(who),
        )
    except Exception:
        path.unlink(missing_ok=True)
        raise
    _publish(outcome.job)
    response = jsonify(outcome.job.to_public())
    response.status_code = 202
    response.headers["Location"] = f"/v1/jobs/{outcome.job.id}"
    return response


@bp.get("/models")
@operation(summary="The caller's models", responses={200: responses.ModelList})
def list_models():  # type: ignore[no-untyped-def]
    """The caller's models with their versions."""
    return jsonify({"models": [m.to_public() for m in services().db.models.list(principal().tenant_id)]})


@bp.get("/models/<model_id>")
@operation(summary="One model with its versions", responses={200: responses.ModelOut}, errors=(404,))
def get_model(model_id: str):  # type: ignore[no-untyped-def]
    """One model, its versions, metrics and training jobs."""
    return jsonify(services().db.models.get(principal().tenant_id, model_id).to_public())


@bp.get("/models/<model_id>/download")
@operation(
    summary="A model version's .keras file",
    responses={200: BINARY},
    errors=(400, 404),
    query=[query("version", {"type": "string", "pattern": "^[0-9]{1,9}$"}, "version number (default the latest)")],
)
def download_model(model_id: str):  # type: ignore[no-untyped-def]
    """The ``.keras`` file of ``?version=N`` (default the latest)."""
    version = request.args.get("version")
    ref = model_id if version is None else f"{model_id}:{version}"
    svc = services()
    record = svc.db.models.resolve(principal().tenant_id, ref)
    root = Path(svc.settings.artifact_dir).resolve()
    path = Path(record.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"model file of {model_id} version {record.version} is missing")
    return send_file(path, as_attachment=True, download_name=f"{record.model_name}-v{record.version}.keras")
