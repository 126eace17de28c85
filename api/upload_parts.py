"""Where the parts of a resumable upload lie, on either store.

On the file store each part is a file in the store's upload area (``uploads/parts/<upload id>/``), and
completing concatenates them into a staging file under the store's root (then moved into place). On S3 an
upload *is* a multipart upload to the dataset's own object: a part sent through the API is passed on as one
``upload_part`` (the API holds that one part), a presigned part goes there straight, and completing joins them in
the store. Nothing here knows about tenants or HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

from db.uploads import UploadRecord
from tensorq.core.errors import InvalidRequest, PayloadTooLarge
from tensorq.core.multipart import Multipart
from tensorq.core.settings import Settings
from tensorq.core.store import CHUNK_BYTES, ArtifactStore


class UploadParts:
    """The parts of upload sessions in one artifact store."""

    def __init__(self, store: ArtifactStore, settings: Settings) -> None:
        self.store = store
        self.multipart = None if store.local else Multipart(store, settings)

    def target(self, tenant_id: str, upload_id: str) -> str:
        """Where an S3 upload's object will lie (the dataset's location)."""
        return self.store.location("datasets", tenant_id, f"{upload_id}.upload")

    def begin(self, tenant_id: str, upload_id: str) -> tuple[str, str | None]:
        """Prepare a new upload: its location (the parts' folder, or the S3 object) and its multipart id."""
        if self.multipart is None:
            return self.store.location("uploads", "parts", upload_id), None
        location = self.target(tenant_id, upload_id)
        return location, self.multipart.start(location)

    def _part(self, upload: UploadRecord, index: int) -> str:
        return f"{upload.location}/{index:06d}"

    def write(self, upload: UploadRecord, index: int, stream: IO[bytes]) -> int:
        """Store part ``index`` from ``stream``: exactly ``upload.part_size(index)`` bytes (413 over, 400 short)."""
        expected = upload.part_size(index)
        if self.multipart is not None:
            body = _read_exactly(stream, expected)
            assert upload.multipart_id is not None
            self.multipart.send_part(upload.location, upload.multipart_id, index + 1, body)
            return expected
        location = self._part(upload, index)
        written = 0
        try:
            with self.store.open(location, "wb") as out:
                while block := stream.read(min(CHUNK_BYTES, expected + 1 - written)):
                    written += len(block)
                    if written > expected:
                        raise _too_large(expected)
                    out.write(block)
            if written != expected:
                raise _short(expected, written)
        except BaseException:
            self.store.remove_file(location)
            raise
        return written

    def received(self, upload: UploadRecord) -> list[int]:
        """The indexes (from 0) of the parts stored whole."""
        if self.multipart is not None:
            assert upload.multipart_id is not None
            try:
                parts = self.multipart.parts(upload.location, upload.multipart_id)
            except FileNotFoundError:
                return []
            return sorted(
                n - 1 for n, part in parts.items() if 0 < n <= upload.parts and part["size"] == upload.part_size(n - 1)
            )
        found = []
        for location, size in self.store.listing(upload.location).items():
            name = location.rsplit("/", 1)[-1]
            if name.isdigit() and int(name) < upload.parts and size == upload.part_size(int(name)):
                found.append(int(name))
        return sorted(found)

    def part_url(self, upload: UploadRecord, index: int, expires_s: int) -> str:
        """A presigned URL that PUTs part ``index`` straight to the object store."""
        assert self.multipart is not None
        assert upload.multipart_id is not None
        return self.multipart.part_url(upload.location, upload.multipart_id, index + 1, expires_s)

    def assemble(self, upload: UploadRecord, staging: Path) -> tuple[str | None, Path | None]:
        """Join the parts (all received). File store: into ``staging``, returning its sha256 and the file. S3:
        into the upload's object (no sha256 computed, no local file)."""
        if self.multipart is not None:
            assert upload.multipart_id is not None
            parts = self.multipart.parts(upload.location, upload.multipart_id)
            self.multipart.complete(
                upload.location, upload.multipart_id, {n: parts[n] for n in range(1, upload.parts + 1)}
            )
            return None, None
        digest = hashlib.sha256()
        with staging.open("wb") as out:
            for index in range(upload.parts):
                with self.store.open(self._part(upload, index)) as part:
                    while block := part.read(CHUNK_BYTES):
                        digest.update(block)
                        out.write(block)
        return digest.hexdigest(), staging

    def discard(self, upload: UploadRecord) -> None:
        """Remove the parts (abort the S3 multipart upload); an upload already gone is fine."""
        if self.multipart is not None:
            if upload.multipart_id is not None:
                self.multipart.abort(upload.location, upload.multipart_id)
            return
        self.store.remove_folder(upload.location)

    def digest(self, location: str) -> str:
        """The sha256 of the stored file at ``location``, read in chunks."""
        digest = hashlib.sha256()
        with self.store.open(location) as handle:
            while block := handle.read(CHUNK_BYTES):
                digest.update(block)
        return digest.hexdigest()


def _read_exactly(stream: IO[bytes], expected: int) -> bytes:
    """``expected`` bytes of ``stream`` (one part, the most the API holds): 413 over, 400 short."""
    body = stream.read(expected + 1)
    while len(body) <= expected and (more := stream.read(expected + 1 - len(body))):
        body += more
    if len(body) > expected:
        raise _too_large(expected)
    if len(body) != expected:
        raise _short(expected, len(body))
    return body


def _too_large(expected: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the part is larger than {expected} bytes", code="part_too_large", details={"part_bytes": expected}
    )


def _short(expected: int, got: int) -> InvalidRequest:
    return InvalidRequest(
        f"the part has {got} bytes; it must have {expected}",
        code="part_size_mismatch",
        details={"part_bytes": expected, "received_bytes": got},
    )
