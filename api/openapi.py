"""The OpenAPI 3.1 document, built from the routes' own metadata and the pydantic schemas that validate."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import responses
from api.schemas import JobBatch, JobSubmission
from api.upload_schemas import UPLOAD_SCHEMAS
from ml.specs import SPECS
from ml.tuning import TuneSpec

ERROR_STATUSES = {
    400: "Malformed input, a spec that cannot run, or a NUL character in the URL or a form field",
    401: "No key, or a bad or revoked key",
    403: "A read-only key on a route that writes",
    404: "Not found, or another tenant's",
    405: "The path does not take this method (the Allow header lists those it takes)",
    409: "Illegal state transition",
    413: "Body or upload too large",
    415: "Unsupported content type",
    422: "A value out of range",
    429: "A quota or rate limit was hit; retry after Retry-After seconds",
    503: "Database or broker unavailable; retry after Retry-After seconds",
}
# Every authenticated route can answer these: the key is checked against the database, and a NUL character
# anywhere in the URL (an id, a cursor, a version) is a 400.
AUTHENTICATED_ERRORS = (400, 401, 405, 503)
BINARY = "binary"
MULTIPART = "multipart"
ARTIFACT = "artifact"
JOB_OR_EVENTS = "job_or_events"  # a Job as JSON, or (Accept: text/event-stream) a stream of its changes
SCHEMA_MODELS: list[type[BaseModel]] = [
    JobSubmission,
    JobBatch,
    responses.JobBatchResult,
    *SPECS.values(),
    TuneSpec,
    responses.ErrorResponse,
    responses.Job,
    responses.JobPage,
    responses.EventList,
    responses.LogPage,
    responses.WorkerList,
    responses.QueueList,
    responses.DatasetOut,
    responses.DatasetDetail,
    responses.DatasetList,
    responses.DatasetReference,
    responses.ModelOut,
    responses.ModelList,
    responses.AliasTarget,
    responses.ModelEventList,
    responses.Deleted,
    responses.Health,
    responses.Readiness,
    responses.Identity,
    responses.WebhookSecret,
    responses.WebhookSecretState,
    responses.WebhookDeliveryList,
    *UPLOAD_SCHEMAS,
]
TAGS = [
    {"name": "jobs", "description": "Submit, follow and cancel train, predict, explain and import jobs"},
    {"name": "datasets", "description": "Upload and list datasets"},
    {"name": "models", "description": "Registered models, their versions and files; upload a .keras model"},
    {"name": "account", "description": "The caller's tenant and key"},
    {"name": "operations", "description": "Workers and queues (no tenant's data)"},
    {"name": "health", "description": "Liveness and readiness"},
]
HEADERS = {
    "Location": {"description": "The path of what was created", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}},
    "Allow": {"description": "The methods this path takes", "schema": {"type": "string"}},
}


# What a body or answer holds: a schema, one of several schemas, or one of the non-JSON kinds above.
Kind = type[BaseModel] | tuple[type[BaseModel], ...] | str


@dataclass(frozen=True)
class Operation:
    """What the document says about one route; ``errors`` are the statuses the route itself can answer
    besides 400/401/405/503, which every authenticated route can."""

    summary: str
    responses: dict[int, Kind]
    body: Kind | None = None
    query: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[int, ...] = ()
    public: bool = False
    location: bool = False


def operation(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach OpenAPI metadata to a view function."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        view.openapi = Operation(**kwargs)  # type: ignore[attr-defined]
        return view

    return decorate


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _components() -> dict[str, Any]:
    _, top = models_json_schema([(m, "validation") for m in SCHEMA_MODELS], ref_template="#/components/schemas/{model}")
    schemas = top["$defs"]
    # The submission is a union discriminated by ``type``: each member says which spec goes with it.
    common = schemas.pop("JobSubmission")
    members = {}
    submitted: dict[str, type[BaseModel]] = {**SPECS, "tune": TuneSpec}
    for job_type, spec in submitted.items():
        name = f"{job_type.capitalize()}Submission"
        properties = {**common["properties"], "type": {"const": job_type, "type": "string"}, "spec": _ref(spec)}
        schemas[name] = {
            **common,
            "title": name,
            "description": f"A {job_type} job: its spec is a {spec.__name__}.",
            "properties": properties,
        }
        members[job_type] = f"#/components/schemas/{name}"
    schemas["JobSubmission"] = {
        "title": "JobSubmission",
        "description": common.get("description", ""),
        "oneOf": [{"$ref": ref} for ref in members.values()],
        "discriminator": {"propertyName": "type", "mapping": members},
    }
    return schemas


def _content(kind: Kind) -> dict[str, Any]:
    if isinstance(kind, tuple):
        return {"application/json": {"schema": {"oneOf": [_ref(member) for member in kind]}}}
    binary = {"schema": {"type": "string", "format": "binary"}}
    if kind == BINARY:
        return {"application/octet-stream": binary}
    if kind == ARTIFACT:
        return {"image/png": binary, "audio/x-wav": binary, "text/csv": binary, "application/octet-stream": binary}
    if kind == JOB_OR_EVENTS:
        events = "Server-Sent Events: `event: job`, `id: <revision>`, `data: <the Job as JSON>`, at each change"
        return {
            "application/json": {"schema": _ref(responses.Job)},
            "text/event-stream": {"schema": {"type": "string", "description": events}},
        }
    if kind == MULTIPART:
        return {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}, "name": {"type": "string"}},
                    "required": ["file"],
                }
            }
        }
    assert isinstance(kind, type)
    return {"application/json": {"schema": _ref(kind)}}


def _headers(*names: str) -> dict[str, Any]:
    return {"headers": {name: HEADERS[name] for name in names}} if names else {}


def _answer(status: int, kind: Kind, op: Operation) -> dict[str, Any]:
    description = "Created" if status == 201 else "Accepted" if status == 202 else "OK"
    if status >= 400:
        description = ERROR_STATUSES.get(status, "Error")
    names = ("Location",) if op.location and status in (201, 202) else ("Retry-After",) if status == 503 else ()
    return {"description": description, **_headers(*names), "content": _content(kind)}


def _operation(
    op: Operation, path_params: list[str], operation_id: str, tag: str, integers: frozenset[str] = frozenset()
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id, "summary": op.summary, "tags": [tag]}
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "integer" if p in integers else "string"}}
        for p in path_params
    ]
    params += op.query + op.headers
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": _content(op.body)}
    answers: dict[str, Any] = {str(status): _answer(status, kind, op) for status, kind in op.responses.items()}
    errors = set(op.errors) | (set() if op.public else set(AUTHENTICATED_ERRORS))
    for status in sorted(errors - set(op.responses)):
        names = ("Retry-After",) if status in (429, 503) else ("Allow",) if status == 405 else ()
        answers[str(status)] = {
            "description": ERROR_STATUSES[status],
            **_headers(*names),
            "content": _content(responses.ErrorResponse),
        }
    out["responses"] = answers
    out["security"] = [] if op.public else [{"apiKey": []}]
    return out


def _tag(path: str) -> str:
    section = path.removeprefix("/v1/").split("/")[0]
    return {
        "jobs": "jobs",
        "datasets": "datasets",
        "models": "models",
        "whoami": "account",
        "webhook-secret": "account",
        "workers": "operations",
        "queues": "operations",
    }.get(section, "health")


def build_document(app: Flask, server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route that carries metadata, served from ``server_url``."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op: Operation | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if op is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        path_params = re.findall(r"{([a-z_]+)}", path)
        integers = frozenset(re.findall(r"<int:([a-z_]+)>", rule.rule))  # Flask's <int:...> converter
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation_id = rule.endpoint.split(".")[-1]
            paths.setdefault(path, {})[method.lower()] = _operation(op, path_params, operation_id, _tag(path), integers)
    _limit_wait(paths, app)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TensorQ",
            "version": "1",
            "description": "TensorFlow training, inference and explanation jobs behind an HTTP API.",
        },
        "servers": [{"url": server_url, "description": "this TensorQ API"}],
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "tq_<id>_<secret>"}},
        },
    }


def _limit_wait(paths: dict[str, dict[str, Any]], app: Flask) -> None:
    """``?wait=`` is documented up to the longest long-poll this server honours (``max_wait_s``)."""
    services = app.extensions.get("tensorq")
    if services is None:
        return
    for item in paths.values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["in"] == "query" and param["name"] == "wait":
                    param["schema"] = {**param["schema"], "maximum": services.settings.max_wait_s}
