"""The one place where errors become HTTP responses: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from tensorq.core.errors import TensorQError, Unavailable, storage_fault

log = logging.getLogger(__name__)

# The one code -> HTTP status table. An error's own code is looked up first, then its classes' codes.
HTTP_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "timeout": 408,
    "conflict": 409,
    "cancelled": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "out_of_range": 422,
    # A table whose column a model cannot use (no values, free text, a label with gaps), or of a type
    # tables do not hold: well-formed, refused for its content (see docs/data.md).
    "unusable_column": 422,
    "unsupported_column_type": 422,
    "resource_exhausted": 422,
    "invalid_callback_url": 422,
    "callback_url_forbidden": 422,
    "callback_url_unresolvable": 422,
    "webhook_secret_missing": 422,
    "quota_exceeded": 429,
    "internal": 500,
    "unavailable": 503,
}


def http_status(exc: TensorQError) -> int:
    """The HTTP status of ``exc``: its code's, else the nearest class code's, else 500."""
    for code in (exc.code, *(getattr(cls, "code", None) for cls in type(exc).__mro__)):
        if code in HTTP_STATUS:
            return HTTP_STATUS[code]
    return 500


def error_response(status: int, code: str, message: str, details: object = None):
    """A JSON error response."""
    response = jsonify({"error": {"code": code, "message": message, "details": details}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Map TensorQ errors, HTTP errors and anything unexpected to JSON bodies."""

    @app.errorhandler(TensorQError)
    def _tensorq_error(exc: TensorQError):
        response = error_response(http_status(exc), exc.code, exc.message, exc.details)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                response.headers[name] = value
        return response

    def _outage(exc: Exception):
        log.warning("a dependency is unavailable: %s", type(exc).__name__, exc_info=True)
        outage = Unavailable("a backing service is unavailable; retry later", details={"service": _service(exc)})
        return _tensorq_error(outage)

    for outage_class in OUTAGES:
        app.register_error_handler(outage_class, _outage)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        fault = storage_fault(exc)
        if fault is not None:
            log.warning("artifact store fault: %s", exc)
            return _tensorq_error(fault)
        log.exception("unhandled error")
        return error_response(500, "internal", "internal server error")


# A dependency's own "cannot reach it" errors that escaped a guard: each is a 503 with Retry-After.
OUTAGES = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


def _service(exc: Exception) -> str:
    """Which dependency an outage error belongs to."""
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return "database"
    return "broker"
