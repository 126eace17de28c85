"""Bearer API keys on every ``/v1`` route; the key itself is never logged."""

from __future__ import annotations

from flask import g, request

from api.services import services
from tensorq.core.errors import Forbidden, Unauthorized

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def authenticate_request() -> None:
    """Resolve the caller from ``Authorization: Bearer <key>`` into ``g.principal``."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    g.principal = services().db.keys.authenticate(key.strip())
    if g.principal.read_only and request.method in WRITE_METHODS:
        raise Forbidden("this API key is read-only")
