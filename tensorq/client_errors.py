"""The exceptions the Python client raises: one class per error code the API answers with.

TensorQClientError                      base of everything the client raises on purpose
├── TransportError                      the API could not be reached (connection refused, timeout)
├── JobWaitTimeout (also TimeoutError)  a job did not finish within the time given to ``wait``
└── APIError                            an error answer: ``status``, ``code``, ``message``, ``details``
    ├── InvalidRequest       400  invalid_request: malformed input, a spec that cannot run
    │   ├── UnknownDataset   400  unknown_dataset: the spec names a dataset that is not the tenant's
    │   └── UnknownModel     400  unknown_model: the spec names a model that is not the tenant's
    ├── Unauthorized         401  unauthorized: no key, a bad key or a revoked key
    ├── Forbidden            403  forbidden: a read-only key tried to write
    ├── NotFound             404  not_found: missing, or another tenant's
    ├── MethodNotAllowed     405  method_not_allowed
    ├── Conflict             409  conflict: an illegal transition (cancel a finished job)
    ├── PayloadTooLarge      413  payload_too_large: a body or upload over its limit
    │   └── StorageQuotaExceeded  413  storage_quota_exceeded: the tenant's storage is full
    ├── UnsupportedMediaType 415  unsupported_media_type
    ├── OutOfRange           422  out_of_range: a well-formed value outside its range
    │   └── IdempotencyMismatch   422  idempotency_mismatch: the key was used with another body
    ├── RateLimited          429  quota_exceeded: submissions or queued/running jobs over quota
    ├── ServerError          500  internal
    └── Unavailable          503  unavailable: database or broker down

``RateLimited`` and ``Unavailable`` carry ``retry_after`` (seconds); the client retries them itself
a bounded number of times before raising. A code the client does not know maps by its status to the
nearest class above (else ``APIError``), so a newer server never breaks an older client.
"""

from __future__ import annotations

from typing import Any


class TensorQClientError(Exception):
    """Base of every error the client raises on purpose."""


class TransportError(TensorQClientError):
    """The API could not be reached: connection refused, DNS, or a timeout on the wire."""


class JobWaitTimeout(TensorQClientError, TimeoutError):
    """A job was still not finished when ``wait`` ran out of time."""


class APIError(TensorQClientError):
    """An error answer from the API, with its status, code, message and details."""

    status: int = 0
    code: str = "error"

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after


class InvalidRequest(APIError):
    """400: malformed input, or a spec that cannot run."""

    status, code = 400, "invalid_request"


class UnknownDataset(InvalidRequest):
    """400: the spec names a dataset that does not exist or is another tenant's."""

    code = "unknown_dataset"


class UnknownModel(InvalidRequest):
    """400: the spec names a model that does not exist or is another tenant's."""

    code = "unknown_model"


class Unauthorized(APIError):
    """401: no key, an unknown key or a revoked key."""

    status, code = 401, "unauthorized"


class Forbidden(APIError):
    """403: a valid key whose scope does not allow the action (read-only)."""

    status, code = 403, "forbidden"


class NotFound(APIError):
    """404: the object does not exist or belongs to another tenant."""

    status, code = 404, "not_found"


class MethodNotAllowed(APIError):
    """405: the route does not take this method."""

    status, code = 405, "method_not_allowed"


class Conflict(APIError):
    """409: the object is not in a state that allows the action."""

    status, code = 409, "conflict"


class PayloadTooLarge(APIError):
    """413: a request body or upload over its limit."""

    status, code = 413, "payload_too_large"


class StorageQuotaExceeded(PayloadTooLarge):
    """413: the tenant's dataset or model storage quota is full."""

    code = "storage_quota_exceeded"


class UnsupportedMediaType(APIError):
    """415: a content type the route does not accept."""

    status, code = 415, "unsupported_media_type"


class OutOfRange(APIError):
    """422: a well-formed value outside its allowed range."""

    status, code = 422, "out_of_range"


class IdempotencyMismatch(OutOfRange):
    """422: the Idempotency-Key was already used with a different request body."""

    code = "idempotency_mismatch"


class RateLimited(APIError):
    """429: the tenant is over a quota; ``retry_after`` says when to try again."""

    status, code = 429, "quota_exceeded"


class ServerError(APIError):
    """500: the server failed; a bug to report."""

    status, code = 500, "internal"


class Unavailable(APIError):
    """503: the database or the broker cannot be reached; ``retry_after`` says when to try again."""

    status, code = 503, "unavailable"


_LEAVES: tuple[type[APIError], ...] = (
    InvalidRequest,
    UnknownDataset,
    UnknownModel,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    StorageQuotaExceeded,
    UnsupportedMediaType,
    OutOfRange,
    IdempotencyMismatch,
    RateLimited,
    ServerError,
    Unavailable,
)
BY_CODE: dict[str, type[APIError]] = {cls.code: cls for cls in _LEAVES}
BY_STATUS: dict[int, type[APIError]] = {cls.status: cls for cls in _LEAVES if cls.__bases__ == (APIError,)}
# werkzeug names some codes differently from TensorQ's own errors.
BY_CODE.update({"too_many_requests": RateLimited, "request_entity_too_large": PayloadTooLarge})


def error_for(status: int, code: str, message: str, details: Any = None, retry_after: float | None = None) -> APIError:
    """The exception for an error answer: by its code, else by its status, else ``APIError``."""
    cls = BY_CODE.get(code) or BY_STATUS.get(status) or APIError
    return cls(status, code, message, details, retry_after=retry_after)
