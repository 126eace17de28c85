"""The OpenAPI document itself: valid OpenAPI 3.1, covering every route, and saying what the server does."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from db.records import EVENT_KINDS, JOB_TYPES
from ml.catalog import ARCHITECTURES, EXPLAIN_METHODS
from ml.specs import SPECS


@pytest.fixture
def document(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The document as the app serves it."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _validator(document: dict[str, Any], name: str) -> OAS31Validator:
    return OAS31Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def test_the_document_is_valid_openapi_3_1_with_servers_and_tags(document: dict[str, Any]) -> None:
    validate(document)
    assert document["servers"] == [{"url": "http://localhost", "description": "this TensorQ API"}]
    tags = {t["name"] for t in document["tags"]}
    for item in document["paths"].values():
        for op in item.values():
            assert op["tags"]
            assert set(op["tags"]) <= tags


def test_every_v1_route_is_documented(app) -> None:  # type: ignore[no-untyped-def]
    undocumented = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") and getattr(app.view_functions[rule.endpoint], "openapi", None) is None
    ]
    assert undocumented == []


def test_submissions_are_a_union_discriminated_by_type(document: dict[str, Any]) -> None:
    submission = _validator(document, "JobSubmission")
    model = "0b3a5f4e-8c1d-4f6a-9e2b-7d4c3b2a1f00"
    assert submission.is_valid({"type": "predict", "spec": {"model": model, "inputs": [[1, 2]]}})
    assert submission.is_valid({"type": "explain", "spec": {"model": model, "inputs": [[1, 2]]}})
    assert submission.is_valid({"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}})
    assert not submission.is_valid({"type": "train", "spec": {"model": model, "dataset": "d1"}})
    assert not submission.is_valid({"type": "predict", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}})
    assert not submission.is_valid({"type": "import", "spec": {"upload": "u", "model_name": "m"}})
    assert document["components"]["schemas"]["JobSubmission"]["discriminator"]["propertyName"] == "type"
    space = {"epochs": {"type": "int", "low": 1, "high": 3}}
    tune = {"train": {"architecture": "mlp", "dataset": "builtin:iris"}, "search_space": space, "n_trials": 2}
    assert submission.is_valid({"type": "tune", "spec": tune})
    assert not submission.is_valid({"type": "tune", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}})
    mapping = document["components"]["schemas"]["JobSubmission"]["discriminator"]["mapping"]
    assert set(mapping) == {*SPECS, "tune"}


def test_jobs_are_typed_by_type_with_enums_and_date_times(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["Job"]["discriminator"]["mapping"]) == set(JOB_TYPES)
    assert set(schemas["Event"]["discriminator"]["mapping"]) == set(EVENT_KINDS)
    assert schemas["JobStatus"]["enum"] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert schemas["TrainSpec"]["properties"]["architecture"]["enum"] == list(ARCHITECTURES)
    assert schemas["ExplainSpec"]["properties"]["method"]["enum"] == list(EXPLAIN_METHODS)
    assert schemas["TrainJob"]["properties"]["created_at"] == {
        "format": "date-time",
        "title": "Created At",
        "type": "string",
    }
    for name in (
        "TrainResult",
        "PredictResult",
        "RecommenderResult",
        "GenerativeResult",
        "ExplainResult",
        "ImportResult",
    ):
        assert name in schemas
    list_type = next(p for p in document["paths"]["/v1/jobs"]["get"]["parameters"] if p["name"] == "type")
    assert "import" in list_type["schema"]["enum"]
    predict_job = _validator(document, "PredictJob")
    job = {
        "id": "j",
        "type": "predict",
        "status": "succeeded",
        "spec": {"model": "0b3a5f4e", "inputs": [[1]]},
        "progress": None,
        "error": None,
        "priority": 5,
        "attempts": 1,
        "max_attempts": 3,
        "timeout_s": None,
        "cancel_requested": False,
        "created_at": "2026-01-01T00:00:00Z",
        "started_at": None,
        "finished_at": None,
    }
    assert predict_job.is_valid({**job, "result": {"task": "classify", "model_id": "m", "version": 1, "rows": 1}})
    assert predict_job.is_valid({**job, "result": {"task": "recommend", "model_id": "m", "version": 1, "items": [3]}})
    assert not predict_job.is_valid({**job, "result": {"task": "classify", "model_id": "m"}})


def test_each_route_lists_the_errors_it_can_answer_and_its_headers(document: dict[str, Any], settings) -> None:  # type: ignore[no-untyped-def]
    paths = document["paths"]
    get_job = paths["/v1/jobs/{job_id}"]["get"]["responses"]
    # 429: long-polls are capped per tenant and per process (too_many_waits); no 403/409/413/415 on a read.
    assert set(get_job) == {"200", "400", "401", "404", "405", "422", "429", "503"}
    assert "Retry-After" in get_job["429"]["headers"]
    assert "Allow" in get_job["405"]["headers"]
    assert "Retry-After" in get_job["503"]["headers"]
    submit = paths["/v1/jobs"]["post"]["responses"]
    assert {"400", "403", "413", "415", "422", "429"} <= set(submit)
    assert "409" not in submit
    assert "Location" in submit["202"]["headers"]
    assert "Retry-After" in submit["429"]["headers"]
    assert "Location" in paths["/v1/datasets"]["post"]["responses"]["201"]["headers"]
    assert "409" in paths["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    artifact = paths["/v1/jobs/{job_id}/artifacts/{name}"]["get"]["responses"]["200"]["content"]
    assert "image/png" in artifact
    assert "text/csv" in artifact
    wait = next(p for p in paths["/v1/jobs/{job_id}"]["get"]["parameters"] if p["name"] == "wait")
    assert wait["schema"]["maximum"] == settings.max_wait_s
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}


def test_a_method_the_path_does_not_take_answers_405_with_allow(client, auth) -> None:  # type: ignore[no-untyped-def]
    response = client.put("/v1/jobs", headers=auth)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert response.get_json()["error"]["code"] == "method_not_allowed"
