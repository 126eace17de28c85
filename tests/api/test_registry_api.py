"""Named models over HTTP: ``register_as``, ``name``, ``name:N`` and ``name@alias`` in predict, explain, GET and
download; aliases moved by a call and audited; each version's lineage; each result's exact version.

Jobs run in-process through the real ``JobRunner``, handlers and TensorFlow, on both databases.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

from db.database import Database
from tensorq.core.settings import Settings
from worker.runner import JobRunner

rng = np.random.default_rng(0)
FEATURES = rng.normal(size=(60, 4)).round(3)
LABELS = ["no", "yes"]
CSV = ("a,b,c,d,label\n" + "".join(f"{a},{b},{c},{d},{LABELS[int(a > 0)]}\n" for a, b, c, d in FEATURES)).encode()


def _run(client, auth, runner: JobRunner, job_type: str, spec: dict) -> dict:  # type: ignore[no-untyped-def]
    submitted = client.post("/v1/jobs", json={"type": job_type, "spec": spec}, headers=auth)
    assert submitted.status_code == 202, submitted.get_json()
    job_id = submitted.get_json()["id"]
    assert runner.run(job_id) == "succeeded"
    return client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()


def test_named_versions_and_aliases_resolve_everywhere_with_lineage(
    client, auth, other_auth, settings: Settings, db: Database
) -> None:
    runner = JobRunner(settings, db)
    train = {"architecture": "mlp", "epochs": 1, "register_as": "churn"}
    first = _run(client, auth, runner, "train", {**train, "dataset": "builtin:iris"})
    upload = client.post(
        "/v1/datasets", data={"file": (io.BytesIO(CSV), "t.csv")}, headers=auth, content_type="multipart/form-data"
    ).get_json()
    second = _run(client, auth, runner, "train", {**train, "dataset": upload["id"], "label_column": "label"})
    assert (first["result"]["version"], second["result"]["version"]) == (1, 2)
    assert first["result"]["model_id"] == second["result"]["model_id"]

    model = client.get("/v1/models/churn", headers=auth).get_json()
    assert model["name"] == "churn"
    assert model["latest_version"] == 2
    assert model["aliases"] == {}
    lineage = model["versions"][1]["lineage"]
    assert lineage["training_job_id"] == second["id"]
    assert lineage["spec"]["register_as"] == "churn"
    assert lineage["dataset"] == {
        "ref": upload["id"],
        "id": upload["id"],
        "name": "t.csv",
        "format": "csv",
        "sha256": hashlib.sha256(CSV).hexdigest(),
    }
    assert model["versions"][0]["lineage"]["dataset"] == {"ref": "builtin:iris"}

    moved = client.put("/v1/models/churn/aliases/production", json={"version": 1}, headers=auth)
    assert moved.status_code == 200
    assert moved.get_json()["aliases"] == {"production": 1}
    assert client.get("/v1/models/churn@production", headers=auth).status_code == 200
    assert client.get("/v1/models/churn@staging", headers=auth).status_code == 404
    assert client.get("/v1/models/churn", headers=other_auth).status_code == 404
    refused = client.put("/v1/models/churn/aliases/production", json={"version": 7}, headers=auth)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "unknown_version"
    assert client.put("/v1/models/churn/aliases/production", json={"version": 0}, headers=auth).status_code == 422
    for not_a_version in (True, "1", 1.0):  # no coercion: a boolean is not version 1 (a wrong type is a 400)
        wrong = client.put("/v1/models/churn/aliases/production", json={"version": not_a_version}, headers=auth)
        assert wrong.status_code == 400, (not_a_version, wrong.get_json())
        assert wrong.get_json()["error"]["details"][0]["type"] == "int_type"
    assert client.get("/v1/models/churn", headers=auth).get_json()["aliases"] == {"production": 1}

    rows = [[0.5, -1.0, 0.2, 0.1]]
    predicted = _run(client, auth, runner, "predict", {"model": "churn@production", "inputs": rows})["result"]
    assert (predicted["model_name"], predicted["version"], predicted["model_ref"]) == ("churn", 1, "churn@production")
    iris = ["setosa", "versicolor", "virginica"]
    assert predicted["labels"] == [iris[c] for c in predicted["classes"]]
    latest = _run(client, auth, runner, "predict", {"model": "churn", "inputs": rows})["result"]
    assert latest["version"] == 2
    assert latest["labels"] == [LABELS[c] for c in latest["classes"]]
    explained = _run(
        client, auth, runner, "explain", {"model": "churn:2", "inputs": rows, "method": "integrated_gradients"}
    )["result"]
    assert (explained["version"], explained["baseline"]) == (2, "zeros")

    client.put("/v1/models/churn/aliases/production", json={"version": 2}, headers=auth)
    download = client.get("/v1/models/churn@production/download", headers=auth)
    assert download.status_code == 200
    assert "churn-v2.keras" in download.headers["Content-Disposition"]
    assert client.get("/v1/models/churn@production/download?version=1", headers=auth).status_code == 400
    events = client.get("/v1/models/churn/events", headers=auth).get_json()["events"]
    assert [(e["kind"], e["data"]["from_version"], e["data"]["to_version"]) for e in events] == [
        ("alias_set", None, 1),
        ("alias_set", 1, 2),
    ]
    unknown = client.post(
        "/v1/jobs", json={"type": "predict", "spec": {"model": "churn@canary", "inputs": rows}}, headers=auth
    )
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["code"] == "unknown_model"
    bad = client.post("/v1/jobs", json={"type": "predict", "spec": {"model": "churn@", "inputs": rows}}, headers=auth)
    assert bad.status_code == 400
    assert client.delete("/v1/models/churn/aliases/production", headers=auth).get_json()["aliases"] == {}
    assert client.delete("/v1/models/churn/aliases/production", headers=auth).status_code == 404


def _upload(client, auth, payload: bytes, name: str) -> str:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/datasets", data={"file": (io.BytesIO(payload), name)}, headers=auth, content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_a_csv_model_predicts_on_any_table_with_its_columns_and_scores_the_labels(
    client, auth, settings: Settings, db: Database
) -> None:
    runner = JobRunner(settings, db)
    training = _upload(client, auth, CSV, "t.csv")
    spec = {"architecture": "mlp", "epochs": 2, "dataset": training, "label_column": "label", "register_as": "csv"}
    _run(client, auth, runner, "train", spec)
    same = _run(client, auth, runner, "predict", {"model": "csv", "dataset": training})["result"]
    assert same["rows"] == len(FEATURES)
    assert same["metrics"]["labelled_rows"] == len(FEATURES)
    truth = [LABELS[int(a > 0)] for a in FEATURES[:, 0]]
    hits = sum(p == t for p, t in zip(same["labels"], truth, strict=True))
    assert same["metrics"]["accuracy"] == round(hits / len(truth), 6)
    # Columns in another order, an extra column, no labels: the model reads its own columns by name.
    shuffled = "d,extra,b,a,c\n" + "".join(f"{d},x,{b},{a},{c}\n" for a, b, c, d in FEATURES[:5])
    other = _upload(client, auth, shuffled.encode(), "other.csv")
    scored = _run(client, auth, runner, "predict", {"model": "csv", "dataset": other})["result"]
    assert scored["labels"] == same["labels"][:5]
    assert "metrics" not in scored
    missing = _upload(client, auth, b"a,b,c\n1,2,3\n", "missing.csv")
    asked = {"type": "predict", "spec": {"model": "csv", "dataset": missing}}
    refused = client.post("/v1/jobs", json=asked, headers=auth)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["details"]["missing"] == ["d"]
    unlabelled = {"model": "csv", "dataset": other, "label_column": "label"}
    assert client.post("/v1/jobs", json={"type": "predict", "spec": unlabelled}, headers=auth).status_code == 400
