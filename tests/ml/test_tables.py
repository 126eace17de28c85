"""Tables with categorical columns and missing cells: schema inference, unusable columns, Parquet, and a real
mlp trained, reloaded with safe_mode (in a fresh process too), predicting and explaining per column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from api.errors import http_status
from ml import tabular
from ml.datasets import load_columns, load_table
from tensorq.core.errors import InvalidRequest
from tests.ml.mixed_table import mixed_csv, mixed_parquet

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_types_are_inferred_with_missing_counts(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(mixed_csv())
    data = load_table(path, "csv", "label", categorical=["plan"])
    assert data.x.dtype == object
    assert data.x.shape == (240, 4)
    by_name = {c["name"]: c for c in data.columns or []}
    assert [by_name[n]["type"] for n in ("age", "income", "city", "plan")] == [
        "numeric",
        "numeric",
        "categorical",
        "categorical",
    ]
    assert by_name["income"]["missing"] == len(range(3, 240, 11))
    assert by_name["city"]["missing"] == len(range(7, 240, 17))  # blanks and "NA" alike
    assert data.class_names == ["no", "yes"]


def test_a_complete_numeric_table_still_loads_as_float32(tmp_path: Path) -> None:
    data = load_table(_write(tmp_path, "a,b,label\n1,2.5,x\n3,4,y\n"), "csv", "label")
    assert data.x.dtype == np.float32
    assert data.columns is None


@pytest.mark.parametrize(
    ("text", "column", "why"),
    [
        ("a,b,label\n,1,x\n,2,y\n", "a", "all 2 values are missing"),
        ("a,label\n1,x\n2,\n", "label", "missing values"),
        (
            "id,a,label\n" + "".join(f"user{i},{i},{'xy'[i % 2]}\n" for i in range(120)),
            "id",
            "free text or identifiers",
        ),
    ],
)
def test_an_unusable_column_is_named_with_the_reason(tmp_path: Path, text: str, column: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        load_table(_write(tmp_path, text), "csv", "label")
    assert caught.value.code == "unusable_column"
    assert http_status(caught.value) == 422
    assert f"column '{column}'" in caught.value.message
    assert why in caught.value.message
    assert caught.value.details["columns"][0]["column"] == column


def test_an_ignored_column_is_left_out(tmp_path: Path) -> None:
    text = "id,a,label\n" + "".join(f"user{i},{i},{'xy'[i % 2]}\n" for i in range(120))
    data = load_table(_write(tmp_path, text), "csv", "label", ignore=["id"])
    assert data.feature_names == ["a"]


def test_a_vae_refuses_a_table_with_categories(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="column 'b'"):
        load_table(_write(tmp_path, "a,b\n1,x\n2,y\n"), "csv", None, numeric_only=True)


def test_parquet_reads_like_the_same_csv(tmp_path: Path) -> None:
    mixed_parquet(str(tmp_path / "t.parquet"))
    (tmp_path / "t.csv").write_bytes(mixed_csv())
    from_parquet = load_table(tmp_path / "t.parquet", "parquet", "label")
    from_csv = load_table(tmp_path / "t.csv", "csv", "label")
    assert from_parquet.feature_names == from_csv.feature_names
    assert [c["type"] for c in from_parquet.columns or []] == [c["type"] for c in from_csv.columns or []]
    assert np.array_equal(from_parquet.y, from_csv.y)
    assert from_parquet.x[5, 0] == ""
    assert from_parquet.x[0, 2] == from_csv.x[0, 2]


def test_whole_number_labels_in_a_float_column_are_class_ids_not_names(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": [0.5, 1.5, 2.5, 3.5], "label": [0.0, 1.0, 2.0, 1.0]})
    pq.write_table(table, tmp_path / "t.parquet")
    loaded = load_table(tmp_path / "t.parquet", "parquet", "label")
    assert loaded.class_names is None
    assert loaded.y.tolist() == [0, 1, 2, 1]
    fractional = load_table(_write(tmp_path, "a,label\n1,0.5\n2,1.5\n3,0.5\n"), "csv", "label")
    assert fractional.class_names == ["0.5", "1.5"]
    assert fractional.y.tolist() == [0, 1, 0]


def test_parquet_with_an_unsupported_column_type_is_refused_from_its_footer(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml.parquet import footer

    pq.write_table(pa.table({"a": [1, 2], "tags": [[1], [2]]}), tmp_path / "n.parquet")
    with pytest.raises(InvalidRequest) as caught:
        footer(tmp_path / "n.parquet", 100, 100, 10**6)
    assert caught.value.code == "unsupported_column_type"
    assert "'tags'" in caught.value.message
    pq.write_table(pa.table({"a": list(range(1000))}), tmp_path / "big.parquet")
    with pytest.raises(InvalidRequest, match="at most 10 rows"):
        footer(tmp_path / "big.parquet", 10, 100, 10**6)


@pytest.mark.parametrize(
    "cell",
    [
        "1",
        "-2.5",
        "+.5",
        "1.",
        "1e5",
        "1.E-3",
        "007",
        "1_000",
        "inf",
        "-Infinity",
        "nan",
        "0x10",
        "١٢",
        "1e",
        "e5",
        ".",
        "- 1",
        "1.5.2",
    ],
)
def test_a_number_is_what_the_encoder_layer_parses(cell: str) -> None:
    import re

    assert (tabular.number(cell) is not None) == (re.fullmatch(tabular.NUMBER_PATTERN, cell) is not None)


def test_batch_profiles_count_as_cell_by_cell_ones() -> None:
    cells = ["1", " 2.5 ", "", "NA", "n/a", " None", "x", "1e999", "1_0", "Paris", "paris", "Paris", "null", "-3"]
    one, batch = tabular.ColumnProfile("a"), tabular.ColumnProfile("a")
    for cell in cells:
        one.add(cell.strip())
    batch.add_all(cells)
    assert (one.rows, one.missing, one.non_numeric) == (batch.rows, batch.missing, batch.non_numeric) == (14, 5, 6)
    assert one.distinct == batch.distinct


def test_inline_rows_become_cells_and_a_bad_number_is_named() -> None:
    columns = [{"name": "age", "type": "numeric"}, {"name": "city", "type": "categorical"}]
    assert tabular.row_cells([30, "Paris"], columns) == [["30", "Paris"]]
    assert tabular.row_cells([[None, "Lyon"], [1.5, None]], columns) == [["", "Lyon"], ["1.5", ""]]
    with pytest.raises(InvalidRequest, match="column 'age' is numeric"):
        tabular.row_cells([["old", "Paris"]], columns)


@pytest.fixture(scope="module")
def table_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """An mlp trained on the mixed CSV (plan declared categorical); the folder, the CSV and the outcome."""
    from ml.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("table")
    path = folder / "mixed.csv"
    path.write_bytes(mixed_csv())
    data = load_table(path, "csv", "label", categorical=["plan"])
    config = TrainConfig("mlp", {"hidden": [32]}, epochs=40, seed=1, validation_split=0.2, batch_size=16)
    return folder, path, train(config, data, folder / "job")


def test_the_training_reports_each_column_and_learns(table_model) -> None:  # type: ignore[no-untyped-def]
    _, _, outcome = table_model
    columns = {c["name"]: c for c in outcome.signature["columns"]}
    assert columns["city"]["type"] == "categorical"
    assert columns["city"]["vocabulary_size"] == 4
    assert columns["city"]["imputation"] == "missing category"
    assert columns["income"]["imputation"] == "mean + missing indicator"
    assert columns["income"]["missing"] == 22
    assert columns["plan"] == {**columns["plan"], "type": "categorical", "vocabulary_size": 3}
    assert outcome.signature["input_dtype"] == "string"
    assert outcome.signature["input_shape"] == [4]
    assert outcome.metrics["val_accuracy"] >= 0.8


def test_the_model_predicts_on_its_training_file_and_on_inline_rows(table_model) -> None:  # type: ignore[no-untyped-def]
    from ml.inference import coerce_inputs, load_model, predict

    _, path, outcome = table_model
    model = load_model(outcome.model_path)
    names = outcome.signature["feature_names"]
    x, y = load_columns(path, "csv", names, "label", ["no", "yes"], outcome.signature["columns"])
    accuracy = float((predict(model, x).argmax(axis=1) == y).mean())
    assert accuracy >= 0.8
    inline = coerce_inputs(model, [[None, 20.0, "Paris", "2"], [40, None, "Atlantis", 1]])  # unseen city: [UNK]
    assert inline.tolist() == [["", "20.0", "Paris", "2"], ["40", "", "Atlantis", "1"]]
    assert predict(model, inline).shape == (2, 2)


@pytest.mark.parametrize(
    "method", ["integrated_gradients", "smoothgrad", "gradient_shap", "occlusion", "kernel_shap", "lime"]
)
def test_explanations_are_per_column(table_model, method: str) -> None:  # type: ignore[no-untyped-def]
    from ml.explain import explain
    from ml.inference import coerce_inputs, load_model

    _, _, outcome = table_model
    model = load_model(outcome.model_path)
    x = coerce_inputs(model, [[30, 20.0, "Paris", "2"], [None, 70.0, "", "1"]])
    result = explain(model, x, method, nsamples=64 if method != "integrated_gradients" else None)
    assert np.asarray(result.attributions).shape == (2, 4)
    if method == "integrated_gradients":  # completeness holds per column: sums are kept
        assert result.quality["completeness_gap"] < 0.05
    if method == "occlusion":
        assert result.quality["additivity_gap"] >= 0.0


def test_integrated_gradients_column_sums_match_the_output_difference(table_model) -> None:  # type: ignore[no-untyped-def]
    from ml.explain import explain
    from ml.inference import coerce_inputs, load_model, predict

    _, _, outcome = table_model
    model = load_model(outcome.model_path)
    x = coerce_inputs(model, [[30, 20.0, "Paris", "2"]])
    result = explain(model, x, "integrated_gradients", steps=256)
    t = result.targets[0]
    blank = predict(model, np.asarray([["", "", "", ""]], dtype=object))[0, t]
    difference = float(result.predictions[0, t] - blank)
    assert float(np.sum(result.attributions[0])) == pytest.approx(difference, abs=0.02)


def test_the_saved_model_reloads_in_a_fresh_process_with_safe_mode(table_model) -> None:  # type: ignore[no-untyped-def]
    from ml.inference import load_model, predict

    _, _, outcome = table_model
    rows = [["30", "20.0", "Paris", "2"], ["", "", "", ""], ["55", "81", "Lille", "3"]]
    here = predict(load_model(outcome.model_path), np.asarray(rows, dtype=object))
    script = (
        "import json, sys, keras, numpy as np, tensorflow as tf\n"
        "import ml.custom_objects\n"
        "m = keras.models.load_model(sys.argv[1], safe_mode=True, compile=False)\n"
        "print(json.dumps(np.asarray(m(tf.constant(json.loads(sys.argv[2])))).tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(outcome.model_path), json.dumps(rows)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        timeout=240,
        check=True,
    )
    there = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    assert np.allclose(here, there, atol=1e-5)


def test_a_table_model_imported_back_keeps_its_columns(table_model) -> None:  # type: ignore[no-untyped-def]
    from ml.model_import import load

    _, _, outcome = table_model
    _, signature = load(outcome.model_path)
    assert signature["input_dtype"] == "string"
    assert signature["kind"] == "tabular"
    assert signature["feature_names"] == ["age", "income", "city", "plan"]
    assert [c["type"] for c in signature["columns"]] == ["numeric", "numeric", "categorical", "categorical"]


def test_a_table_model_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    from ml.training import TrainConfig, train

    path = tmp_path / "mixed.csv"
    path.write_bytes(mixed_csv(120))
    data = load_table(path, "csv", "label")
    first = train(TrainConfig("mlp", {"hidden": [8]}, epochs=2, seed=1), data, tmp_path / "job")
    again = train(TrainConfig("mlp", {"hidden": [8]}, epochs=4, seed=1), data, tmp_path / "job")
    assert again.history["loss"][:2] == first.history["loss"]
    assert again.epochs_run == 4
    assert again.signature["columns"] == first.signature["columns"]


def test_the_encoder_is_one_graph_for_all_numeric_columns_and_its_positions_cover_the_output() -> None:
    import tensorflow as tf

    from ml.encoding import fit_encoder

    rng = np.random.default_rng(0)
    cells = rng.normal(size=(50, 300)).round(3).astype(str).astype(object)
    cells[::7, ::3] = ""
    cells[:, 5] = rng.choice(["a", "b", "c"], size=50)
    schema = [{"name": f"c{j}", "type": "categorical" if j == 5 else "numeric"} for j in range(300)]
    encoder = fit_encoder(schema, cells)
    out = np.asarray(encoder(tf.constant(cells.astype(str))))
    spans = encoder.positions()
    assert sorted(i for span in spans for i in span) == list(range(out.shape[1])) == list(range(encoder.width))
    # a, b, c, missing, [UNK]
    assert len(spans[5]) == 5
    assert out[:, spans[5]].sum(axis=1).tolist() == [1.0] * 50
    # row 0 is blank there
    assert len(spans[0]) == 2
    assert out[0, spans[0][1]] == 1.0
    assert out[0, spans[0][0]] == 0.0
    assert np.allclose(out[:, spans[1][0]].mean(), 0.0, atol=1e-5)  # standardised on the training rows
    ops = tf.function(lambda x: encoder(x)).get_concrete_function(tf.TensorSpec([None, 300], tf.string))
    assert len(ops.graph.get_operations()) < 200  # not one subgraph per column
