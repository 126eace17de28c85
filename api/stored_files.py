"""Answering with a stored file: ``send_file`` on the file store, a stream of chunks from an object store."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator

from flask import Response, send_file

from tensorq.core.errors import NotFound
from tensorq.core.store import CHUNK_BYTES, ArtifactStore


def send_stored(store: ArtifactStore, location: str, name: str, missing: str, as_attachment: bool = False) -> Response:
    """The stored file at ``location`` downloaded as ``name``; NotFound(``missing``) when it is not there."""
    here = store.local_path(location)
    if here is not None:
        if not here.is_file():
            raise NotFound(missing)
        return send_file(here, as_attachment=as_attachment, download_name=name)
    if not store.exists(location):
        raise NotFound(missing)
    size = store.size(location)

    def chunks() -> Iterator[bytes]:
        with store.open(location) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = Response(chunks(), mimetype=mimetype, direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    disposition = "attachment" if as_attachment else "inline"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{name}"'
    return response
