"""Registered models: list, get, download a version's ``.keras`` file, and bring your own (``POST /v1/models``).

An uploaded model is only stored here (under a server-made name, after a check that it is a zip with the
``.keras`` layout); an ``import`` job loads it in a worker, never in the API process.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import IO

from flask import Blueprint, jsonify, request

from api import present, responses
from api.accept import accept, answer
from api.openapi import BINARY, MULTIPART, operation, query
from api.request_text import json_body
from api.responses import AliasTarget
from api.services import principal, services
from api.stored_files import send_stored
from api.uploads import multipart_file, write_limited
from db.newjob import NewJob
from db.registry import parse_model_ref
from ml.model_archive import check_zip, staging_key
from ml.specs import ModelUpload, parse
from tensorq.core.errors import InvalidRequest
from tensorq.core.store import ArtifactStore

bp = Blueprint("models", __name__)


def _save(stream: IO[bytes], store: ArtifactStore, location: str, max_bytes: int) -> int:
    """Write ``stream`` to local scratch, refusing more than ``max_bytes``, check it, then store it at
    ``location``; the size written."""
    partial = store.scratch_folder("uploads") / f"{uuid.uuid4()}.part"
    try:
        size = write_limited(stream, partial, max_bytes)
        check_zip(partial)
        store.put(partial, location, move=True)
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
def upload_model():
    """Store a multipart ``file`` (a ``.keras`` model) and queue its import; 202 with the import job."""
    upload = multipart_file("models")
    svc = services()
    who = principal()
    name = _model_name(upload.filename)
    svc.broker_guard.check()
    svc.quotas.check_submission(who)
    svc.quotas.check_model_bytes(who, request.content_length or 0)
    upload_id = str(uuid.uuid4())
    location = svc.store.location(staging_key(who.tenant_id, upload_id))
    size = _save(upload.stream, svc.store, location, svc.settings.max_upload_bytes)
    try:
        svc.quotas.check_model_bytes(who, size)  # the bytes written: a chunked body declares no length
        spec = {"upload": upload_id, "model_name": name, "size_bytes": size}
        new = NewJob(tenant_id=who.tenant_id, type="import", spec=spec, max_attempts=svc.settings.default_max_attempts)
        [job] = accept(who, new)
    except Exception:
        svc.store.remove_file(location)
        raise
    return answer(job)


@bp.get("/models")
@operation(summary="The caller's models", responses={200: responses.ModelList})
def list_models():
    """The caller's models with their versions."""
    return jsonify({"models": [present.model(m) for m in services().db.models.list(principal().tenant_id)]})


@bp.get("/models/<model_id>")
@operation(
    summary="One model (by id or name; :version or @alias must exist) with its versions and aliases",
    responses={200: responses.ModelOut},
    errors=(404,),
)
def get_model(model_id: str):
    """One model, its versions (with metrics and lineage) and its aliases."""
    return jsonify(present.model(services().db.models.get(principal().tenant_id, model_id)))


@bp.delete("/models/<model_id>")
@operation(
    summary="Delete a model with all its versions, or one version (name:3, name@alias), and their files",
    responses={200: responses.Deleted},
    errors=(403, 404, 409),
)
def delete_model(model_id: str):
    """Delete the model or the version ``model_id`` names; 409 while a queued or running job uses it."""
    who = principal()
    svc = services()
    svc.store.check()  # a store that cannot be reached: 503 before the record goes, not an orphaned file
    gone = svc.db.models.delete(who.tenant_id, model_id, who.key_id)
    shared = svc.db.models.paths_in_use({v.path for v in gone})  # another version's file too: kept
    freed = sum(svc.store.remove_file(v.path) for v in gone if v.path not in shared)
    pinned = parse_model_ref(model_id).pinned
    body = {
        "deleted": "model_version" if pinned else "model",
        "id": gone[0].model_id if gone else model_id,
        "versions": [v.version for v in gone],
        "freed_bytes": freed,
    }
    return jsonify(body)


@bp.put("/models/<model_id>/aliases/<alias>")
@operation(
    summary="Point an alias (production, staging, ...) of a model at one of its versions; recorded as an event",
    body=responses.AliasTarget,
    responses={200: responses.ModelOut},
    errors=(403, 404, 415, 422),
)
def set_alias(model_id: str, alias: str):
    """Create or move ``alias`` to ``{"version": N}``; the model answers with its aliases."""
    target = parse(AliasTarget, json_body())
    who = principal()
    model = services().db.models.set_alias(who.tenant_id, model_id, alias, target.version, who.key_id)
    return jsonify(present.model(model))


@bp.delete("/models/<model_id>/aliases/<alias>")
@operation(
    summary="Remove an alias of a model; recorded as an event",
    responses={200: responses.ModelOut},
    errors=(403, 404),
)
def delete_alias(model_id: str, alias: str):
    """Remove ``alias``; the model answers with the aliases left."""
    who = principal()
    svc = services()
    svc.db.models.delete_alias(who.tenant_id, model_id, alias, who.key_id)
    return jsonify(present.model(svc.db.models.get(who.tenant_id, model_id)))


@bp.get("/models/<model_id>/events")
@operation(
    summary="A model's registry history: aliases set, moved and removed, versions deleted",
    responses={200: responses.ModelEventList},
    errors=(404,),
)
def model_events(model_id: str):
    """The model's registry events, oldest first."""
    events = services().db.models.events(principal().tenant_id, model_id)
    return jsonify({"events": [present.event(e) for e in events]})


@bp.get("/models/<model_id>/download")
@operation(
    summary="A model version's .keras file",
    responses={200: BINARY},
    errors=(400, 404),
    query=[query("version", {"type": "string", "pattern": "^[0-9]{1,9}$"}, "version number (default the latest)")],
)
def download_model(model_id: str):
    """The ``.keras`` file of ``?version=N`` (default the latest)."""
    version = request.args.get("version")
    if version is not None and parse_model_ref(model_id).pinned:
        raise InvalidRequest("give the version in the path (name:3, name@alias) or as ?version=, not both")
    ref = model_id if version is None else f"{model_id}:{version}"
    svc = services()
    record = svc.db.models.resolve(principal().tenant_id, ref)
    missing = f"model file of {model_id} version {record.version} is missing"
    name = f"{record.model_name}-v{record.version}.keras"
    return send_stored(svc.store, record.path, name, missing, as_attachment=True)
