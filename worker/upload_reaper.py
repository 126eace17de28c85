"""The reaper's part in resumable uploads: a session past its expiry is removed with its parts (its S3 multipart
upload aborted); one whose completion died half way loses its joined object too, unless its dataset was
registered. The store is cleaned before the row goes, so a pass that fails leaves the row for the next one."""

from __future__ import annotations

import logging

from api.upload_parts import UploadParts
from db.database import Database
from tensorq.core.errors import NotFound
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore

log = logging.getLogger(__name__)


def expire_uploads(db: Database, store: ArtifactStore, settings: Settings) -> list[str]:
    """Remove the expired upload sessions and what they left in the store; their ids."""
    parts = UploadParts(store, settings)
    removed: list[str] = []
    for upload in db.uploads.expired():
        if upload.status != "completed":  # a completed upload's bytes are its dataset's now
            parts.discard(upload)
            target = parts.target(upload.tenant_id, upload.id)
            if not _registered(db, upload.tenant_id, upload.id):
                store.remove_file(target)
        if db.uploads.remove(upload.id, status=upload.status):
            removed.append(upload.id)
    if removed:
        log.info("reaper: removed %d expired upload(s)", len(removed))
    return removed


def _registered(db: Database, tenant_id: str, dataset_id: str) -> bool:
    try:
        db.datasets.get(tenant_id, dataset_id)
    except NotFound:
        return False
    return True
