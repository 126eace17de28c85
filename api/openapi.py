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
from api.schemas import JobSubmission
from ml.specs import SPECS

ERROR_STATUSES = {
    400: "Malformed input or a spec that cannot run",
    401: "No key, or a bad or revoked key",
    403: "A read-only key on a route that writes",
    404: "Not found, or another tenant's",
    409: "Illegal state transition",
    413: "Body or upload too large",
    415: "Unsupported content type",
    422: "A value out of range",
    429: "A quota or rate limit was hit",
    503: "Database or broker unavailable",
}
BINARY = "binary"
MULTIPART = "multipart"
SCHEMA_MODELS: list[type[BaseModel]] = [
    JobSubmission,
    *SPECS.values(),
    responses.ErrorResponse,
    responses.JobOut,
    responses.JobPage,
    responses.EventList,
    responses.DatasetOut,
    responses.DatasetList,
    responses.ModelOut,
    responses.ModelList,
    responses.Health,
    responses.Readiness,
    responses.Identity,
]


@dataclass(frozen=True)
class Operation:
    """What the document says about one route."""

    summary: str
    responses: dict[int, type[BaseModel] | str]
    body: type[BaseModel] | str | None = None
    query: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[int, ...] = tuple(ERROR_STATUSES)
    public: bool = False


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
    schemas["JobSubmission"]["properties"]["spec"] = {
        "oneOf": [_ref(model) for model in SPECS.values()],
        "description": "The spec of the job's type: TrainSpec, PredictSpec or ExplainSpec.",
    }
    return schemas


def _content(kind: type[BaseModel] | str) -> dict[str, Any]:
    if kind == BINARY:
        return {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
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


def _operation(op: Operation, path_params: list[str], operation_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id, "summary": op.summary}
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in path_params]
    params += op.query + op.headers
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": _content(op.body)}
    answers: dict[str, Any] = {
        str(status): {"description": "OK", "content": _content(kind)} for status, kind in op.responses.items()
    }
    for status in op.errors:
        answers[str(status)] = {"description": ERROR_STATUSES[status], "content": _content(responses.ErrorResponse)}
    out["responses"] = answers
    out["security"] = [] if op.public else [{"apiKey": []}]
    return out


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route that carries metadata."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op: Operation | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if op is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        path_params = re.findall(r"{([a-z_]+)}", path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation_id = rule.endpoint.split(".")[-1]
            paths.setdefault(path, {})[method.lower()] = _operation(op, path_params, operation_id)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TensorQ",
            "version": "1",
            "description": "TensorFlow training, inference and explanation jobs behind an HTTP API.",
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "tq_<id>_<secret>"}},
        },
    }
