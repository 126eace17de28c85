"""Every request and response of the API tests, checked against the app's own OpenAPI document.

``DocumentCheck.install(app)`` adds an ``after_request`` hook: a request the server accepted (2xx)
must be valid under the document, and every answer must be one the document describes for that
operation and status (its body schema and headers). Violations are collected and the fixture that
installed the check fails the test with them.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from flask import Flask, Response, request
from openapi_core import OpenAPI
from openapi_core.contrib.flask import FlaskOpenAPIRequest, FlaskOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from werkzeug.exceptions import HTTPException

from api.openapi import build_document

SERVER = "http://localhost"


@lru_cache(maxsize=16)
def _openapi(document: str) -> OpenAPI:
    """The validator of one document (given as JSON), built once: building it validates the whole document against
    the OpenAPI schema, seconds of work that the API tests' many apps with the same document need not repeat."""
    return OpenAPI.from_dict(json.loads(document))


class DocumentCheck:
    """Validates the app's traffic against its document; ``violations`` lists what did not match."""

    def __init__(self, app: Flask) -> None:
        self.document = build_document(app, SERVER)
        self.openapi = _openapi(json.dumps(self.document, sort_keys=True))
        self.violations: list[str] = []
        self.checked = 0

    @classmethod
    def install(cls, app: Flask) -> DocumentCheck:
        """Check every request ``app`` answers from now on."""
        check = cls(app)
        app.after_request(check.after_request)
        app.extensions["tensorq.document_check"] = check
        return check

    def after_request(self, response: Response) -> Response:
        """Validate the request (when accepted) and the response; never changes the response."""
        if request.method in ("HEAD", "OPTIONS"):
            return response
        openapi_request = FlaskOpenAPIRequest(request)
        where = f"{request.method} {request.full_path.rstrip('?')} -> {response.status_code}"
        try:
            if 200 <= response.status_code < 300 and request.mimetype != "multipart/form-data":
                self.openapi.validate_request(openapi_request)
            if response.mimetype == "application/json":
                self.openapi.validate_response(openapi_request, FlaskOpenAPIResponse(response))
            else:
                self._check_media_type(response)
            self.checked += 1
        except HTTPException:
            pass  # the request body itself was refused (413): nothing of it can be read to check
        except (PathNotFound, OperationNotFound):
            if request.path.startswith("/v1/") and response.status_code not in (401, 404, 405):
                self.violations.append(f"{where}: the route is not in the document")
        except Exception as exc:  # noqa: BLE001 - every validation error is a violation to report
            self.violations.append(f"{where}: {describe(exc)}")
        return response

    def _check_media_type(self, response: Response) -> None:
        """A file answer: its status must be documented with its media type (bodies are not JSON to check)."""
        rule = request.url_rule
        if rule is None:
            raise PathNotFound(request.path)
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        operation = self.document["paths"].get(path, {}).get(request.method.lower())
        if operation is None:
            raise OperationNotFound(path, request.method)
        answer = operation["responses"].get(str(response.status_code))
        if answer is None:
            raise AssertionError(f"status {response.status_code} is not documented")
        if response.mimetype not in answer.get("content", {}):
            raise AssertionError(f"{response.mimetype} is not documented; documented: {list(answer['content'])}")


def describe(exc: Exception) -> str:
    """The validation error with its causes (openapi-core nests the schema errors)."""
    parts: list[str] = [f"{type(exc).__name__}: {exc}"]
    cause: Any = exc.__cause__
    while cause is not None:
        parts.append(f"{type(cause).__name__}: {cause}")
        for error in getattr(cause, "schema_errors", []) or []:
            parts.append(f"  {list(error.absolute_path)}: {error.message[:300]}")
        cause = cause.__cause__
    return " | ".join(parts)[:2000]
