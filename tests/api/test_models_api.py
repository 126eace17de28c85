"""Bring your own model (``POST /v1/models``) and the specs of the model zoo, over a real database.

The broker is injected; the import and predict jobs run in-process through the real ``JobRunner`` and handlers.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from db.database import Database
from tensorq.core.settings import Settings
from tests.conftest import RecordingPublisher
from tests.ml.keras_files import h5_bytes, lambda_model, plain_model, random_bytes, traversal_zip
from worker.runner import JobRunner


def _upload(client, auth, payload: bytes, filename: str = "model.keras", name: str | None = None):  # type: ignore[no-untyped-def]
    data: dict = {"file": (io.BytesIO(payload), filename)}
    if name is not None:
        data["name"] = name
    return client.post("/v1/models", data=data, headers=auth, content_type="multipart/form-data")


def _files(settings: Settings) -> list[Path]:
    return [p for p in Path(settings.artifact_dir).rglob("*") if p.is_file()]


def test_a_keras_model_is_stored_and_its_import_job_queued(client, auth, settings, publisher, tmp_path) -> None:
    payload = plain_model(tmp_path / "mine.keras").read_bytes()
    response = _upload(client, auth, payload, "../../mine.keras")
    assert response.status_code == 202
    job = response.get_json()
    assert job["type"] == "import"
    assert job["status"] == "queued"
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert publisher.published == [job["id"]]
    assert job["spec"]["model_name"] == "mine"
    assert job["spec"]["size_bytes"] == len(payload)
    assert "path" not in job["spec"]
    assert str(settings.artifact_dir) not in str(job["spec"])
    stored = _files(settings)
    assert [p.name for p in stored] == [f"{job['spec']['upload']}.keras"]
    assert stored[0].read_bytes() == payload
    listed = client.get("/v1/jobs?type=import", headers=auth).get_json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_the_import_job_registers_a_model_that_predicts_and_explains(
    client, auth, settings: Settings, db: Database, publisher: RecordingPublisher, tmp_path
) -> None:
    job = _upload(client, auth, plain_model(tmp_path / "m.keras").read_bytes(), name="my classifier").get_json()
    runner = JobRunner(settings, db)
    assert runner.run(job["id"]) == "succeeded"
    done = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    model_id = done["result"]["model_id"]
    assert done["result"]["signature"]["input_shape"] == [4]
    model = client.get(f"/v1/models/{model_id}", headers=auth).get_json()
    assert model["name"] == "my classifier"
    version = model["versions"][0]
    assert version["architecture"] == "imported"
    assert version["training_job_id"] == job["id"]
    assert version["signature"]["num_classes"] == 3
    assert _files(settings) == [settings.job_dir(job["id"]) / "model.keras"]  # the staged upload is gone

    wrong = client.post(
        "/v1/jobs", json={"type": "predict", "spec": {"model": model_id, "inputs": [[1, 2]]}}, headers=auth
    )
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["details"]["expected_shape"] == ["batch", 4]
    for job_type, spec in (
        ("predict", {"model": model_id, "inputs": [[1, 2, 3, 4], [0, 0, 0, 1]]}),
        ("explain", {"model": model_id, "inputs": [[1, 2, 3, 4]], "method": "kernel_shap", "nsamples": 50}),
    ):
        submitted = client.post("/v1/jobs", json={"type": job_type, "spec": spec}, headers=auth).get_json()
        assert runner.run(submitted["id"]) == "succeeded"
        result = client.get(f"/v1/jobs/{submitted['id']}", headers=auth).get_json()["result"]
        if job_type == "predict":
            assert np.array(result["outputs"]).shape == (2, 3)
            assert len(result["classes"]) == 2
        else:
            assert np.array(result["attributions"]).shape == (1, 4)
            assert result["quality"]["additivity_gap"] < 0.01


def test_a_lambda_model_fails_its_import_and_its_code_never_runs(
    client, auth, settings: Settings, db: Database, tmp_path
) -> None:
    marker = tmp_path / "marker"
    job = _upload(client, auth, lambda_model(tmp_path / "lambda.keras", marker).read_bytes()).get_json()
    assert job["status"] == "queued"
    assert JobRunner(settings, db).run(job["id"]) == "failed"
    failed = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert failed["error"]["code"] == "invalid_request"
    assert "Lambda layers, which run code stored in the file" in failed["error"]["message"]
    assert not marker.exists()
    assert client.get("/v1/models", headers=auth).get_json()["models"] == []
    assert _files(settings) == []  # nothing of a refused file is kept


@pytest.mark.parametrize(
    ("payload", "filename"),
    [(traversal_zip(), "model.keras"), (h5_bytes(), "model.h5"), (random_bytes(), "model.keras"), (b"", "x.keras")],
)
def test_files_that_are_not_keras_models_are_400_at_once(
    client, auth, settings, publisher: RecordingPublisher, payload: bytes, filename: str
) -> None:
    response = _upload(client, auth, payload, filename)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert publisher.published == []
    assert _files(settings) == []
    assert client.get("/v1/jobs", headers=auth).get_json()["jobs"] == []


def test_upload_refusals(client, auth, db: Database, app, tmp_path) -> None:
    payload = plain_model(tmp_path / "m.keras").read_bytes()
    assert client.post("/v1/models", json={"file": "x"}, headers=auth).status_code == 415
    no_file = client.post("/v1/models", data={"name": "x"}, headers=auth, content_type="multipart/form-data")
    assert no_file.status_code == 400
    assert _upload(client, auth, payload, name="../etc").status_code == 400
    assert _upload(client, auth, payload, name="x" * 300).status_code == 400
    read_only = {"Authorization": f"Bearer {db.keys.create('acme', read_only=True)}"}
    assert _upload(client, read_only, payload).status_code == 403
    app.extensions["tensorq"].settings.max_upload_bytes = 1000
    assert _upload(client, auth, payload).status_code == 413


def test_text_datasets_upload_as_jsonl(client, auth) -> None:
    lines = b'{"text": "a superb film", "label": 1}\n{"text": "dreadful", "label": 0}\n'
    response = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(lines), "reviews.txt")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    assert response.get_json()["format"] == "jsonl"
    assert response.get_json()["info"] == {"rows": 2, "labels": 2}
    bad = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(b'{"text": "a"}\n'), "r.jsonl")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400
    assert "'label'" in bad.get_json()["error"]["message"]


def test_a_recommender_trains_on_a_csv_without_a_label_column(client, auth) -> None:
    csv = b"user,item,rating\nu1,i1,4\nu2,i1,3\n"
    dataset = client.post(
        "/v1/datasets", data={"file": (io.BytesIO(csv), "r.csv")}, headers=auth, content_type="multipart/form-data"
    ).get_json()
    spec = {"architecture": "recommender", "dataset": dataset["id"], "params": {"factors": 4}}
    assert client.post("/v1/jobs", json={"type": "train", "spec": spec}, headers=auth).status_code == 202
    mlp = {"architecture": "mlp", "dataset": dataset["id"]}
    assert client.post("/v1/jobs", json={"type": "train", "spec": mlp}, headers=auth).status_code == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (
            {"type": "train", "spec": {"architecture": "rnn", "dataset": "builtin:digits", "class_weight": "balanced"}},
            202,
        ),
        (
            {"type": "train", "spec": {"architecture": "vae", "dataset": "builtin:digits", "class_weight": {"0": 0}}},
            422,
        ),
        ({"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "class_weight": "auto"}}, 400),
        (
            {
                "type": "train",
                "spec": {
                    "architecture": "vae",
                    "dataset": "builtin:digits",
                    "early_stopping": {"monitor": "val_reconstruction_loss", "min_delta": 0.1},
                },
            },
            202,
        ),
        ({"type": "train", "spec": {"architecture": "gan", "dataset": "builtin:iris"}}, 400),
        ({"type": "explain", "spec": {"model": "ab", "inputs": [[1]], "method": "occlusion", "window": 0}}, 422),
        ({"type": "explain", "spec": {"model": "ab", "inputs": [[1]], "method": "lime", "nsamples": 10**6}}, 422),
        ({"type": "explain", "spec": {"model": "ab", "inputs": [[1]], "method": "smoothgrad", "noise": 2}}, 422),
        ({"type": "explain", "spec": {"model": "ab", "inputs": [[1]], "method": "deeplift"}}, 400),
        ({"type": "predict", "spec": {"model": "ab", "inputs": [[1]], "n": 3}}, 400),
        ({"type": "predict", "spec": {"model": "ab", "mode": "sample", "inputs": [[1]]}}, 400),
        ({"type": "predict", "spec": {"model": "ab", "mode": "dream"}}, 400),
        ({"type": "predict", "spec": {"model": "ab", "inputs": [[1]], "k": 5}}, 400),
        ({"type": "predict", "spec": {"model": "ab", "user": "u1", "k": 5000}}, 422),
    ],
)
def test_zoo_specs_are_checked_before_queueing(client, auth, body: dict, status: int) -> None:
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == status, response.get_json()
