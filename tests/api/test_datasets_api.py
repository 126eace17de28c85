"""Dataset uploads: checked by content, stored under server-made names, scoped to the tenant."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def _npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _upload(client, auth, payload: bytes, filename: str = "data.npz", name: str | None = None):  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), filename)}
    if name:
        data["name"] = name
    return client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")


def test_npz_upload_is_described_and_stored_under_a_server_name(client, auth, settings) -> None:
    response = _upload(client, auth, _npz(x=np.zeros((10, 3)), y=np.arange(10) % 2), "../../evil.npz")
    assert response.status_code == 201
    dataset = response.get_json()
    assert dataset["format"] == "npz"
    assert dataset["info"]["x_shape"] == [10, 3]
    assert "path" not in dataset
    stored = list(Path(settings.artifact_dir).rglob("*.npz"))
    assert [p.name for p in stored] == [f"{dataset['id']}.npz"]
    assert client.get(f"/v1/datasets/{dataset['id']}", headers=auth).get_json()["id"] == dataset["id"]
    assert [d["id"] for d in client.get("/v1/datasets", headers=auth).get_json()["datasets"]] == [dataset["id"]]


def test_csv_is_told_by_content_not_by_name(client, auth) -> None:
    csv = b"a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n"
    response = _upload(client, auth, csv, "table.npz")
    assert response.status_code == 201
    assert response.get_json()["format"] == "csv"
    assert response.get_json()["info"] == {"rows": 3, "columns": ["a", "b", "label"]}


def test_pickled_npz_is_refused_and_nothing_is_kept(client, auth, settings) -> None:
    payload = _npz(x=np.array([{"evil": 1}], dtype=object), y=np.array([1]))
    response = _upload(client, auth, payload)
    assert response.status_code == 400
    assert client.get("/v1/datasets", headers=auth).get_json()["datasets"] == []
    assert [p for p in Path(settings.artifact_dir).rglob("*") if p.is_file()] == []


def test_bad_uploads_are_400(client, auth) -> None:
    assert _upload(client, auth, _npz(a=np.zeros(3))).status_code == 400
    assert _upload(client, auth, _npz(x=np.zeros((3, 2)), y=np.zeros(4))).status_code == 400
    assert _upload(client, auth, b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe").status_code == 400
    assert _upload(client, auth, b"a,b\n1\n").status_code == 400
    assert _upload(client, auth, b"a," * 20_000 + b"b\n").status_code == 400
    assert client.post("/v1/datasets", json={"x": 1}, headers=auth).status_code == 415
    assert client.post("/v1/datasets", data={}, headers=auth, content_type="multipart/form-data").status_code == 400


def test_upload_over_the_limit_is_413(app, client, auth) -> None:
    app.extensions["tensorq"].settings.max_upload_bytes = 1000
    response = _upload(client, auth, b"a,b\n" + b"1,2\n" * 2000)
    assert response.status_code == 413


def test_datasets_are_tenant_scoped(client, auth, other_auth) -> None:
    dataset_id = _upload(client, auth, b"a,b\n1,2\n").get_json()["id"]
    assert client.get(f"/v1/datasets/{dataset_id}", headers=other_auth).status_code == 404
    assert client.get("/v1/datasets", headers=other_auth).get_json()["datasets"] == []
    spec = {"type": "train", "spec": {"architecture": "mlp", "dataset": dataset_id, "label_column": "b"}}
    assert client.post("/v1/jobs", json=spec, headers=other_auth).status_code == 400
    assert client.post("/v1/jobs", json=spec, headers=auth).status_code == 202


def test_csv_training_needs_an_existing_label_column(client, auth) -> None:
    dataset_id = _upload(client, auth, b"a,b\n1,2\n").get_json()["id"]
    base = {"architecture": "mlp", "dataset": dataset_id}
    assert client.post("/v1/jobs", json={"type": "train", "spec": base}, headers=auth).status_code == 400
    missing = {**base, "label_column": "zzz"}
    response = client.post("/v1/jobs", json={"type": "train", "spec": missing}, headers=auth)
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["columns"] == ["a", "b"]
