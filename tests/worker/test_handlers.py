"""What the predict and explain handlers write: predictions.csv, rounded attributions and heatmaps, on a real CNN."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from db.database import Database
from db.jobs import NewJob
from tensorq.core.settings import Settings
from tests.conftest import make_settings
from worker.handlers import CSV_CHUNK_ROWS, _rounded, _write_predictions
from worker.runner import JobRunner


def _reference_csv(path: Path, probabilities: np.ndarray) -> None:
    """predictions.csv as a plain ``csv.writer`` loop writes it, one row at a time."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "class", *[f"p{i}" for i in range(probabilities.shape[1])]])
        for i, row in enumerate(probabilities):
            writer.writerow([i, int(row.argmax()), *[f"{p:.6g}" for p in row]])


@pytest.mark.parametrize("rows", [1, 7, CSV_CHUNK_ROWS + 3])
def test_predictions_csv_matches_a_csv_writer_byte_for_byte(tmp_path: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    probabilities = rng.dirichlet(np.ones(10) * 0.3, size=rows).astype(np.float32)
    probabilities[0, :4] = [np.nan, np.inf, -0.0, 1e-30]
    probabilities[-1, 4:6] = [123456789.0, -3.5e-7]
    _write_predictions(tmp_path / "fast.csv", probabilities)
    _reference_csv(tmp_path / "loop.csv", probabilities)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "loop.csv").read_bytes()


def test_predictions_csv_of_one_column(tmp_path: Path) -> None:
    probabilities = np.array([[0.25], [0.75]], dtype=np.float32)
    _write_predictions(tmp_path / "p.csv", probabilities)
    assert (tmp_path / "p.csv").read_text() == "row,class,p0\n0,0,0.25\n1,0,0.75\n"


def test_attributions_are_rounded_to_8_decimals_and_print_short() -> None:
    values = np.array([[0.1234567891, -2.5e-9], [1.0, 3.14159265358979]], dtype=np.float32)
    rounded = _rounded(values)
    assert np.shape(rounded) == values.shape
    np.testing.assert_allclose(rounded, values, rtol=0, atol=5.1e-9)
    assert json.dumps(rounded) == "[[0.12345679, -0.0], [1.0, 3.14159274]]"
    ragged = _rounded([np.array([0.5, 0.25], dtype=np.float32), np.zeros(0, dtype=np.float32)])
    assert ragged == [[0.5, 0.25], []]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite only: these tests are about the handlers' outputs; predictions above 50 rows become a CSV."""
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'tensorq.sqlite3'}", max_inline_rows=50)


def _run(settings: Settings, db: Database, job_type: str, spec: dict) -> dict:
    tenant = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(tenant, job_type, spec)).job.id
    outcome = JobRunner(settings, db).run(job_id)
    job = db.jobs.get_any(job_id)
    assert outcome == "succeeded", job.error
    return {"id": job_id, "result": job.result}


@pytest.fixture
def cnn(settings: Settings, db: Database) -> str:
    """The id of a CNN trained for a few epochs on scikit-learn's 8x8 digits."""
    spec = {
        "architecture": "cnn",
        "dataset": "builtin:digits",
        "epochs": 3,
        "batch_size": 32,
        "validation_split": 0.1,
        "learning_rate": 0.003,
        "seed": 0,
    }
    job = _run(settings, db, "train", spec)
    return db.jobs.versions_of_job(job["id"])[0].model_id


def test_an_explain_job_gives_rounded_attributions_and_one_readable_heatmap_per_image(
    settings: Settings, db: Database, cnn: str
) -> None:
    from ml.explain import integrated_gradients
    from ml.inference import load_model

    images = load_digits().images[:3]
    job = _run(settings, db, "explain", {"model": cnn, "inputs": images.tolist(), "steps": 32})
    result = job["result"]
    attributions = np.array(result["attributions"])
    assert attributions.shape == (3, 8, 8, 1)
    model = load_model(db.models.resolve(db.keys.ensure_tenant("acme"), cnn).path)
    direct = integrated_gradients(model, images[..., None].astype(np.float32), steps=32)
    np.testing.assert_allclose(attributions, direct.attributions, rtol=0, atol=2e-7)
    assert result["targets"] == direct.targets
    assert result["quality"]["completeness_gap"] == pytest.approx(direct.quality["completeness_gap"], abs=1e-6)
    assert all(len(repr(v)) <= 12 for v in attributions.ravel().tolist())  # 8 decimals, no float32 tails
    assert result["artifacts"] == ["heatmap_0.png", "heatmap_1.png", "heatmap_2.png"]
    for name in result["artifacts"]:
        with Image.open(settings.job_dir(job["id"]) / name) as png:
            assert png.format == "PNG"
            assert min(png.size) >= 280


def test_a_large_predict_job_writes_predictions_csv(settings: Settings, db: Database, cnn: str) -> None:
    from ml.inference import load_model, predict

    images = load_digits().images[:60]
    job = _run(settings, db, "predict", {"model": cnn, "inputs": images.tolist()})
    result = job["result"]
    assert result["rows"] == 60
    assert result["artifacts"] == ["predictions.csv"]
    with (settings.job_dir(job["id"]) / "predictions.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "class", *[f"p{i}" for i in range(10)]]
    table = np.array(rows[1:], dtype=np.float64)
    assert table.shape == (60, 12)
    np.testing.assert_array_equal(table[:, 0], np.arange(60))
    version = db.models.resolve(db.keys.ensure_tenant("acme"), cnn)
    expected = predict(load_model(version.path), images[..., None].astype(np.float32))
    np.testing.assert_allclose(table[:, 2:], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(table[:, 1], expected.argmax(axis=1))
    assert result["classes_preview"] == expected.argmax(axis=1)[:20].tolist()


def test_csv_cells_that_start_like_formulas_are_neutralised() -> None:
    from worker.csv_cells import safe_cell

    assert safe_cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert safe_cell("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("-0.5") == "-0.5"
    assert safe_cell("user-1") == "user-1"
    assert safe_cell(7) == "7"


def test_a_predict_on_a_datasets_row_range_gives_those_rows_of_the_whole_run(
    settings: Settings, db: Database, cnn: str
) -> None:
    """A shard of a dataset (``row_range``, docs/job-graphs.md) predicts its rows as the whole run does."""
    whole = _run(settings, db, "predict", {"model": cnn, "dataset": "builtin:digits"})
    with (settings.job_dir(whole["id"]) / "predictions.csv").open(newline="") as handle:
        table = np.array(list(csv.reader(handle))[1:], dtype=np.float64)
    shard = _run(settings, db, "predict", {"model": cnn, "dataset": "builtin:digits", "row_range": [10, 20]})
    assert shard["result"]["rows"] == 10
    np.testing.assert_allclose(shard["result"]["outputs"], table[10:20, 2:], atol=2e-6)
    assert shard["result"]["classes"] == table[10:20, 1].astype(int).tolist()
