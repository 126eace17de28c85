"""Resumable uploads for the Python client: a large file goes in parts (``/v1/datasets/uploads``), each part
read from disk when it is sent (one part in memory), straight to the object store by presigned URL when the
server offers it, else through the API. A dropped connection is retried per part; an upload cut off altogether
is resumed by its id: only the parts the server lacks are sent again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from tensorq.client_errors import TransportError

Call = Callable[..., httpx.Response]
URL_BATCH = 100  # presigned URLs asked at a time
READ_BYTES = 1024 * 1024


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


class PartUploader:
    """Sends one file as a resumable upload through ``call`` (the client's retried request)."""

    def __init__(
        self, call: Call, *, direct: bool = True, checksum: bool = True, retries: int = 3, timeout: float = 300.0
    ) -> None:
        self.call = call
        self.direct = direct
        self.checksum = checksum
        self.retries = retries
        self.timeout = timeout

    def start(self, path: Path, name: str | None) -> dict[str, Any]:
        """Open a session for ``path`` (its size, and with ``checksum`` its sha256, checked at completion)."""
        body: dict[str, Any] = {"size_bytes": path.stat().st_size, "name": name or path.name}
        if self.checksum:
            body["sha256"] = file_sha256(path)
        return dict(self.call("POST", "/v1/datasets/uploads", json=body).json())

    def session(self, upload_id: str) -> dict[str, Any]:
        """The session ``upload_id``: which parts the server holds."""
        return dict(self.call("GET", f"/v1/datasets/uploads/{upload_id}").json())

    def send(self, path: Path, session: dict[str, Any], on_part: Callable[[int, int], None] | None = None) -> None:
        """Send every part the session lacks; ``on_part(index, parts)`` after each."""
        if session["size_bytes"] != path.stat().st_size:
            raise ValueError(f"upload {session['id']} is of a file of {session['size_bytes']} bytes, not this one")
        missing = sorted(set(range(session["parts"])) - set(session["received"]))
        urls: dict[int, str] = {}
        with path.open("rb") as handle:
            for position, index in enumerate(missing):
                if self.direct and session["presigned"] and index not in urls:
                    urls.update(self._urls(session["id"], missing[position : position + URL_BATCH]))
                body = _read_part(handle, session, index)
                self._retrying(session["id"], index, body, urls.get(index))
                if on_part is not None:
                    on_part(index, session["parts"])

    def complete(self, upload_id: str) -> dict[str, Any]:
        """Join the parts into a dataset; its JSON."""
        return dict(self.call("POST", f"/v1/datasets/uploads/{upload_id}/complete").json())

    def _urls(self, upload_id: str, indexes: list[int]) -> dict[int, str]:
        answer = self.call("POST", f"/v1/datasets/uploads/{upload_id}/urls", json={"parts": indexes}).json()
        return {item["index"]: item["url"] for item in answer["urls"]}

    def _put(self, upload_id: str, index: int, body: bytes, url: str | None) -> None:
        if url is None:
            headers = {"Content-Type": "application/octet-stream"}
            self.call("PUT", f"/v1/datasets/uploads/{upload_id}/parts/{index}", content=body, headers=headers)
            return
        try:
            response = httpx.put(url, content=body, timeout=self.timeout)  # signed: no API key sent
        except httpx.TransportError as exc:
            raise TransportError(f"PUT part {index}: {exc}") from exc
        if response.status_code >= 300:
            raise TransportError(f"PUT part {index} to the object store: HTTP {response.status_code}")
        etag = response.headers.get("ETag", "").strip('"')
        if len(etag) == 32 and etag != hashlib.md5(body, usedforsecurity=False).hexdigest():
            raise TransportError(f"part {index} arrived altered (its ETag is not its MD5)")  # sent again

    def _retrying(self, upload_id: str, index: int, body: bytes, url: str | None) -> None:
        """Send one part, again after a dropped connection (a re-sent part replaces the earlier one)."""
        for attempt in range(self.retries + 1):
            try:
                self._put(upload_id, index, body, url)
                return
            except TransportError:
                if attempt == self.retries:
                    raise


def _read_part(handle: IO[bytes], session: dict[str, Any], index: int) -> bytes:
    """Part ``index`` of the file: ``part_bytes`` from its offset (the last part the rest)."""
    handle.seek(index * session["part_bytes"])
    return handle.read(session["part_bytes"])
