"""The one coded error tree of TensorQ. Errors carry codes; only ``api/errors.py`` knows HTTP statuses.

TensorQError       internal                base: a code, a message and details
├── InvalidRequest   invalid_request         malformed input or a spec that cannot run
├── Unauthorized     unauthorized            no key, a bad key or a revoked key
├── Forbidden        forbidden               a key that may not do this (read-only)
├── NotFound         not_found               missing, or another tenant's
├── Conflict         conflict                an illegal state transition
├── PayloadTooLarge  payload_too_large       a body or upload over its limit
├── UnsupportedMedia unsupported_media_type  a content type the route does not take
├── OutOfRange       out_of_range            a well-formed value outside its allowed range
├── QuotaExceeded    quota_exceeded          a tenant over one of its quotas (with ``retry_after``)
├── Unavailable      unavailable             the database or the broker cannot be reached
│   └── StorageUnavailable  storage_unavailable  the artifact store cannot be written (read-only, full)
└── JobCancelled     cancelled               raised inside a running job when a cancel is seen

An instance may carry a more precise code (``InvalidRequest(..., code="unknown_model")``); the API
answers with the status of the most precise code it knows, else of the class's code.
"""

from __future__ import annotations

import errno
import os
from typing import Any


class TensorQError(Exception):
    """Base of every error TensorQ raises on purpose."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as a job's ``error`` and the API's error body carry it."""
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRequest(TensorQError):
    """Malformed input, or a spec that cannot run (unknown architecture, wrong shape)."""

    code = "invalid_request"


class Unauthorized(TensorQError):
    """No API key, an unknown one or a revoked one."""

    code = "unauthorized"


class Forbidden(TensorQError):
    """A valid key whose scope does not allow the action."""

    code = "forbidden"


class NotFound(TensorQError):
    """The object does not exist or belongs to another tenant."""

    code = "not_found"


class Conflict(TensorQError):
    """The object is not in a state that allows the action."""

    code = "conflict"


class PayloadTooLarge(TensorQError):
    """A request body or upload over its configured limit."""

    code = "payload_too_large"


class UnsupportedMedia(TensorQError):
    """A content type the route does not accept."""

    code = "unsupported_media_type"


class OutOfRange(TensorQError):
    """A well-formed value outside its allowed range."""

    code = "out_of_range"


class QuotaExceeded(TensorQError):
    """A tenant is over one of its quotas; ``retry_after`` says when to try again."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Unavailable(TensorQError):
    """A backing service (database or broker) cannot be reached; retry later."""

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

    code = "cancelled"
