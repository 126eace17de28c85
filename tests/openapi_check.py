"""Every request and response of the API tests, checked against the app's own OpenAPI document.

``DocumentCheck.install(app)`` adds an ``after_request`` hook: a request the server accepted (2xx)
must be valid under the document, and every answer must be one the document describes for that
operation and status (its body schema and headers). Every job object in an answer (where the document
puts a ``Job`` or a ``JobSummary``) must also have exactly the keys of ``api.present.JOB_KEYS``: the
document lets optional keys be left out, the API never does. Violations are collected and the fixture
that installed the check fails the test with them.
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

from api.jobs import listed_fields
from api.openapi import build_document
from api.present import HEAVY_FIELDS, JOB_KEYS
from tensorq.core.errors import TensorQError

SERVER = "http://localhost"
# The document's schemas of a job: a whole one, and a listing's summary (``?fields=`` adds its heavy keys).
JOB_SCHEMA, SUMMARY_SCHEMA = "#/components/schemas/Job", "#/components/schemas/JobSummary"


@lru_cache(maxsize=16)
def _openapi(document: str) -> OpenAPI:
    """The validator of one document (given as JSON), built once: building it validates the whole document against
    the OpenAPI schema, seconds of work that the API tests' many apps with the same document need not repeat."""
    return OpenAPI.from_dict(json.loads(document))


STREAMED = ("multipart/form-data", "application/octet-stream")


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
            # A file body (multipart, or an upload's raw part) was streamed by the view: nothing left to read.
            if 200 <= response.status_code < 300 and request.mimetype not in STREAMED:
                self.openapi.validate_request(openapi_request)
            if response.mimetype == "application/json":
                self.openapi.validate_response(openapi_request, FlaskOpenAPIResponse(response))
                self._check_job_keys(response)
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

    def _check_job_keys(self, response: Response) -> None:
        """Every job object of a JSON answer has exactly the presenter's keys (AssertionError naming those that
        are missing or extra)."""
        answer = self._operation()["responses"].get(str(response.status_code), {})
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return
        try:
            listed = listed_fields(request.args.get("fields"))
        except TensorQError:  # a route that takes no ``fields``: it answers no summaries
            listed = set()
        wrong = job_key_errors(self.document, schema, response.get_json(silent=True), listed)
        if wrong:
            raise AssertionError("; ".join(wrong))

    def _check_media_type(self, response: Response) -> None:
        """A file answer: its status must be documented with its media type (bodies are not JSON to check)."""
        answer = self._operation()["responses"].get(str(response.status_code))
        if answer is None:
            raise AssertionError(f"status {response.status_code} is not documented")
        if response.mimetype not in answer.get("content", {}):
            raise AssertionError(f"{response.mimetype} is not documented; documented: {list(answer['content'])}")

    def _operation(self) -> dict[str, Any]:
        """The document's operation of this request (PathNotFound, OperationNotFound when it has none)."""
        rule = request.url_rule
        if rule is None:
            raise PathNotFound(request.path)
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        operation = self.document["paths"].get(path, {}).get(request.method.lower())
        if operation is None:
            raise OperationNotFound(path, request.method)
        return operation


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


def job_key_errors(document: dict[str, Any], schema: dict[str, Any], body: Any, listed: set[str]) -> list[str]:
    """What is wrong with the keys of each job object in ``body`` (valid under ``schema`` of ``document``):
    a whole job has every key of ``JOB_KEYS`` and no other; a listing's summary has them all but the heavy
    ones ``?fields=`` did not ask for (``listed``)."""
    whole = set(JOB_KEYS)
    summary = whole - (set(HEAVY_FIELDS) - listed)
    wrong: list[str] = []
    for ref, job in _job_objects(document, schema, body):
        expected = summary if ref == SUMMARY_SCHEMA else whole
        missing, extra = sorted(expected - set(job)), sorted(set(job) - expected)
        if missing or extra:
            wrong.append(f"job {job.get('id')} ({ref.rsplit('/', 1)[-1]}): missing keys {missing}, extra keys {extra}")
    return wrong


def _job_objects(document: dict[str, Any], schema: dict[str, Any], data: Any) -> list[tuple[str, dict[str, Any]]]:
    """The job objects in ``data`` with the reference of the job schema they stand under; a union's branches
    are followed where ``data`` fits them (``_fits``)."""
    ref = schema.get("$ref")
    if ref in (JOB_SCHEMA, SUMMARY_SCHEMA):
        return [(ref, data)] if isinstance(data, dict) else []
    if ref is not None:
        return _job_objects(document, _resolve(document, ref), data)
    found: list[tuple[str, dict[str, Any]]] = []
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        if _fits(document, branch, data):
            found += _job_objects(document, branch, data)
    for part in schema.get("allOf", []):
        found += _job_objects(document, part, data)
    return found + _nested_job_objects(document, schema, data)


def _nested_job_objects(
    document: dict[str, Any], schema: dict[str, Any], data: Any
) -> list[tuple[str, dict[str, Any]]]:
    """The job objects in ``data``'s properties or items, where ``schema`` describes them."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(data, dict):
        for name, value in data.items():
            if name in schema.get("properties", {}):
                found += _job_objects(document, schema["properties"][name], value)
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        for item in data:
            found += _job_objects(document, schema["items"], item)
    return found


def _fits(document: dict[str, Any], schema: dict[str, Any], data: Any) -> bool:
    """Whether ``data`` may be what the union branch ``schema`` describes: its JSON type, and for an object
    the keys it requires (the full validation of the answer is openapi-core's)."""
    if "$ref" in schema:
        return _fits(document, _resolve(document, schema["$ref"]), data)
    branches = schema.get("oneOf", []) + schema.get("anyOf", [])
    if branches:
        return any(_fits(document, branch, data) for branch in branches)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return isinstance(data, dict) and set(schema.get("required", [])) <= set(data)
    if kind == "array":
        return isinstance(data, list)
    if kind == "null":
        return data is None
    return not isinstance(data, dict | list)


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    """The schema a local ``#/...`` reference names."""
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
