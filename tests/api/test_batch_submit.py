"""Batch submission: ``POST /v1/jobs`` with ``{"jobs": [...]}``: all or none, in order, one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.database import Database
from tensorq.core.settings import Settings
from tests.api.test_jobs_api import TRAIN, _register_model
from tests.conftest import RecordingPublisher, make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Small limits, so that the tests reach them: 4 jobs a batch, 6 queued jobs a tenant."""
    return make_settings(tmp_path, database_url, max_batch_jobs=4, quota_queued_jobs=6)


def _predict(model: str, row: list[float] | None = None) -> dict:
    return {"type": "predict", "spec": {"model": model, "inputs": [row or [1.0, 2.0, 3.0, 4.0]]}}


def test_a_batch_is_queued_in_order_and_published(client, auth, db: Database, publisher: RecordingPublisher) -> None:
    model = _register_model(db)
    body = {
        "jobs": [_predict(model, [float(i)] * 4) for i in range(3)]
        + [{**TRAIN, "priority": 7, "name": "nightly", "tags": ["a", "b"]}]
    }
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 202, response.get_json()
    jobs = response.get_json()["jobs"]
    assert [j["type"] for j in jobs] == ["predict"] * 3 + ["train"]
    assert [j["spec"]["inputs"][0][0] for j in jobs[:3]] == [0.0, 1.0, 2.0]
    assert all(j["status"] == "queued" for j in jobs)
    assert jobs[3]["spec"]["batch_size"] == 32
    assert (jobs[3]["name"], sorted(jobs[3]["tags"])) == ("nightly", ["a", "b"])
    tagged = client.get("/v1/jobs?tag=a", headers=auth).get_json()["jobs"]
    assert [j["id"] for j in tagged] == [jobs[3]["id"]]
    assert publisher.published == [j["id"] for j in jobs]
    listed = client.get("/v1/jobs?type=predict", headers=auth).get_json()["jobs"]
    assert {j["id"] for j in listed} == {j["id"] for j in jobs[:3]}


