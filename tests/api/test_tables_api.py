"""Tables over HTTP: a CSV with numeric, string, categorical and missing cells is uploaded, previewed, trained,
predicted on with its own labels and explained per column; Parquet the same way; an unusable column refused
at submit, naming it. Jobs run in-process through the real ``JobRunner`` and TensorFlow, on both databases."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from db.database import Database
from tensorq.core.settings import Settings
from tests.ml.mixed_table import CITIES, mixed_csv, mixed_parquet
from worker.runner import JobRunner


def _upload(client, auth, payload: bytes, name: str):  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), name)}
    return client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")


def _uploaded(client, auth, payload: bytes, name: str) -> str:  # type: ignore[no-untyped-def]
    response = _upload(client, auth, payload, name)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _run(client, auth, runner: JobRunner, job_type: str, spec: dict) -> dict:  # type: ignore[no-untyped-def]
    submitted = client.post("/v1/jobs", json={"type": job_type, "spec": spec}, headers=auth)
    assert submitted.status_code == 202, submitted.get_json()
    job_id = submitted.get_json()["id"]
    outcome = runner.run(job_id)
    job = client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()
    assert outcome == "succeeded", job.get("error")
    return job


def _refused(client, auth, job_type: str, spec: dict) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/v1/jobs", json={"type": job_type, "spec": spec}, headers=auth)
    assert response.status_code in (400, 422), response.get_json()
    return response.get_json()["error"] | {"status": response.status_code}


def test_a_mixed_csv_is_previewed_trained_predicted_with_its_labels_and_explained(
    client, auth, settings: Settings, db: Database
) -> None:
    runner = JobRunner(settings, db)
    uploaded = _upload(client, auth, mixed_csv(), "customers.csv")
    assert uploaded.status_code == 201
    dataset = uploaded.get_json()["id"]
    shown = client.get(f"/v1/datasets/{dataset}", headers=auth).get_json()
    schema = {c["name"]: c for c in shown["schema"]}
    assert [schema[n]["type"] for n in ("age", "income", "city", "plan", "label")] == [
        "numeric",
        "numeric",
        "categorical",
        "numeric",  # inferred; the train spec declares it categorical
        "categorical",
    ]
    assert schema["income"]["missing"] == 22
    assert schema["city"]["missing"] == 14
    assert schema["city"]["distinct"] == 4
    assert shown["preview"]["columns"] == ["age", "income", "city", "plan", "label"]
    # row 3's blank income
    assert len(shown["preview"]["rows"]) == 10
    assert shown["preview"]["rows"][3][1] is None
    listed = client.get("/v1/datasets", headers=auth).get_json()["datasets"]
    assert "preview" not in listed[0]

    spec = {
        "architecture": "mlp",
        "params": {"hidden": [32]},
        "epochs": 40,
        "batch_size": 16,
        "seed": 1,
        "dataset": dataset,
        "label_column": "label",
        "categorical_columns": ["plan"],
        "register_as": "churn",
    }
    trained = _run(client, auth, runner, "train", spec)["result"]
    columns = {c["name"]: c for c in trained["columns"]}
    assert columns["city"]["vocabulary_size"] == len(CITIES)
    assert columns["plan"]["type"] == "categorical"
    assert columns["age"]["imputation"] == "mean + missing indicator"

    predicted = _run(client, auth, runner, "predict", {"model": "churn", "dataset": dataset})["result"]
    assert predicted["rows"] == 240
    assert predicted["metrics"]["labelled_rows"] == 240
    assert predicted["metrics"]["accuracy"] >= 0.8
    assert set(predicted["labels"]) <= {"no", "yes"}

    rows = [[30, 20.5, "Paris", "2"], [None, 75, None, "1"], ["41", "", "Atlantis", 3]]
    inline = _run(client, auth, runner, "predict", {"model": "churn", "inputs": rows})["result"]
    assert len(inline["labels"]) == 3
    for method in ("integrated_gradients", "occlusion"):
        explained = _run(client, auth, runner, "explain", {"model": "churn", "inputs": rows, "method": method})
        result = explained["result"]
        assert result["feature_names"] == ["age", "income", "city", "plan"]
        assert [len(a) for a in result["attributions"]] == [4, 4, 4]
    bad = _refused(client, auth, "predict", {"model": "churn", "inputs": [["old", 1, "Paris", "2"]]})
    assert "column 'age'" in bad["message"]


def test_parquet_uploads_trains_and_predicts_on_itself_and_on_the_csv(
    client, auth, settings: Settings, db: Database, tmp_path: Path
) -> None:
    runner = JobRunner(settings, db)
    mixed_parquet(str(tmp_path / "t.parquet"))
    uploaded = _upload(client, auth, (tmp_path / "t.parquet").read_bytes(), "t.bin")
    assert uploaded.status_code == 201, uploaded.get_json()
    body = uploaded.get_json()
    assert body["format"] == "parquet"
    assert body["info"]["rows"] == 240
    assert {c["name"]: c["type"] for c in body["schema"]}["city"] == "categorical"
    assert body["preview"]["rows"][5][0] is None  # a null int64 cell
    spec = {"architecture": "mlp", "epochs": 30, "seed": 2, "dataset": body["id"], "label_column": "label"}
    spec |= {"register_as": "pq", "batch_size": 16}
    _run(client, auth, runner, "train", spec)
    on_itself = _run(client, auth, runner, "predict", {"model": "pq", "dataset": body["id"]})["result"]
    assert on_itself["metrics"]["accuracy"] >= 0.75
    csv = _uploaded(client, auth, mixed_csv(), "same.csv")
    on_csv = _run(client, auth, runner, "predict", {"model": "pq", "dataset": csv})["result"]
    assert on_csv["labels"] == on_itself["labels"]


@pytest.mark.parametrize(
    ("table", "spec", "column", "why"),
    [
        (b"a,b,label\n,1,x\n,2,y\n", {}, "a", "all 2 values are missing"),
        (b"a,label\n1,x\n2,\n3,y\n", {}, "label", "missing values"),
        (
            ("note,a,label\n" + "".join(f"remark number {i},{i},{'xy'[i % 2]}\n" for i in range(120))).encode(),
            {},
            "note",
            "free text",
        ),
        (b"a,b\n1,x\n2,y\n", {"architecture": "vae"}, "b", "complete numeric columns"),
    ],
)
def test_an_unusable_column_is_refused_at_submit_naming_it(  # type: ignore[no-untyped-def]
    client, auth, table: bytes, spec: dict, column: str, why: str
) -> None:
    dataset = _uploaded(client, auth, table, "t.csv")
    asked = {"architecture": "mlp", "dataset": dataset, "label_column": "label"} | spec
    if asked["architecture"] == "vae":
        del asked["label_column"]
    error = _refused(client, auth, "train", asked)
    assert error["status"] == 422
    assert error["code"] == "unusable_column"
    assert f"column '{column}'" in error["message"]
    assert why in error["message"]
    assert error["details"]["columns"][0]["column"] == column


def test_ignore_columns_leaves_an_unusable_column_out_and_unknown_names_are_refused(client, auth) -> None:
    table = ("note,a,label\n" + "".join(f"remark {i},{i},{'xy'[i % 2]}\n" for i in range(120))).encode()
    dataset = _uploaded(client, auth, table, "t.csv")
    spec = {"architecture": "mlp", "dataset": dataset, "label_column": "label", "ignore_columns": ["note"]}
    assert client.post("/v1/jobs", json={"type": "train", "spec": spec}, headers=auth).status_code == 202
    unknown = _refused(client, auth, "train", spec | {"categorical_columns": ["nope"]})
    assert unknown["code"] == "unknown_columns"
    assert unknown["details"]["unknown"] == ["nope"]


def test_a_model_without_an_encoder_refuses_a_table_with_gaps_at_submit(
    client, auth, settings: Settings, db: Database
) -> None:
    runner = JobRunner(settings, db)
    complete = _uploaded(
        client,
        auth,
        b"a,b,label\n" + b"".join(b"%d,%d,%s\n" % (i, i % 3, b"xy"[i % 2 : i % 2 + 1]) for i in range(40)),
        "c.csv",
    )
    _run(
        client,
        auth,
        runner,
        "train",
        {"architecture": "mlp", "epochs": 1, "dataset": complete, "label_column": "label", "register_as": "plain"},
    )
    gaps = _uploaded(client, auth, b"a,b\n1,\n2,3\n", "g.csv")
    error = _refused(client, auth, "predict", {"model": "plain", "dataset": gaps})
    assert error["code"] == "unusable_column"
    assert "column 'b'" in error["message"]
    assert "impute" in error["message"]


def test_a_parquet_file_over_the_limits_is_refused_from_its_footer(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from api.uploads import profile_upload
    from tensorq.core.errors import PayloadTooLarge

    pq.write_table(pa.table({"a": list(range(100_000)), "b": ["x"] * 100_000}), tmp_path / "big.parquet")
    with pytest.raises(PayloadTooLarge) as caught:
        profile_upload(tmp_path / "big.parquet", max_array_bytes=10_000)
    assert caught.value.code == "parquet_too_large"
