"""Datasets: upload (``.npz`` with ``x``, ``y``; ``.csv`` with a header; ``.parquet``; ``.jsonl``; a zip of WAV
clips), list, get (with the schema and first rows inferred at upload) and delete."""

from __future__ import annotations

import shutil
import uuid

from flask import Blueprint, jsonify, request

from api import present, responses
from api.dataset_refs import describe_reference
from api.openapi import MULTIPART, operation
from api.request_text import json_body
from api.services import principal, services
from api.uploads import multipart_file, store_upload
from ml.specs import parse
from tensorq.core.dataset_urls import resolve

bp = Blueprint("datasets", __name__)


@bp.post("/datasets")
@operation(
    summary="Upload an .npz, .csv, .parquet or .jsonl dataset, or a zip of WAV clips",
    body=MULTIPART,
    responses={201: responses.DatasetDetail},
    errors=(400, 403, 413, 415, 422, 503),
    location=True,
)
def upload_dataset():
    """Store a multipart ``file`` under a server-made name and register it; 201 with the dataset."""
    upload = multipart_file("datasets")
    svc = services()
    who = principal()
    name = (request.form.get("name") or upload.filename or "dataset")[:200]
    svc.quotas.check_dataset_bytes(who, request.content_length or 0)
    stored = store_upload(
        upload.stream,
        svc.store,
        who.tenant_id,
        svc.settings.max_upload_bytes,
        svc.settings.max_dataset_array_bytes,
        svc.settings.max_cell_bytes,
    )
    try:
        record = svc.db.datasets.add(
            who.tenant_id,
            dataset_id=stored.id,
            name=name,
            fmt=stored.format,
            path=stored.location,
            size_bytes=stored.size_bytes,
            info=stored.info,
            profile=stored.profile,
            limit_bytes=svc.quotas.dataset_bytes_limit(who),  # the bytes written, counted atomically
        )
    except Exception:
        svc.store.remove_file(stored.location)
        raise
    response = jsonify(present.dataset(record, preview=True))
    response.status_code = 201
    response.headers["Location"] = f"/v1/datasets/{record.id}"
    return response


@bp.post("/datasets/references")
@operation(
    summary="Register a dataset by URL (a Parquet or CSV file, a folder or a glob of shards); nothing is uploaded",
    body=responses.DatasetReference,
    responses={201: responses.DatasetDetail},
    errors=(400, 403, 415, 503),
    location=True,
)
def register_dataset():
    """Check the URL against the tenant's allowed prefixes (403 before anything is read), list its shards,
    describe it from their metadata and a bounded sample, and register it; 201 with the dataset."""
    body = parse(responses.DatasetReference, json_body())
    svc = services()
    who = principal()
    reference = resolve(body.url, svc.settings.dataset_prefixes(who.tenant_name), svc.settings)
    folder = svc.store.scratch_folder("samples", uuid.uuid4().hex)
    try:
        info, profile = describe_reference(reference, svc.settings, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record = svc.db.datasets.add(
        who.tenant_id,
        dataset_id=str(uuid.uuid4()),
        name=(body.name or reference.url.rsplit("/", 1)[-1] or "dataset")[:200],
        fmt=reference.format,
        path=reference.url,
        size_bytes=0,  # the bytes stay where they are: no storage quota is used
        info=info,
        profile=profile,
    )
    response = jsonify(present.dataset(record, preview=True))
    response.status_code = 201
    response.headers["Location"] = f"/v1/datasets/{record.id}"
    return response


@bp.get("/datasets")
@operation(summary="The caller's datasets", responses={200: responses.DatasetList})
def list_datasets():
    """The caller's datasets, newest first."""
    return jsonify({"datasets": [present.dataset(d) for d in services().db.datasets.list(principal().tenant_id)]})


@bp.get("/datasets/<dataset_id>")
@operation(
    summary="One dataset, with its inferred schema (column, type, missing cells) and first rows",
    responses={200: responses.DatasetDetail},
    errors=(404,),
)
def get_dataset(dataset_id: str):
    """One of the caller's datasets, its schema and preview as stored at upload (no file is read)."""
    return jsonify(present.dataset(services().db.datasets.get(principal().tenant_id, dataset_id), preview=True))


@bp.delete("/datasets/<dataset_id>")
@operation(
    summary="Delete a dataset and its file, giving its bytes back to the storage quota",
    responses={200: responses.Deleted},
    errors=(403, 404, 409),
)
def delete_dataset(dataset_id: str):
    """Delete one of the caller's datasets; 409 while a queued or running job reads it."""
    svc = services()
    svc.store.check()  # a store that cannot be reached: 503 before the record goes, not an orphaned file
    record = svc.db.datasets.delete(principal().tenant_id, dataset_id)
    freed = svc.store.remove_file(record.path) or record.size_bytes
    return jsonify({"deleted": "dataset", "id": record.id, "freed_bytes": freed})
