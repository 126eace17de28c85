"""Schemathesis against /openapi.json on the app with a real database and a real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from db.database import Database
from db.migrate import upgrade
from tensorq.webapp import make_app
from tests.conftest import make_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def fuzzed(tmp_path: Path, postgres_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    """The app on a migrated Postgres database publishing to the test Redis, and a key; long-polls (a GET's
    or a submission's ``wait``) are capped short, since no worker ever ends a fuzzed job."""
    settings = make_settings(tmp_path, postgres_url, broker_url=redis_url, max_wait_s=0.2)
    upgrade(postgres_url)
    db = Database(settings)
    app = make_app(settings, database=db)
    yield app, db.keys.create("fuzz")
    db.dispose()


def test_every_operation_answers_without_server_errors_and_as_documented(fuzzed) -> None:  # type: ignore[no-untyped-def]
    app, key = fuzzed
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {key}"}
    tested = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        fuzz()
        tested.append(operation.label)
    assert len(tested) >= 14, tested
    print(f"\nfuzzed {len(tested)} operations: status counts {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= 100
    assert 200 in statuses
    assert 400 in statuses


def test_every_v1_operation_in_the_document_needs_a_key(fuzzed) -> None:  # type: ignore[no-untyped-def]
    app, _ = fuzzed
    client = app.test_client()
    document = client.get("/openapi.json").get_json()
    operations = [(path, method) for path, item in document["paths"].items() for method in item]
    v1 = [(p, m) for p, m in operations if p.startswith("/v1/")]
    assert len(v1) >= 11
    for path, method in v1:
        concrete = path
        for param in document["paths"][path][method].get("parameters", []):
            if param["in"] == "path":  # an integer part (a part index) must look like one to reach the route
                filler = "1" if param["schema"]["type"] == "integer" else f"x{param['name']}"
                concrete = concrete.replace("{" + param["name"] + "}", filler)
        response = client.open(concrete, method=method.upper())
        assert response.status_code == 401, (method, path)
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert document["paths"][path][method]["security"] == [{"apiKey": []}]


def test_document_is_openapi_3_1_built_from_the_validating_schemas(fuzzed) -> None:  # type: ignore[no-untyped-def]
    from ml.specs import TrainSpec

    document = fuzzed[0].test_client().get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    train = document["components"]["schemas"]["TrainSpec"]
    assert train == {
        **TrainSpec.model_json_schema(ref_template="#/components/schemas/{model}"),
        **{k: v for k, v in train.items() if k == "$defs"},
    } or set(train["properties"]) == set(TrainSpec.model_fields)
    assert train["properties"]["epochs"]["maximum"] == 10_000


def test_swagger_ui_is_served_from_package_files(fuzzed) -> None:  # type: ignore[no-untyped-def]
    client = fuzzed[0].test_client()
    page = client.get("/docs/")
    assert page.status_code == 200
    assert b"swagger" in page.data.lower()
    assert client.get("/docs/swagger-ui-bundle.js").status_code == 200
    assert "'self'" in page.headers["Content-Security-Policy"]
