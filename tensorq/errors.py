"""The one coded error tree of TensorQ; the API maps it to HTTP in exactly one place.

TensorQError                  base: a code, a message, details and an HTTP status
├── InvalidRequest   (400)    malformed input or a spec that cannot run
├── Unauthorized     (401)    no key, a bad key or a revoked key
├── Forbidden        (403)    a key that may not do this (read-only)
├── NotFound         (404)    missing, or another tenant's
├── Conflict         (409)    an illegal state transition
├── PayloadTooLarge  (413)    a body or upload over its limit
├── UnsupportedMedia (415)    a content type the route does not take
├── OutOfRange       (422)    a well-formed value outside its allowed range
├── QuotaExceeded    (429)    a tenant over one of its quotas (with ``retry_after``)
├── Unavailable      (503)    the database or the broker cannot be reached
│   └── StorageUnavailable    the artifact store cannot be written (read-only, full)
└── JobCancelled              raised inside a running job when a cancel is seen
"""

from __future__ import annotations

import errno
import os
from typing import Any


class TensorQError(Exception):
    """Base of every error TensorQ raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as the API's JSON error body."""
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRequest(TensorQError):
    """Malformed input, or a spec that cannot run (unknown architecture, wrong shape)."""

    status = 400
    code = "invalid_request"


class Unauthorized(TensorQError):
    """No API key, an unknown one or a revoked one."""

    status = 401
    code = "unauthorized"


class Forbidden(TensorQError):
    """A valid key whose scope does not allow the action."""

    status = 403
    code = "forbidden"


class NotFound(TensorQError):
    """The object does not exist or belongs to another tenant."""

    status = 404
    code = "not_found"


class Conflict(TensorQError):
    """The object is not in a state that allows the action."""

    status = 409
    code = "conflict"


class PayloadTooLarge(TensorQError):
    """A request body or upload over its configured limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMedia(TensorQError):
    """A content type the route does not accept."""

    status = 415
    code = "unsupported_media_type"


class OutOfRange(TensorQError):
    """A well-formed value outside its allowed range."""

    status = 422
    code = "out_of_range"


class QuotaExceeded(TensorQError):
    """A tenant is over one of its quotas; ``retry_after`` says when to try again."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Unavailable(TensorQError):
    """A backing service (database or broker) cannot be reached; retry later."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class StorageUnavailable(Unavailable):
    """The artifact store refuses writes (read-only, full, out of quota or failing); never names a path."""

    code = "storage_unavailable"


# errno values that mean the artifact store itself is at fault, not the request.
STORAGE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM})


def storage_fault(exc: BaseException) -> StorageUnavailable | None:
    """``exc`` as a StorageUnavailable (its reason, no path) when it is a storage fault, else None."""
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        reason = os.strerror(exc.errno).lower()
        return StorageUnavailable(f"the artifact store cannot be written ({reason})", details={"service": "storage"})
    return None


class JobCancelled(TensorQError):
    """Raised inside a running job when its cancellation has been requested."""

    status = 409
    code = "cancelled"
