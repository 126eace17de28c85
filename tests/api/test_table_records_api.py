"""Table rows as records over HTTP, on both databases: predict and explain inputs (and explain background rows)
given as objects keyed by column name are checked at submit (an unknown key, records mixed with lists, records
for a model not trained on a table: refused, nothing queued) and queued as rows in the model's column order, a
missing key as a null cell; they then predict exactly what the rows do. Jobs run in-process through the real
``JobRunner`` and TensorFlow."""

from __future__ import annotations

import io

from db.database import Database
from tensorq.core.settings import Settings
from tests.ml.mixed_table import mixed_csv
from worker.runner import JobRunner

FEATURES = ["age", "income", "city", "plan"]


def _post(client, auth, job_type: str, spec: dict):  # type: ignore[no-untyped-def]
    return client.post("/v1/jobs", json={"type": job_type, "spec": spec}, headers=auth)


def _dataset(client, auth, payload: bytes) -> str:  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), "t.csv")}
    response = client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _run(client, auth, runner: JobRunner, job_type: str, spec: dict) -> dict:  # type: ignore[no-untyped-def]
    submitted = _post(client, auth, job_type, spec)
    assert submitted.status_code == 202, submitted.get_json()
    job_id = submitted.get_json()["id"]
    assert runner.run(job_id) == "succeeded", client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["error"]
    return client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()


def _refused(client, auth, job_type: str, spec: dict) -> dict:  # type: ignore[no-untyped-def]
    response = _post(client, auth, job_type, spec)
    assert response.status_code == 400, response.get_json()
    return response.get_json()["error"]


def _train(client, auth, runner: JobRunner, payload: bytes, name: str, **spec: object) -> None:  # type: ignore[no-untyped-def]
    dataset = _dataset(client, auth, payload)
    body = {"architecture": "mlp", "epochs": 2, "seed": 1, "dataset": dataset, "register_as": name} | spec
    _run(client, auth, runner, "train", body)


def test_records_are_checked_at_submit_and_queued_as_rows_in_column_order(  # type: ignore[no-untyped-def]
    client, auth, settings: Settings, db: Database, publisher
) -> None:
    runner = JobRunner(settings, db)
    _train(client, auth, runner, mixed_csv(), "churn", label_column="label", categorical_columns=["plan"])
    records = [{"plan": "2", "city": "Paris", "income": 20.5, "age": 30}, {"city": "Lyon"}]
    rows = [[30, 20.5, "Paris", "2"], [None, None, "Lyon", None]]

    queued = _post(client, auth, "predict", {"model": "churn", "inputs": records})
    assert queued.status_code == 202, queued.get_json()
    assert queued.get_json()["spec"]["inputs"] == rows
    background = [{"age": 40, "city": "Nice"}]
    explain = {"model": "churn", "inputs": records, "method": "gradient_shap", "background": background}
    explained = _post(client, auth, "explain", explain).get_json()
    assert explained["spec"]["inputs"] == rows
    assert explained["spec"]["background"] == [[40, None, "Nice", None]]

    published = list(publisher.published)
    unknown = _refused(client, auth, "predict", {"model": "churn", "inputs": [{"age": 30, "town": "Paris"}]})
    assert unknown["code"] == "unknown_columns"
    assert "'town'" in unknown["message"]
    assert unknown["details"]["unknown"] == ["town"]
    assert unknown["details"]["columns"] == FEATURES
    many = _refused(client, auth, "predict", {"model": "churn", "inputs": [{f"c{i}": 1 for i in range(30)}]})
    assert (len(many["details"]["unknown"]), many["details"]["unknown_count"]) == (20, 30)
    assert "and 10 more" in many["message"]
    mixed = _refused(client, auth, "explain", {"model": "churn", "inputs": [records[0], rows[0]]})
    assert mixed["code"] == "mixed_input_forms"
    assert mixed["details"] == {"field": "inputs", "row": 1}
    not_a_number = _refused(client, auth, "predict", {"model": "churn", "inputs": [{"age": "old"}]})
    assert "column 'age'" in not_a_number["message"]
    batch = {"jobs": [{"type": "predict", "spec": {"model": "churn", "inputs": rows}}] * 2}
    batch["jobs"][1] = {"type": "predict", "spec": {"model": "churn", "inputs": [{"zip": 1}]}}
    refused = client.post("/v1/jobs", json=batch, headers=auth)
    assert refused.status_code == 400
    assert (refused.get_json()["error"]["code"], refused.get_json()["error"]["details"]["index"]) == (
        "unknown_columns",
        1,
    )
    assert publisher.published == published  # nothing queued by a refusal

    batch["jobs"][1] = {"type": "predict", "spec": {"model": "churn", "inputs": records}}
    accepted = client.post("/v1/jobs", json=batch, headers=auth)
    assert accepted.status_code == 202, accepted.get_json()
    assert [job["spec"]["inputs"] for job in accepted.get_json()["jobs"]] == [rows, rows]


def test_records_predict_and_explain_what_rows_do_a_missing_key_as_a_null_cell(  # type: ignore[no-untyped-def]
    client, auth, settings: Settings, db: Database
) -> None:
    runner = JobRunner(settings, db)
    _train(client, auth, runner, mixed_csv(), "churn", label_column="label")
    rows = [[30, 20.5, "Paris", "2"], [None, 75, None, "1"]]
    records = [{"age": 30, "income": 20.5, "city": "Paris", "plan": "2"}, {"plan": "1", "income": 75}]
    by_rows = _run(client, auth, runner, "predict", {"model": "churn", "inputs": rows})["result"]
    by_records = _run(client, auth, runner, "predict", {"model": "churn", "inputs": records})["result"]
    assert by_records["outputs"] == by_rows["outputs"]
    assert by_records["labels"] == by_rows["labels"]
    spec = {"model": "churn", "method": "occlusion"}
    explained_rows = _run(client, auth, runner, "explain", spec | {"inputs": rows})["result"]
    explained_records = _run(client, auth, runner, "explain", spec | {"inputs": records})["result"]
    assert explained_records["attributions"] == explained_rows["attributions"]


def test_records_for_a_model_without_an_encoder_or_not_trained_on_a_table(  # type: ignore[no-untyped-def]
    client, auth, settings: Settings, db: Database
) -> None:
    runner = JobRunner(settings, db)
    complete = b"a,b,label\n" + b"".join(b"%d,%d,%s\n" % (i, i % 3, b"xy"[i % 2 : i % 2 + 1]) for i in range(40))
    _train(client, auth, runner, complete, "plain", label_column="label")
    by_rows = _run(client, auth, runner, "predict", {"model": "plain", "inputs": [[3, 1]]})["result"]
    by_records = _run(client, auth, runner, "predict", {"model": "plain", "inputs": [{"b": 1, "a": 3}]})["result"]
    assert by_records["outputs"] == by_rows["outputs"]
    # Without an encoder nothing is imputed: a missing key is refused as a null cell is.
    gap = _refused(client, auth, "predict", {"model": "plain", "inputs": [{"a": 3}]})
    null = _refused(client, auth, "predict", {"model": "plain", "inputs": [[3, None]]})
    assert (gap["code"], gap["message"]) == (null["code"], null["message"])

    iris = {"architecture": "mlp", "epochs": 1, "dataset": "builtin:iris", "register_as": "iris"}
    _run(client, auth, runner, "train", iris)
    refused = _refused(client, auth, "predict", {"model": "iris", "inputs": [{"sepal length (cm)": 5.1}]})
    assert refused["code"] == "records_need_table_model"