def test_one_bad_job_fails_the_whole_batch_with_its_index(client, auth, db: Database, publisher) -> None:
    model = _register_model(db)
    for bad, status in (
        ({"type": "predict", "spec": {"model": model, "inputs": [[1.0, 2.0]]}}, 400),  # wrong input shape
        ({"type": "predict", "spec": {"model": "no-such-model", "inputs": [[1.0]]}}, 400),
        ({"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 0}}, 422),
        ({"type": "nonsense", "spec": {}}, 400),
    ):
        body = {"jobs": [_predict(model), _predict(model), bad, _predict(model)]}
        response = client.post("/v1/jobs", json=body, headers=auth)
        assert response.status_code == status, (bad, response.get_json())
        error = response.get_json()["error"]
        assert error["details"]["index"] == 2, error
        assert error["message"].startswith("jobs[2]: "), error
    assert publisher.published == []
    assert client.get("/v1/jobs?type=predict", headers=auth).get_json()["jobs"] == []


def test_batch_limits_and_malformed_batches(client, auth, db: Database, publisher) -> None:
    model = _register_model(db)
    too_many = client.post("/v1/jobs", json={"jobs": [_predict(model)] * 5}, headers=auth)
    assert too_many.status_code == 422
    assert too_many.get_json()["error"]["details"] == {"limit": 4, "jobs": 5, "setting": "max_batch_jobs"}
    assert too_many.get_json()["error"]["code"] == "batch_too_large"
    for body in ({"jobs": []}, {"jobs": "x"}, {"jobs": [_predict(model)], "type": "predict"}):
        assert client.post("/v1/jobs", json=body, headers=auth).status_code == 400, body
    assert client.post("/v1/jobs", json={"jobs": [_predict(model)] * 4}, headers=auth).status_code == 202
    # 4 queued + 3 more would pass the quota of 6: none of the 3 is queued.
    over = client.post("/v1/jobs", json={"jobs": [_predict(model)] * 3}, headers=auth)
    assert over.status_code == 429
    assert over.get_json()["error"]["details"]["quota"] == "quota_queued_jobs"
    assert len(publisher.published) == 4
    assert client.post("/v1/jobs", json={"jobs": [_predict(model)] * 2}, headers=auth).status_code == 202


def test_an_idempotency_key_covers_the_batch(client, auth, db: Database, publisher) -> None:
    model = _register_model(db)
    body = {"jobs": [_predict(model, [1.0] * 4), _predict(model, [2.0] * 4)]}
    headers = {**auth, "Idempotency-Key": "batch-1"}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    ids = [j["id"] for j in first.get_json()["jobs"]]
    assert [j["id"] for j in again.get_json()["jobs"]] == ids
    assert publisher.published == ids
    other = client.post("/v1/jobs", json={"jobs": body["jobs"][:1]}, headers=headers)
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_mismatch"
    # A single submission under the batch's key is another request for that key, as a mismatch is.
    single = client.post("/v1/jobs", json=body["jobs"][0], headers=headers)
    assert single.status_code == 422
    assert single.get_json()["error"]["code"] == "idempotency_mismatch"
    assert publisher.published == ids


def test_a_key_used_for_one_job_cannot_make_a_batch(client, auth, db: Database, publisher) -> None:
    model = _register_model(db)
    headers = {**auth, "Idempotency-Key": "single-1"}
    single = client.post("/v1/jobs", json=_predict(model), headers=headers)
    assert single.status_code == 202
    batch = client.post("/v1/jobs", json={"jobs": [_predict(model)]}, headers=headers)
    assert batch.status_code == 422, batch.get_json()
    assert batch.get_json()["error"]["code"] == "idempotency_mismatch"
    assert batch.get_json()["error"]["details"]["job_id"] == single.get_json()["id"]
    again = client.post("/v1/jobs", json=_predict(model), headers=headers)  # the single one still answers
    assert (again.status_code, again.get_json()["id"]) == (202, single.get_json()["id"])
    assert publisher.published == [single.get_json()["id"]]


def test_a_batch_meets_the_per_minute_quota_before_its_jobs_are_validated(
    client, auth, db: Database, settings: Settings, publisher
) -> None:
    model = _register_model(db)
    settings.quota_submissions_per_minute = 3
    # Larger than the quota a minute allows: it could never be accepted, so it is too large, not a 429.
    refused = client.post("/v1/jobs", json={"jobs": [_predict(model)] * 4}, headers=auth)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "batch_too_large"
    assert refused.get_json()["error"]["details"] == {"limit": 3, "jobs": 4, "setting": "quota_submissions_per_minute"}
    # A bad batch spends none of the quota: the check before validation only looks.
    bad = {"jobs": [_predict(model), {"type": "predict", "spec": {}}, _predict(model)]}
    for _ in range(3):
        assert client.post("/v1/jobs", json=bad, headers=auth).status_code == 400
    assert client.post("/v1/jobs", json={"jobs": [_predict(model)] * 2}, headers=auth).status_code == 202
    # With 1 of 3 left, a batch of 2 is a 429 at once, before its (bad) jobs are looked at.
    over = client.post("/v1/jobs", json=bad | {"jobs": bad["jobs"][:2]}, headers=auth)
    assert over.status_code == 429, over.get_json()
    assert over.get_json()["error"]["details"]["quota"] == "quota_submissions_per_minute"
    assert int(over.headers["Retry-After"]) >= 1
    assert len(publisher.published) == 2


def test_a_batch_answer_counts_its_queue_once_for_jobs_created_together(client, auth, db: Database) -> None:
    from sqlalchemy import event

    model = _register_model(db)
    client.post("/v1/jobs", json=_predict(model), headers=auth)  # one job ahead of the batch
    counts: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT COUNT"):
            counts.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        response = client.post("/v1/jobs", json={"jobs": [_predict(model) for _ in range(4)]}, headers=auth)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert response.status_code == 202, response.get_json()
    assert [j["queue_position"] for j in response.get_json()["jobs"]] == [1, 1, 1, 1]  # as each alone would read
    assert len(counts) == 2  # the queued quota's count, then the four jobs' one position
