"""Resumable dataset uploads: open a session, send its parts (through the API, or on S3 straight to the store
by presigned URL), learn which arrived, complete (joined, checked, profiled and registered like a one-request
upload, the storage quota counted then) or abort. Server-made names only; a tenant sees only its own."""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, jsonify, request

from api import present, responses
from api.openapi import BINARY, operation
from api.request_text import json_body
from api.services import principal, services
from api.upload_finish import describe_completed
from api.upload_parts import UploadParts
from api.upload_schemas import PartStored, PartUrlRequest, PartUrls, UploadAborted, UploadOut, UploadStart
from db.records import DatasetRecord
from db.uploads import UploadRecord
from ml.specs import parse
from tensorq.core.errors import Conflict, InvalidRequest, OutOfRange, PayloadTooLarge, StorageUnavailable
from tensorq.core.settings import Settings

bp = Blueprint("uploads", __name__)

S3_MAX_PARTS = 10_000
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def largest_part(settings: Settings) -> int:
    """The largest part any session takes: ``upload_chunk_bytes``, or more where S3's 10,000 parts need it."""
    return max(settings.upload_chunk_bytes, -(-settings.max_chunked_upload_bytes // S3_MAX_PARTS))


def _parts() -> UploadParts:
    svc = services()
    return UploadParts(svc.store, svc.settings)


def _present(upload: UploadRecord, received: list[int], presigned: bool) -> dict[str, object]:
    return {
        "id": upload.id,
        "name": upload.name,
        "status": upload.status,
        "size_bytes": upload.size_bytes,
        "part_bytes": upload.chunk_bytes,
        "parts": upload.parts,
        "received": received,
        "missing": upload.parts - len(received),
        "presigned": presigned,
        "expires_at": upload.expires_at.isoformat(),
        "dataset_id": upload.id if upload.status == "completed" else None,
    }


@bp.post("/datasets/uploads")
@operation(
    summary="Open a resumable upload of a large dataset: send its parts, then complete it",
    body=UploadStart,
    responses={201: UploadOut},
    errors=(413, 415, 422),
    location=True,
)
def start_upload():
    """Open a session for a file of ``size_bytes``; 201 with its part size, part count and expiry."""
    body = parse(UploadStart, json_body())
    svc = services()
    who = principal()
    if body.size_bytes > svc.settings.max_chunked_upload_bytes:
        raise PayloadTooLarge(
            f"an upload may have at most {svc.settings.max_chunked_upload_bytes} bytes",
            code="upload_too_large",
            details={"limit": svc.settings.max_chunked_upload_bytes},
        )
    svc.quotas.check_dataset_bytes(who, body.size_bytes)
    parts = _parts()
    chunk = svc.settings.upload_chunk_bytes
    if parts.multipart is not None:
        chunk = max(chunk, -(-body.size_bytes // S3_MAX_PARTS))
    upload_id = str(uuid.uuid4())
    location, multipart_id = parts.begin(who.tenant_id, upload_id)
    upload = svc.db.uploads.create(
        who.tenant_id,
        upload_id=upload_id,
        name=(body.name or "dataset")[:200],
        size_bytes=body.size_bytes,
        chunk_bytes=chunk,
        sha256=body.sha256,
        mode="parts" if parts.multipart is None else "multipart",
        location=location,
        multipart_id=multipart_id,
        expires_s=svc.settings.upload_expiry_s,
    )
    response = jsonify(_present(upload, [], parts.multipart is not None))
    response.status_code = 201
    response.headers["Location"] = f"/v1/datasets/uploads/{upload.id}"
    return response


@bp.get("/datasets/uploads/<upload_id>")
@operation(
    summary="An upload session: which parts arrived (to resume), until when it stays open",
    responses={200: UploadOut},
    errors=(404,),
)
def get_upload(upload_id: str):
    """The caller's session, with the indexes of the parts stored whole."""
    upload = services().db.uploads.get(principal().tenant_id, upload_id)
    parts = _parts()
    received = parts.received(upload) if upload.status == "open" else list(range(upload.parts))
    return jsonify(_present(upload, received, parts.multipart is not None))


def _open(upload_id: str) -> UploadRecord:
    """The caller's session while it takes parts; 409 ``upload_not_open`` once completing or completed."""
    upload = services().db.uploads.get(principal().tenant_id, upload_id)
    if upload.status != "open":
        raise Conflict(f"the upload is {upload.status}", code="upload_not_open")
    return upload


def _index(upload: UploadRecord, index: int) -> int:
    if not 0 <= index < upload.parts:
        raise OutOfRange(
            f"part index {index} is outside 0..{upload.parts - 1}",
            code="part_out_of_range",
            details={"parts": upload.parts},
        )
    return index


def _check_range(upload: UploadRecord, index: int) -> None:
    """An optional ``Content-Range: bytes a-b/total`` must name exactly part ``index``."""
    header = request.headers.get("Content-Range")
    if header is None:
        return
    match = CONTENT_RANGE.match(header.strip())
    start = index * upload.chunk_bytes
    end = start + upload.part_size(index) - 1
    if match is None or (int(match[1]), int(match[2])) != (start, end) or match[3] not in ("*", str(upload.size_bytes)):
        raise InvalidRequest(
            f"Content-Range of part {index} must be bytes {start}-{end}/{upload.size_bytes}",
            code="content_range_mismatch",
        )


@bp.put("/datasets/uploads/<upload_id>/parts/<int:index>")
@operation(
    summary="Send one part (its index from 0; a re-sent part replaces the earlier one)",
    body=BINARY,
    responses={200: PartStored},
    errors=(404, 409, 413, 422),
)
def put_part(upload_id: str, index: int):
    """Store part ``index`` of the caller's open session: exactly its size (413 over, 400 short)."""
    upload = _open(upload_id)
    _index(upload, index)
    _check_range(upload, index)
    size = _parts().write(upload, index, request.stream)
    return jsonify({"index": index, "size_bytes": size})


@bp.post("/datasets/uploads/<upload_id>/urls")
@operation(
    summary="Presigned URLs that PUT parts straight to the object store (S3 store only)",
    body=PartUrlRequest,
    responses={200: PartUrls},
    errors=(404, 409, 415, 422),
)
def part_urls(upload_id: str):
    """A presigned ``upload_part`` URL per asked part; 409 ``presign_unsupported`` on the file store."""
    body = parse(PartUrlRequest, json_body())
    upload = _open(upload_id)
    parts = _parts()
    if parts.multipart is None:
        raise Conflict("this store takes parts through the API only", code="presign_unsupported")
    expires = services().settings.upload_url_expiry_s
    urls = [
        {"index": i, "method": "PUT", "url": parts.part_url(upload, _index(upload, i), expires)}
        for i in dict.fromkeys(body.parts)
    ]
    return jsonify({"urls": urls, "expires_at": (datetime.now(UTC) + timedelta(seconds=expires)).isoformat()})


@bp.post("/datasets/uploads/<upload_id>/complete")
@operation(
    summary="Complete an upload: join and check its parts, count it against the storage quota, register the dataset",
    responses={201: responses.DatasetDetail},
    errors=(404, 409, 413, 422),
    location=True,
)
def complete_upload(upload_id: str):
    """Join the parts (409 ``upload_incomplete`` naming the missing ones), check the size and sha256, profile
    and register the dataset under the storage quota; a content or quota refusal removes the upload."""
    svc = services()
    who = principal()
    upload = svc.db.uploads.get(who.tenant_id, upload_id)
    if upload.status == "completed":
        return _created(svc.db.datasets.get(who.tenant_id, upload.id))
    if not svc.db.uploads.move(upload.id, "open", "completing"):
        raise Conflict("the upload is being completed", code="upload_not_open")
    parts = _parts()
    try:
        received = set(parts.received(upload))
    except BaseException:
        svc.db.uploads.move(upload.id, "completing", "open")
        raise
    missing = [i for i in range(upload.parts) if i not in received]
    if missing:
        svc.db.uploads.move(upload.id, "completing", "open")
        raise Conflict(
            f"{len(missing)} part(s) still missing",
            code="upload_incomplete",
            details={"missing": len(missing), "missing_parts": missing[:100]},
        )
    target = parts.target(who.tenant_id, upload.id)
    folder = svc.store.scratch_folder("uploads", uuid.uuid4().hex)
    try:
        digest, joined = parts.assemble(upload, folder / "joined")
        if joined is not None:
            svc.store.put(joined, target, move=True)
            parts.discard(upload)
        size = svc.store.size(target)
        if size != upload.size_bytes:
            raise InvalidRequest(f"the upload has {size} bytes, not {upload.size_bytes}", code="size_mismatch")
        if upload.sha256 is not None and (digest or parts.digest(target)) != upload.sha256:
            raise InvalidRequest("the upload's sha256 does not match", code="checksum_mismatch")
        fmt, info, profile = describe_completed(svc.store, svc.settings, target, size, folder)
        record = svc.db.datasets.add(
            who.tenant_id,
            dataset_id=upload.id,
            name=upload.name,
            fmt=fmt,
            path=target,
            size_bytes=size,
            info=info,
            profile=profile,
            limit_bytes=svc.quotas.dataset_bytes_limit(who),  # counted now, atomically
        )
    except StorageUnavailable:
        svc.db.uploads.move(upload.id, "completing", "open")  # the parts stay: complete again later
        raise
    except BaseException:
        _discard(upload, target)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    svc.db.uploads.move(upload.id, "completing", "completed")
    return _created(record)


def _created(record: DatasetRecord) -> Response:
    response = jsonify(present.dataset(record, preview=True))
    response.status_code = 201
    response.headers["Location"] = f"/v1/datasets/{record.id}"
    return response


def _discard(upload: UploadRecord, target: str) -> None:
    """Remove a refused upload's parts, joined file and session (a store that cannot be reached leaves them to
    the reaper, at the session's expiry)."""
    svc = services()
    with contextlib.suppress(StorageUnavailable):
        _parts().discard(upload)
        svc.store.remove_file(target)
        svc.db.uploads.remove(upload.id)


@bp.delete("/datasets/uploads/<upload_id>")
@operation(summary="Abort an upload and remove its parts", responses={200: UploadAborted}, errors=(404, 409))
def abort_upload(upload_id: str):
    """Remove the caller's open session and its parts; 409 while it is being completed."""
    svc = services()
    upload = _open(upload_id)
    svc.store.check()  # a store that cannot be reached: 503 before the session goes, not orphaned parts
    if not svc.db.uploads.move(upload.id, "open", "aborting"):
        raise Conflict("the upload is being completed", code="upload_not_open")
    _parts().discard(upload)
    svc.db.uploads.remove(upload.id)
    return jsonify({"aborted": "upload", "id": upload.id})
