"""Streamed tables (docs/data.md, "Tables larger than memory") through the real handlers on each database:
a predict streamed chunk by chunk writes the very predictions.csv and figures of the in-memory run, and a
classifier trained on a streamed table reaches the in-memory run's accuracy on the same rows."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from db.database import Database
from db.jobs import NewJob
from ml import table_stream
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore
from tests.conftest import make_settings
from tests.ml.mixed_table import mixed_rows
from worker.runner import JobRunner

ROWS = 3000


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Each database; tables are read whole (the streamed runs lower ``stream_above_mb`` to 0)."""
    return make_settings(tmp_path, database_url, max_inline_rows=50, stream_above_mb=10_000)


def _table(path: Path) -> None:
    """A mixed table (numbers with missing cells, categories, a string label) in row groups of 500 rows."""
    rows = mixed_rows(ROWS, seed=3)
    columns = list(zip(*rows, strict=True))
    table = pa.table(
        {
            "age": pa.array([float(v) if v else None for v in columns[0]]),
            "income": pa.array([float(v) if v else None for v in columns[1]]),
            "city": pa.array(columns[2]),
            "plan": pa.array(columns[3]),
            "label": pa.array(columns[4]),
        }
    )
    pq.write_table(table, path, row_group_size=500)


def _dataset(settings: Settings, db: Database, tenant: str) -> str:
    store = ArtifactStore.from_settings(settings)
    local = settings.scratch_dir / "t.parquet"
    local.parent.mkdir(parents=True, exist_ok=True)
    _table(local)
    location = store.put(local, store.location("datasets", tenant, "t.parquet"))
    size = store.size(location)
    return db.datasets.add(
        tenant, dataset_id=str(uuid.uuid4()), name="t", fmt="parquet", path=location, size_bytes=size, info={}
    ).id


def _run(settings: Settings, db: Database, job_type: str, spec: dict) -> dict:
    tenant = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(tenant, job_type, spec)).job.id
    outcome = JobRunner(settings, db).run(job_id)
    job = db.jobs.get_any(job_id)
    assert outcome == "succeeded", job.error
    return {"id": job_id, "result": job.result}


def test_a_streamed_predict_equals_the_in_memory_one_and_a_streamed_training_learns(
    settings: Settings, db: Database
) -> None:
    tenant = db.keys.ensure_tenant("acme")
    dataset = _dataset(settings, db, tenant)
    streaming = settings.model_copy(update={"stream_above_mb": 0})
    train = {
        "architecture": "mlp",
        "dataset": dataset,
        "label_column": "label",
        "categorical_columns": ["plan"],
        "epochs": 4,
        "batch_size": 64,
        "seed": 2,
        "validation_split": 0.2,
    }
    whole = _run(settings, db, "train", {**train, "register_as": "whole"})["result"]
    streamed = _run(streaming, db, "train", {**train, "register_as": "streamed"})["result"]
    assert streamed["metrics"]["val_accuracy"] > 0.85
    assert streamed["metrics"]["val_accuracy"] > whole["metrics"]["val_accuracy"] - 0.05

    for rows in (None, [700, 2100]):  # the whole table, and a shard's rows across row groups
        spec = {"model": "streamed", "dataset": dataset, "label_column": "label"}
        if rows is not None:
            spec["row_range"] = rows
        in_memory = _run(settings, db, "predict", spec)
        chunked = _run(streaming, db, "predict", spec)
        assert chunked["result"].pop("streamed") is True
        assert chunked["result"] == in_memory["result"]
        written = (settings.job_dir(chunked["id"]) / "predictions.csv").read_bytes()
        assert written == (settings.job_dir(in_memory["id"]) / "predictions.csv").read_bytes()
        assert written.count(b"\n") == 1 + (ROWS if rows is None else rows[1] - rows[0])

    small = _run(streaming, db, "predict", {"model": "whole", "dataset": dataset, "row_range": [5, 25]})
    assert small["result"].pop("streamed") is True
    assert (
        small["result"]
        == _run(settings, db, "predict", {"model": "whole", "dataset": dataset, "row_range": [5, 25]})["result"]
    )


def test_held_out_rows_depend_only_on_their_position_and_the_seed() -> None:
    whole = table_stream.held_out(0, 100_000, 7, 0.1, 0.2)
    parts = np.concatenate([table_stream.held_out(s, 10_000, 7, 0.1, 0.2) for s in range(0, 100_000, 10_000)])
    assert np.array_equal(whole, parts)
    shares = np.bincount(whole, minlength=3) / len(whole)
    np.testing.assert_allclose(shares, [0.72, 0.18, 0.10], atol=0.01)
    assert not np.array_equal(whole, table_stream.held_out(0, 100_000, 8, 0.1, 0.2))


def test_moments_merged_chunk_by_chunk_equal_numpys() -> None:
    values = np.random.default_rng(0).normal(1e6, 3.0, size=50_001)
    moments = table_stream.NumericMoments()
    for start in range(0, len(values), 4096):
        moments.add(values[start : start + 4096])
    assert moments.count == len(values)
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.variance == pytest.approx(values.var(), rel=1e-9)
