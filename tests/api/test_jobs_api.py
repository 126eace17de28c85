"""The jobs routes over a real database, with the broker boundary injected."""

from __future__ import annotations

import re
import threading
import time

import pytest

from db.database import Database
from db.jobs import ModelVersionDraft, NewJob
from tensorq.core.errors import Unavailable
from tests.conftest import RecordingPublisher

TRAIN = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2}}


def _register_model(db: Database, tenant_name: str = "acme", input_shape: list[int] | None = None) -> str:
    tenant = db.keys.ensure_tenant(tenant_name)
    job = db.jobs.submit(NewJob(tenant, "train", {})).job
    claim = db.jobs.claim(job.id, "w")
    assert claim is not None
    draft = ModelVersionDraft("iris", "/nowhere/model.keras", "mlp", {}, {"input_shape": input_shape or [4]})
    assert db.jobs.finish(job.id, claim.lease_token, {}, draft)
    return db.jobs.get_any(job.id).result["model_id"]


def test_submit_answers_202_with_location_and_publishes(client, auth, publisher: RecordingPublisher) -> None:
    response = client.post("/v1/jobs", json=TRAIN, headers=auth)
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["spec"]["batch_size"] == 32  # defaults are filled in and stored
    assert publisher.published == [job["id"]]
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()["status"] == "queued"


def test_a_broker_failure_keeps_the_job_for_the_outbox_then_refuses_with_503(client, auth, db, publisher) -> None:
    publisher.down = True
    response = client.post("/v1/jobs", json=TRAIN, headers=auth)
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    assert [j.id for j in db.jobs.unpublished(older_than_s=60, settle_s=0)] == [job_id]
    refused = client.post("/v1/jobs", json=TRAIN, headers=auth)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert refused.get_json()["error"]["details"] == {"service": "broker"}
    assert len(client.get("/v1/jobs", headers=auth).get_json()["jobs"]) == 1
    publisher.down = False
    time.sleep(1.1)
    assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 202


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"type": "bake", "spec": {}}, 400, "type"),
        (
            {"type": "train", "spec": {"architecture": "transformer9", "dataset": "builtin:iris"}},
            400,
            "spec.architecture",
        ),
        ({"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:mnist"}}, 400, "spec.dataset"),
        (
            {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 10**9}},
            422,
            "spec.epochs",
        ),
        (
            {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "batch_size": 0}},
            422,
            "spec.batch_size",
        ),
        ({"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "bogus": 1}}, 400, "spec.bogus"),
        ({"type": "train", "spec": TRAIN["spec"], "priority": 99}, 422, "priority"),
        ({"type": "predict", "spec": {"model": "abc"}}, 400, "spec"),
        ({"type": "explain", "spec": {"model": "abc", "inputs": [[1]], "steps": 5000}}, 422, "spec.steps"),
    ],
)
def test_bad_submissions_are_refused_and_nothing_is_stored(client, auth, db, publisher, body, status, field) -> None:
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["message"]
    assert field in [d["field"] for d in error["details"]]
    assert client.get("/v1/jobs", headers=auth).get_json()["jobs"] == []
    assert publisher.published == []


