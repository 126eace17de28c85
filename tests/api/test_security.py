"""Security by default: tenant isolation on every route, scopes, quotas, bad inputs, keys kept out of logs."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest

from db.database import Database
from db.jobs import ModelVersionDraft, NewJob

TRAIN = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2}}


@pytest.fixture
def acme_objects(client, auth, db: Database, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A job with an artifact, a dataset and a model of tenant 'acme'."""
    tenant = db.keys.ensure_tenant("acme")
    job = db.jobs.submit(NewJob(tenant, "train", {"architecture": "mlp", "dataset": "builtin:iris"})).job
    claim = db.jobs.claim(job.id, "w")
    folder = settings.job_dir(job.id)
    folder.mkdir(parents=True)
    (folder / "heatmap_0.png").write_bytes(b"\x89PNG fake")
    model_file = settings.artifact_dir / "m.keras"
    model_file.write_bytes(b"PK fake")
    assert claim is not None
    assert db.jobs.finish(
        job.id,
        claim.lease_token,
        {"metrics": {}, "history": {}, "artifacts": ["heatmap_0.png"]},
        ModelVersionDraft("m", str(model_file), "mlp", {}, {"input_shape": [4]}),
    )
    upload = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(b"a,b\n1,2\n"), "d.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    return {"job": job.id, "dataset": upload.get_json()["id"], "model": db.jobs.get_any(job.id).result["model_id"]}


ITEM_ROUTES = [
    ("GET", "/v1/jobs/{job}"),
    ("GET", "/v1/jobs/{job}/events"),
    ("GET", "/v1/jobs/{job}/logs"),
    ("GET", "/v1/jobs/{job}/artifacts/heatmap_0.png"),
    ("POST", "/v1/jobs/{job}/cancel"),
    ("GET", "/v1/datasets/{dataset}"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/v1/models/{model}/download"),
]


@pytest.mark.parametrize(("method", "route"), ITEM_ROUTES)
def test_another_tenants_object_is_404_on_every_item_route(
    client, auth, other_auth, acme_objects, method, route
) -> None:
    path = route.format(**acme_objects)
    own = client.open(path, method=method, headers=auth)
    assert own.status_code in (200, 202, 409), (path, own.status_code)
    theirs = client.open(path, method=method, headers=other_auth)
    assert theirs.status_code == 404
    assert theirs.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("route", "field"), [("/v1/jobs", "jobs"), ("/v1/datasets", "datasets"), ("/v1/models", "models")]
)
def test_lists_never_show_another_tenants_objects(client, auth, other_auth, acme_objects, route, field) -> None:
    assert len(client.get(route, headers=auth).get_json()[field]) == 1
    assert client.get(route, headers=other_auth).get_json()[field] == []


def test_read_only_keys_cannot_write_anywhere(client, db, acme_objects) -> None:
    reader = {"Authorization": f"Bearer {db.keys.create('acme', read_only=True)}"}
    assert client.get(f"/v1/jobs/{acme_objects['job']}", headers=reader).status_code == 200
    assert client.post("/v1/jobs", json=TRAIN, headers=reader).status_code == 403
    assert client.post(f"/v1/jobs/{acme_objects['job']}/cancel", headers=reader).status_code == 403
    upload = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(b"a,b\n1,2\n"), "d.csv")},
        headers=reader,
        content_type="multipart/form-data",
    )
    assert upload.status_code == 403


def test_a_revoked_key_is_401(client, db) -> None:
    key = db.keys.create("acme")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/jobs", headers=headers).status_code == 200
    db.keys.revoke(key.split("_")[1])
    assert client.get("/v1/jobs", headers=headers).status_code == 401


