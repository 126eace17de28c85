"""``python -m bench.tables``: figures of the table path — the upload profile's time and peak memory on a CSV
and a Parquet file, the footer refusal of an over-limit Parquet file, and an mlp on a mixed table (numbers,
categories, missing cells): validation accuracy, accuracy predicting on its own file, and the explanations'
quality figures. CPU, no services."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _mixed(rows: int) -> list[list[str]]:
    import numpy as np

    rng = np.random.default_rng(0)
    cities = ["Paris", "Lyon", "Nice", "Lille", "Brest", "Metz"]
    out = []
    for i in range(rows):
        city = cities[int(rng.integers(len(cities)))]
        income = float(rng.normal(50, 15))
        label = "yes" if city in ("Paris", "Nice") or income > 70 else "no"
        cells = [str(int(rng.integers(18, 80))), f"{income:.2f}", city, str(int(rng.integers(1, 4))), label]
        if i % 11 == 3:
            cells[1] = ""
        if i % 17 == 7:
            cells[2] = ""
        out.append(cells)
    return out


def _write(folder: Path, rows: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _mixed(rows)
    csv = folder / "t.csv"
    csv.write_text("age,income,city,plan,label\n" + "".join(",".join(r) + "\n" for r in table))
    columns = list(zip(*table, strict=True))
    pq.write_table(
        pa.table(
            {
                "age": pa.array([int(v) for v in columns[0]]),
                "income": pa.array([float(v) if v else None for v in columns[1]]),
                "city": pa.array([v or None for v in columns[2]]),
                "plan": pa.array(list(columns[3])),
                "label": pa.array(list(columns[4])),
            }
        ),
        folder / "t.parquet",
    )
    return csv, folder / "t.parquet"


def _profiled(path: Path) -> tuple[float, float]:
    from api.uploads import profile_upload

    start = time.perf_counter()
    profile_upload(path, max_array_bytes=1024**3)
    seconds = time.perf_counter() - start
    tracemalloc.start()  # a second pass: tracing slows Python several times over
    profile_upload(path, max_array_bytes=1024**3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 2**20


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the profiled upload (200000)")
    parser.add_argument("--train-rows", type=int, default=2000, help="rows of the trained table (2000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv, parquet = _write(folder, args.rows)
        for name, path in (("csv", csv), ("parquet", parquet)):
            seconds, peak = _profiled(path)
            size = path.stat().st_size / 2**20
            print(
                f"upload profile {name}: {args.rows} rows, {size:.1f} MiB, {seconds:.2f} s, Python peak {peak:.1f} MiB"
            )
        from ml.parquet import footer
        from tensorq.core.errors import PayloadTooLarge

        start = time.perf_counter()
        try:
            footer(parquet, 10**7, 100, max_bytes=1024)
        except PayloadTooLarge:
            print(
                f"parquet over the size limit refused from its footer in {1000 * (time.perf_counter() - start):.1f} ms"
            )

        from ml.datasets import load_columns, load_table
        from ml.explain import explain
        from ml.inference import coerce_inputs, load_model, predict
        from ml.training import TrainConfig, train

        small = folder / "small"
        small.mkdir()
        train_csv, _ = _write(small, args.train_rows)
        data = load_table(train_csv, "csv", "label", categorical=["plan"])
        config = TrainConfig("mlp", {"hidden": [32]}, epochs=30, seed=1, batch_size=32)
        start = time.perf_counter()
        outcome = train(config, data, small / "job")
        print(
            f"train mlp on {args.train_rows} mixed rows, 30 epochs: {time.perf_counter() - start:.1f} s, "
            f"val_accuracy {outcome.metrics['val_accuracy']:.3f}"
        )
        model = load_model(outcome.model_path)
        x, y = load_columns(
            train_csv, "csv", data.feature_names or [], "label", ["no", "yes"], outcome.signature["columns"]
        )
        accuracy = float((predict(model, x).argmax(axis=1) == y).mean())
        print(f"predict on its own file: accuracy {accuracy:.3f} over {len(y)} labelled rows")
        rows = coerce_inputs(model, [r[:4] for r in _mixed(20)])
        for method in ("integrated_gradients", "occlusion", "kernel_shap"):
            start = time.perf_counter()
            result = explain(model, rows, method, nsamples=200 if method == "kernel_shap" else None)
            ((figure, value),) = result.quality.items()
            print(f"explain {method} on 20 rows: {figure} {value:.4f}, {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