def test_malformed_json_is_400_and_wrong_content_type_415(client, auth) -> None:
    bad = client.post("/v1/jobs", data="{not json", headers={**auth, "Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["code"] == "invalid_request"
    wrong = client.post("/v1/jobs", data="type=train", headers={**auth, "Content-Type": "text/plain"})
    assert wrong.status_code == 415


def test_body_over_the_limit_is_413(client, auth, app) -> None:
    limit = app.extensions["tensorq"].settings.max_body_bytes
    response = client.post(
        "/v1/jobs", data=b"[" + b"1," * limit + b"1]", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_every_v1_route_needs_a_valid_key(client, app) -> None:
    routes = [r for r in app.url_map.iter_rules() if r.rule.startswith("/v1")]
    assert len(routes) >= 10
    for rule in routes:
        path = re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", "0", rule.rule))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            for headers in ({}, {"Authorization": "Bearer tq_nope_nope"}, {"Authorization": "Basic abc"}):
                response = client.open(path, method=method, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert "tq_nope" not in response.get_data(as_text=True)


def test_another_tenants_job_is_404_everywhere(client, auth, other_auth) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events", f"/v1/jobs/{job_id}/artifacts/a.png"):
        assert client.get(path, headers=other_auth).status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=other_auth).status_code == 404
    assert client.get("/v1/jobs", headers=other_auth).get_json()["jobs"] == []


def test_read_only_keys_may_read_but_not_submit_or_cancel(client, auth, db) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    reader = {"Authorization": f"Bearer {db.keys.create('acme', read_only=True)}"}
    assert client.get(f"/v1/jobs/{job_id}", headers=reader).status_code == 200
    assert client.post("/v1/jobs", json=TRAIN, headers=reader).status_code == 403
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=reader).status_code == 403


def test_list_filters_and_cursor(client, auth) -> None:
    ids = [client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"] for _ in range(3)]
    client.post(f"/v1/jobs/{ids[1]}/cancel", headers=auth)
    first = client.get("/v1/jobs?limit=2", headers=auth).get_json()
    second = client.get(f"/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=auth).get_json()
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == ids[::-1]
    assert second["next_cursor"] is None
    cancelled = client.get("/v1/jobs?status=cancelled", headers=auth).get_json()["jobs"]
    assert [j["id"] for j in cancelled] == [ids[1]]
    assert client.get("/v1/jobs?status=bogus", headers=auth).status_code == 400
    assert client.get("/v1/jobs?limit=0", headers=auth).status_code == 422
    assert client.get("/v1/jobs?cursor=!!!", headers=auth).status_code == 400


def test_cancel_queued_then_409_and_events_show_the_path(client, auth) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert response.status_code == 202
    assert response.get_json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 409
    events = client.get(f"/v1/jobs/{job_id}/events", headers=auth).get_json()["events"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [(None, "queued"), ("queued", "cancelled")]


def test_long_poll_returns_on_the_first_change(client, auth, db) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]

    def claim_later() -> None:
        time.sleep(0.5)
        db.jobs.claim(job_id, "w")

    threading.Thread(target=claim_later).start()
    started = time.monotonic()
    job = client.get(f"/v1/jobs/{job_id}?wait=10", headers=auth).get_json()
    assert job["status"] == "running"
    assert 0.4 < time.monotonic() - started < 5


def test_until_finished_answers_at_the_end_not_at_the_claim_or_progress(client, auth, db) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]

    def run_later() -> None:
        claim = db.jobs.claim(job_id, "w")
        time.sleep(0.2)
        db.jobs.report_progress(job_id, claim.lease_token, {"epoch": 1, "epochs": 2})
        time.sleep(0.2)
        draft = ModelVersionDraft("iris", "/nowhere/model.keras", "mlp", {}, {"input_shape": [4]})
        db.jobs.finish(job_id, claim.lease_token, {"metrics": {}, "history": {}}, draft)

    worker = threading.Thread(target=run_later)
    worker.start()
    job = client.get(f"/v1/jobs/{job_id}?wait=10&until=finished", headers=auth).get_json()
    worker.join()
    assert job["status"] == "succeeded"
    assert job["progress"] == {"epoch": 1, "epochs": 2}
    bad = client.get(f"/v1/jobs/{job_id}?wait=1&until=running", headers=auth)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["details"]["allowed"] == ["finished"]


def test_until_finished_gives_the_job_as_it_is_when_the_wait_runs_out(client, auth) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    job = client.get(f"/v1/jobs/{job_id}?wait=0.3&until=finished", headers=auth).get_json()
    assert job["status"] == "queued"


def test_submit_with_wait_answers_once_the_job_has_finished(client, auth, db, publisher) -> None:
    def run_when_published() -> None:
        deadline = time.monotonic() + 5
        while not publisher.published and time.monotonic() < deadline:
            time.sleep(0.01)
        claim = db.jobs.claim(publisher.published[0], "w")
        time.sleep(0.2)
        db.jobs.report_progress(claim.job.id, claim.lease_token, {"epoch": 1, "epochs": 1})
        draft = ModelVersionDraft("iris", "/nowhere/model.keras", "mlp", {}, {"input_shape": [4]})
        db.jobs.finish(claim.job.id, claim.lease_token, {"metrics": {}, "history": {}}, draft)

    worker = threading.Thread(target=run_when_published)
    worker.start()
    response = client.post("/v1/jobs?wait=10", json=TRAIN, headers=auth)
    worker.join()
    assert response.status_code == 202
    assert response.headers["Location"] == f"/v1/jobs/{response.get_json()['id']}"
    assert response.get_json()["status"] == "succeeded"  # not the claim, not the progress: the end


def test_submit_with_wait_gives_the_job_as_it_is_when_the_wait_runs_out(client, auth) -> None:
    response = client.post("/v1/jobs?wait=0.3", json=TRAIN, headers=auth)
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"


def test_submit_with_wait_answers_202_with_the_accepted_job_when_the_wait_fails(app, client, auth, monkeypatch) -> None:
    store = app.extensions["tensorq"].db.jobs

    def database_gone(*args: object, **kwargs: object) -> None:
        raise Unavailable("database unavailable")

    monkeypatch.setattr(store, "get", database_gone)  # the wait's reads fail; the submission's commit did not
    response = client.post("/v1/jobs?wait=5", json=TRAIN, headers=auth)
    monkeypatch.undo()
    assert response.status_code == 202  # not a 503, which a client would retry as a second job
    assert response.get_json()["status"] == "queued"
    assert [j["id"] for j in client.get("/v1/jobs", headers=auth).get_json()["jobs"]] == [response.get_json()["id"]]


def test_submit_with_a_bad_wait_is_refused_before_anything_is_queued(client, auth, publisher) -> None:
    assert client.post("/v1/jobs?wait=soon", json=TRAIN, headers=auth).status_code == 400
    assert client.post("/v1/jobs?wait=4000", json=TRAIN, headers=auth).status_code == 422
    batch = client.post("/v1/jobs?wait=1", json={"jobs": [TRAIN]}, headers=auth)
    assert batch.status_code == 400
    assert "one job" in batch.get_json()["error"]["message"]
    assert publisher.published == []
    assert client.get("/v1/jobs", headers=auth).get_json()["jobs"] == []


def test_long_poll_on_a_finished_job_answers_at_once(client, auth) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    started = time.monotonic()
    assert client.get(f"/v1/jobs/{job_id}?wait=10", headers=auth).get_json()["status"] == "cancelled"
    assert time.monotonic() - started < 1
    assert client.get(f"/v1/jobs/{job_id}?wait=soon", headers=auth).status_code == 400


def test_idempotency_key_replays_the_job_and_refuses_another_body(client, auth, publisher) -> None:
    headers = {**auth, "Idempotency-Key": "abc-123"}
    first = client.post("/v1/jobs", json=TRAIN, headers=headers)
    again = client.post("/v1/jobs", json=TRAIN, headers=headers)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert publisher.published == [first.get_json()["id"]]
    other = {**TRAIN, "priority": 1}
    assert client.post("/v1/jobs", json=other, headers=headers).status_code == 422


def test_predict_inputs_are_checked_against_the_model_signature(client, auth, db) -> None:
    model_id = _register_model(db)
    ok = client.post(
        "/v1/jobs", json={"type": "predict", "spec": {"model": model_id, "inputs": [[1, 2, 3, 4]]}}, headers=auth
    )
    assert ok.status_code == 202
    wrong = client.post(
        "/v1/jobs", json={"type": "predict", "spec": {"model": model_id, "inputs": [[1, 2, 3]]}}, headers=auth
    )
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["details"]["expected_shape"] == ["batch", 4]
    nan = client.post(
        "/v1/jobs", json={"type": "predict", "spec": {"model": model_id, "inputs": [[1, 2, 3, "NaN"]]}}, headers=auth
    )
    assert nan.status_code == 400
    unknown = client.post(
        "/v1/jobs", json={"type": "predict", "spec": {"model": "0" * 8, "inputs": [[1, 2, 3, 4]]}}, headers=auth
    )
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["code"] == "unknown_model"


def test_models_of_another_tenant_cannot_be_used_or_seen(client, other_auth, db) -> None:
    model_id = _register_model(db, "acme")
    spec = {"type": "predict", "spec": {"model": model_id, "inputs": [[1, 2, 3, 4]]}}
    assert client.post("/v1/jobs", json=spec, headers=other_auth).status_code == 400
    assert client.get(f"/v1/models/{model_id}", headers=other_auth).status_code == 404
    assert client.get(f"/v1/models/{model_id}/download", headers=other_auth).status_code == 404
    assert client.get("/v1/models", headers=other_auth).get_json()["models"] == []


def test_artifact_names_cannot_escape_the_job_folder(client, auth) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    for name in ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", ".hidden", "heatmap_0.png"):
        assert client.get(f"/v1/jobs/{job_id}/artifacts/{name}", headers=auth).status_code == 404


def test_health_and_readiness(client, publisher) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    publisher.down = True
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["checks"]["database"] == "ok"
    assert response.get_json()["checks"]["broker"].startswith("unavailable")


def test_unknown_routes_and_methods_answer_json(client, auth) -> None:
    missing = client.get("/v1/nothing", headers=auth)
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"
    assert client.delete("/v1/jobs", headers=auth).status_code == 405


def test_security_headers_on_every_response(client) -> None:
    response = client.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_metrics_count_requests_and_jobs_by_status(client, auth) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    client.post("/v1/jobs", json=TRAIN, headers=auth)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'tensorq_jobs{status="cancelled",type="train"} 1.0' in text
    assert 'tensorq_jobs{status="queued",type="train"} 1.0' in text
    assert 'tensorq_http_requests_total{endpoint="v1.jobs.submit_job",method="POST",status="202"} 2.0' in text


def test_a_failed_job_recorded_with_a_traceback_is_shown_without_it(client, auth, db: Database) -> None:
    submitted = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()
    claim = db.jobs.claim(submitted["id"], "w")
    assert claim is not None
    details = {"phase": "training", "traceback": 'File "/srv/tensorq/ml/training.py", line 1'}
    assert db.jobs.fail(submitted["id"], claim.lease_token, {"code": "job_error", "message": "x", "details": details})
    shown = client.get(f"/v1/jobs/{submitted['id']}", headers=auth).get_json()["error"]
    assert shown == {"code": "job_error", "message": "x", "details": {"phase": "training"}}
    listed = client.get("/v1/jobs?fields=all", headers=auth).get_json()["jobs"]
    assert "traceback" not in str(listed)


def test_a_queued_job_shows_its_position_and_watch_says_it(client, auth) -> None:
    """Three trainings queued: the third has two ahead; no live worker serves the queue, so no expected start."""
    from tensorq.cli_watch import state_line
    from tensorq.client_types import Job

    ids = [client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"] for _ in range(3)]
    shown = client.get(f"/v1/jobs/{ids[2]}", headers=auth).get_json()
    assert (shown["queue_position"], shown["expected_start_s"]) == (2, None)
    listed = {j["id"]: j["queue_position"] for j in client.get("/v1/jobs", headers=auth).get_json()["jobs"]}
    assert [listed[i] for i in ids] == [0, 1, 2]
    job = Job(id=ids[2], type="train", status="queued", queue_position=2, expected_start_s=41.6)
    assert state_line(job) == f"train {ids[2]}: queued - 2 ahead, starts in ~42s"


def test_a_repeated_submission_with_wait_answers_with_the_first_job_as_it_ended(client, auth, db, publisher) -> None:
    headers = {**auth, "Idempotency-Key": "once-with-wait"}
    first = client.post("/v1/jobs?wait=0.2", json=TRAIN, headers=headers)
    assert first.get_json()["status"] == "queued"
    claim = db.jobs.claim(first.get_json()["id"], "w")
    db.jobs.fail(claim.job.id, claim.lease_token, {"code": "internal", "message": "gone"})
    again = client.post("/v1/jobs?wait=5", json=TRAIN, headers=headers)  # its own id never committed: the first's
    assert again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["status"] == "failed"
    assert publisher.published == [first.get_json()["id"]]
