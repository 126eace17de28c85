"""Deleting jobs, datasets and models frees their files and the tenant's quota, and is refused (409) while a
queued or running job still uses them; a failed or cancelled job can be retried as a new, linked job."""

from __future__ import annotations

import io
from pathlib import Path

from db.database import Database
from tensorq.core.settings import Settings
from worker.runner import JobRunner

CSV = b"a,b,c,d,label\n" + b"".join(f"{i},{i % 3},{i % 5},{i % 7},{i % 2}\n".encode() for i in range(40))


def _upload(client, auth) -> dict:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/datasets", data={"file": (io.BytesIO(CSV), "t.csv")}, headers=auth, content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _submit(client, auth, job_type: str, spec: dict) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/v1/jobs", json={"type": job_type, "spec": spec}, headers=auth)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_a_dataset_in_use_is_kept_and_a_deleted_one_frees_the_quota(client, auth, other_auth, settings) -> None:  # type: ignore[no-untyped-def]
    settings.quota_dataset_bytes = 2 * len(CSV) - 1  # room for one upload, not two
    dataset = _upload(client, auth)
    full = client.post(
        "/v1/datasets", data={"file": (io.BytesIO(CSV), "u.csv")}, headers=auth, content_type="multipart/form-data"
    )
    assert full.status_code == 413
    job = _submit(client, auth, "train", {"architecture": "mlp", "dataset": dataset["id"], "label_column": "label"})
    refused = client.delete(f"/v1/datasets/{dataset['id']}", headers=auth)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["details"] == {"jobs": [job["id"]]}
    assert client.delete(f"/v1/datasets/{dataset['id']}", headers=other_auth).status_code == 404
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    files = list((Path(settings.artifact_dir) / "datasets").rglob("*.csv"))
    assert len(files) == 1
    deleted = client.delete(f"/v1/datasets/{dataset['id']}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.get_json() == {"deleted": "dataset", "id": dataset["id"], "freed_bytes": len(CSV)}
    assert not files[0].exists()
    assert client.get(f"/v1/datasets/{dataset['id']}", headers=auth).status_code == 404
    _upload(client, auth)  # fits again


def test_jobs_are_deleted_once_finished_and_their_model_stays(client, auth, settings: Settings, db: Database) -> None:
    job = _submit(client, auth, "train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1})
    refused = client.delete(f"/v1/jobs/{job['id']}", headers=auth)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "job_not_finished"
    assert JobRunner(settings, db).run(job["id"]) == "succeeded"
    folder = settings.job_dir(job["id"])
    model_file = folder / "model.keras"
    others = [p for p in folder.rglob("*") if p.is_file() and p != model_file]
    # checkpoints
    assert model_file.is_file()
    assert others
    deleted = client.delete(f"/v1/jobs/{job['id']}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.get_json()["freed_bytes"] > 0
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).status_code == 404
    assert model_file.is_file()
    assert not any(p.exists() for p in others)
    model = client.get("/v1/models/mlp-iris", headers=auth).get_json()
    assert model["versions"][0]["training_job_id"] is None
    assert model["versions"][0]["lineage"]["training_job_id"] == job["id"]

    predict = _submit(client, auth, "predict", {"model": "mlp-iris:1", "inputs": [[1, 2, 3, 4]]})
    refused = client.delete("/v1/models/mlp-iris", headers=auth)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "model_in_use"
    assert JobRunner(settings, db).run(predict["id"]) == "succeeded"
    gone = client.delete("/v1/models/mlp-iris:1", headers=auth)
    assert gone.status_code == 200
    assert gone.get_json()["deleted"] == "model_version"
    assert gone.get_json()["versions"] == [1]
    assert gone.get_json()["freed_bytes"] > 0
    assert not model_file.exists()
    assert client.delete("/v1/models/mlp-iris", headers=auth).get_json()["deleted"] == "model"
    assert client.get("/v1/models/mlp-iris", headers=auth).status_code == 404
    kinds = [e["kind"] for e in client.get("/v1/models", headers=auth).get_json()["models"]]
    assert kinds == []


def test_a_cancelled_job_is_retried_as_a_new_linked_job(client, auth, other_auth, publisher) -> None:  # type: ignore[no-untyped-def]
    job = _submit(client, auth, "train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1})
    assert client.post(f"/v1/jobs/{job['id']}/retry", headers=auth).status_code == 409  # still queued
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert client.post(f"/v1/jobs/{job['id']}/retry", headers=other_auth).status_code == 404
    retried = client.post(f"/v1/jobs/{job['id']}/retry", headers=auth)
    assert retried.status_code == 202
    new = retried.get_json()
    assert retried.headers["Location"] == f"/v1/jobs/{new['id']}"
    assert new["id"] != job["id"]
    assert new["retry_of"] == job["id"]
    assert new["status"] == "queued"
    assert new["spec"] == job["spec"]
    assert publisher.published[-1] == new["id"]
    assert client.get(f"/v1/jobs/{new['id']}", headers=auth).get_json()["retry_of"] == job["id"]


def test_listings_are_summaries_unless_fields_asks(client, auth) -> None:  # type: ignore[no-untyped-def]
    job = _submit(client, auth, "train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1})
    listed = client.get("/v1/jobs", headers=auth).get_json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert "spec" not in listed[0]
    assert "result" not in listed[0]
    assert listed[0]["status"] == "queued"
    with_spec = client.get("/v1/jobs?fields=spec", headers=auth).get_json()["jobs"][0]
    assert with_spec["spec"] == job["spec"]
    assert "result" not in with_spec
    full = client.get("/v1/jobs?fields=all", headers=auth).get_json()["jobs"][0]
    assert full["spec"] == job["spec"]
    assert full["result"] is None
    refused = client.get("/v1/jobs?fields=spec,secrets", headers=auth)
    assert refused.status_code == 400
    assert "secrets" in refused.get_json()["error"]["message"]


def test_jobs_carry_a_name_and_tags_that_listings_filter_on(client, auth, other_auth) -> None:  # type: ignore[no-untyped-def]
    spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1}
    tagged = client.post(
        "/v1/jobs",
        json={"type": "train", "spec": spec, "name": "nightly churn", "tags": ["churn", "nightly", "churn"]},
        headers=auth,
    ).get_json()
    assert tagged["name"] == "nightly churn"
    assert tagged["tags"] == ["churn", "nightly"]
    plain = _submit(client, auth, "train", spec)
    assert plain["name"] is None
    assert plain["tags"] == []
    client.post("/v1/jobs", json={"type": "train", "spec": spec, "tags": ["churn"]}, headers=other_auth)

    def ids(query: str, headers=auth) -> list[str]:  # type: ignore[no-untyped-def]
        return [j["id"] for j in client.get(f"/v1/jobs?{query}", headers=headers).get_json()["jobs"]]

    assert ids("tag=churn") == [tagged["id"]]
    assert ids("tag=nightly&type=train") == [tagged["id"]]
    assert ids("name=nightly%20churn") == [tagged["id"]]
    assert ids("tag=weekly") == []
    assert ids("") == [plain["id"], tagged["id"]]
    bad = client.post("/v1/jobs", json={"type": "train", "spec": spec, "tags": ["no spaces"]}, headers=auth)
    assert bad.status_code == 400
    too_many = client.post(
        "/v1/jobs", json={"type": "train", "spec": spec, "tags": [f"t{i}" for i in range(21)]}, headers=auth
    )
    assert too_many.status_code == 422
    client.post(f"/v1/jobs/{tagged['id']}/cancel", headers=auth)
    retried = client.post(f"/v1/jobs/{tagged['id']}/retry", headers=auth).get_json()
    assert (retried["name"], retried["tags"]) == ("nightly churn", ["churn", "nightly"])
    assert ids("tag=churn") == [retried["id"], tagged["id"]]