def test_a_100_mb_body_is_413(client, auth) -> None:
    body = b"[" + b"0," * (50 * 1024 * 1024) + b"0]"
    response = client.post("/v1/jobs", data=body, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert client.get("/v1/jobs", headers=auth).get_json()["jobs"] == []


def test_a_csv_of_a_million_columns_is_refused_and_not_kept(client, auth, settings) -> None:
    header = ",".join(f"c{i}" for i in range(1_000_000)).encode()
    response = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(header + b"\n"), "wide.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code in (400, 413)
    assert client.get("/v1/datasets", headers=auth).get_json()["datasets"] == []
    assert [p for p in settings.artifact_dir.rglob("*") if p.is_file()] == []


def test_an_npz_holding_a_pickled_object_is_400(client, auth) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([object()], dtype=object), y=np.array([0]))
    response = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(buffer.getvalue()), "p.npz")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 400


def test_the_61st_submission_in_a_minute_is_429_at_a_60_per_minute_limit(client, auth, settings) -> None:
    settings.tenant_quotas = {"acme": {"quota_submissions_per_minute": 60}}
    for _ in range(60):
        assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 202
    refused = client.post("/v1/jobs", json=TRAIN, headers=auth)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["error"]["details"]["quota"] == "quota_submissions_per_minute"
    assert len(client.get("/v1/jobs?limit=200", headers=auth).get_json()["jobs"]) == 60


def test_other_tenants_keep_their_own_rate(client, auth, other_auth, settings) -> None:
    settings.tenant_quotas = {"acme": {"quota_submissions_per_minute": 1}}
    assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 202
    assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 429
    assert client.post("/v1/jobs", json=TRAIN, headers=other_auth).status_code == 202


def test_queued_jobs_quota_is_429(client, auth, settings) -> None:
    settings.quota_queued_jobs = 2
    assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 202
    assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 202
    response = client.post("/v1/jobs", json=TRAIN, headers=auth)
    assert response.status_code == 429
    assert response.get_json()["error"]["details"]["quota"] == "quota_queued_jobs"


def test_dataset_storage_quota_is_413(client, auth, settings) -> None:
    settings.quota_dataset_bytes = 600
    first = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(b"a,b\n" + b"1,2\n" * 50), "d.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert first.status_code == 201
    second = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(b"a,b\n" + b"1,2\n" * 50), "d.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert second.status_code == 413
    assert second.get_json()["error"]["code"] == "storage_quota_exceeded"


def test_cors_is_off_unless_configured(client) -> None:
    response = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_answers_configured_origins_only(settings, db, publisher) -> None:
    from api.app import create_app

    settings.cors_origins = ["https://console.example"]
    client = create_app(settings, database=db, publisher=publisher).test_client()
    allowed = client.get("/healthz", headers={"Origin": "https://console.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://console.example"
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", headers={"Origin": "https://x.example"}).headers


def test_keys_and_authorization_headers_never_reach_the_logs(client, key, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": f"Bearer {key}"}
    client.post("/v1/jobs", json=TRAIN, headers=headers)
    client.get("/v1/jobs/nope", headers=headers)
    client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}x"})
    client.post("/v1/jobs", data="{bad", headers={**headers, "Content-Type": "application/json"})
    logged = caplog.text
    assert key not in logged
    assert key.split("_", 2)[2] not in logged
    assert "Bearer tq_" not in logged


def test_model_storage_quota_refuses_more_training(client, auth, settings, acme_objects) -> None:
    settings.quota_model_bytes = 5
    response = client.post("/v1/jobs", json=TRAIN, headers=auth)
    assert response.status_code == 413
    assert response.get_json()["error"]["details"]["quota"] == "quota_model_bytes"
    settings.quota_model_bytes = 10_000
    assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 202


def test_the_submission_rate_keeps_two_counters_per_tenant_not_an_entry_per_submission(
    client, auth, settings, db
) -> None:
    import redis

    settings.tenant_quotas = {"acme": {"quota_submissions_per_minute": 1000}}
    for _ in range(30):
        assert client.post("/v1/jobs", json=TRAIN, headers=auth).status_code == 202
    tenant = db.keys.ensure_tenant("acme")
    store = redis.Redis.from_url(settings.broker_url)
    try:
        keys = [key for key in store.scan_iter(match=f"*{tenant}*") if b"submit" in key]
        assert 1 <= len(keys) <= 2
        assert {store.type(key) for key in keys} == {b"string"}  # counters, not a list of 30 timestamps
    finally:
        store.close()
