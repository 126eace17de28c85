"""The API on each artifact store: datasets and models are written, read, counted and deleted through it; an
object store that cannot be reached is a 503 with Retry-After, naming neither a path nor a credential."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

from tensorq.core.errors import PayloadTooLarge
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore
from tests.conftest import make_settings, unreachable_store_settings
from tests.services import S3_KEY, S3_SECRET

CSV = b"a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, store_fields: dict[str, object]) -> Settings:
    """Settings on each database and each artifact store."""
    return make_settings(tmp_path, database_url, **store_fields)


def _upload(client, auth, payload: bytes, filename: str = "t.csv"):  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), filename)}
    return client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")


def test_a_dataset_is_stored_counted_and_deleted_in_the_store(client, auth, settings, db) -> None:
    store = ArtifactStore.from_settings(settings)
    response = _upload(client, auth, CSV)
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    [record] = db.datasets.list(db.keys.authenticate(auth["Authorization"].split()[1]).tenant_id)
    assert store.inside(record.path)
    assert store.size(record.path) == len(CSV)
    assert record.path.startswith("s3://") != store.local
    assert dataset["info"] == {"rows": 3, "columns": ["a", "b", "label"]}
    assert "path" not in dataset
    assert record.path not in json.dumps(dataset)
    assert store.listing(store.location("datasets")) == {record.path: len(CSV)}
    deleted = client.delete(f"/v1/datasets/{dataset['id']}", headers=auth).get_json()
    assert deleted["freed_bytes"] == len(CSV)
    assert store.listing(store.location("datasets")) == {}
    assert not list(Path(settings.scratch_dir).rglob("*.part"))  # nothing left on the API's disk either


def test_an_uploaded_model_waits_in_the_store_and_counts_against_the_quota(client, auth, settings, db) -> None:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")
    payload = buffer.getvalue()
    response = client.post(
        "/v1/models",
        data={"file": (io.BytesIO(payload), "m.keras")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    store = ArtifactStore.from_settings(settings)
    staged = store.listing(store.location("uploads"))
    assert list(staged.values()) == [len(payload)]
    assert response.get_json()["spec"]["upload"] in next(iter(staged))


@pytest.fixture
def unreachable(tmp_path: Path, database_url: str) -> Settings:
    """Settings whose S3 store nobody answers for."""
    return unreachable_store_settings(tmp_path, database_url)


def test_an_unreachable_store_is_503_with_retry_after(unreachable: Settings, db, publisher) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app

    app = create_app(unreachable, database=db, publisher=publisher)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {db.keys.create('acme')}"}
    response = _upload(client, auth, CSV)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    body = response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    for secret in (S3_KEY, S3_SECRET, str(unreachable.s3_endpoint_url), "datasets/"):
        assert secret not in body
    assert not list(Path(unreachable.scratch_dir).rglob("*.part"))


def test_a_model_version_counts_against_the_quota_downloads_and_deletes_in_the_store(
    client, auth, settings, db
) -> None:  # type: ignore[no-untyped-def]
    from db.jobs import NewJob
    from db.records import ModelVersionDraft

    store = ArtifactStore.from_settings(settings)
    tenant = db.keys.ensure_tenant("acme")
    job = db.jobs.submit(NewJob(tenant, "train", {"architecture": "mlp", "dataset": "builtin:iris"})).job
    claim = db.jobs.claim(job.id, "w")
    assert claim is not None
    model = store.job_location(job.id, "model.keras")
    artifact = store.job_location(job.id, "heatmap_0.png")
    with store.open(model, "wb") as handle:
        handle.write(b"PK" + b"m" * 998)
    with store.open(artifact, "wb") as handle:
        handle.write(b"\x89PNG fake")
    result = {"metrics": {}, "history": {}, "artifacts": ["heatmap_0.png"]}
    assert db.jobs.finish(job.id, claim.lease_token, result, ModelVersionDraft("m", model, "mlp", {}, {}))
    assert client.get(f"/v1/jobs/{job.id}/artifacts/heatmap_0.png", headers=auth).data == b"\x89PNG fake"
    assert client.get("/v1/models/m/download", headers=auth).data == b"PK" + b"m" * 998

    quotas = client.application.extensions["tensorq"].quotas
    who = db.keys.authenticate(auth["Authorization"].split()[1])
    settings.quota_model_bytes = 1500
    quotas.check_model_bytes(who, 400)  # 1000 stored + 400 fits
    with pytest.raises(PayloadTooLarge) as caught:
        quotas.check_model_bytes(who, 600)
    assert caught.value.details["used"] == 1000

    assert client.delete(f"/v1/jobs/{job.id}", headers=auth).get_json()["freed_bytes"] == len(b"\x89PNG fake")
    assert store.listing(store.job_location(job.id)) == {model: 1000}  # the version outlives its job
    assert client.delete("/v1/models/m", headers=auth).get_json()["freed_bytes"] == 1000
    assert store.listing(store.job_location(job.id)) == {}


def test_a_delete_while_the_store_is_unreachable_is_503_and_keeps_the_record(
    unreachable: Settings, db, publisher
) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app

    app = create_app(unreachable, database=db, publisher=publisher)
    key = db.keys.create("acme")
    tenant = db.keys.authenticate(key).tenant_id
    location = ArtifactStore.from_settings(unreachable).location("datasets", tenant, "d.csv")
    db.datasets.add(tenant, dataset_id=str(uuid.uuid4()), name="d", fmt="csv", path=location, size_bytes=8, info={})
    [dataset] = db.datasets.list(tenant)
    response = app.test_client().delete(f"/v1/datasets/{dataset.id}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    assert [d.id for d in db.datasets.list(tenant)] == [dataset.id]
