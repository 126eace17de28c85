"""The streaming figure (issue 21): a classifier trained on the same Parquet table streamed in chunks
(``ml.streaming``) against loaded whole, each in a fresh process primed as a worker with a low memory ceiling
primes itself (``worker/prime.py``): the wall time of ``ml.training.train`` and the peak resident memory it
adds (``VmHWM`` reset through ``/proc/self/clear_refs`` just before, less ``VmRSS`` then).

``python -m bench.streaming --mode stream|memory --table PATH`` is one such run; it prints its figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.context import Context
from bench.specs import Measurement

FEATURES = 16
GROUP_ROWS = 32_768
ROWS_PER_TRAIN_IMAGE = 50  # rows of the table per image of the train figure (1M full, 250k quick)


def write_table(path: Path, rows: int, seed: int = 0) -> int:
    """A Parquet table of ``FEATURES`` float64 columns and an int64 label the first four decide; its decoded
    bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    columns = {f"f{j}": np.round(rng.normal(size=rows), 3) for j in range(FEATURES)}
    score = columns["f0"] - columns["f1"] + columns["f2"] - columns["f3"]
    table = pa.table({**columns, "label": (score > 0).astype(np.int64)})
    pq.write_table(table, path, row_group_size=GROUP_ROWS)
    return int(table.nbytes)


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def one_run(mode: str, table: Path) -> dict[str, float]:
    """Train 2 epochs on ``table`` (streamed or whole) in this process: wall seconds, peak MiB added, accuracy."""
    from ml import datasets
    from ml.table_stream import TableStream
    from ml.training import TrainConfig, train
    from worker.prime import prime_tensorflow

    prime_tensorflow()
    import pandas  # noqa: F401 - Arrow's pandas shim, loaded once per process by either path

    config = TrainConfig("mlp", epochs=2, batch_size=1024, seed=1, validation_split=0.1)
    base = _kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        data = (
            TableStream(table, "parquet", "label")
            if mode == "stream"
            else datasets.load_table(table, "parquet", "label")
        )
        outcome = train(config, data, Path(folder))
    took = time.perf_counter() - start
    return {
        "wall_s": took,
        "peak_added_mib": (_kib("VmHWM") - base) / 1024,
        "val_accuracy": outcome.metrics["val_accuracy"],
    }


def _in_process(mode: str, table: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.streaming", "--mode", mode, "--table", str(table)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.streaming --mode {mode} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def streaming_train(ctx: Context, run: int) -> list[Measurement]:
    """Streamed against in-memory training on one table that fits in memory: time and peak memory added."""
    rows = ctx.sizes.train_images * ROWS_PER_TRAIN_IMAGE
    folder = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    table = folder / "table.parquet"
    decoded = write_table(table, rows, seed=run)
    whole = _in_process("memory", table)
    streamed = _in_process("stream", table)
    table.unlink()
    folder.rmdir()
    ctx.say(
        f"  streaming {rows} rows ({decoded / 2**20:.0f} MiB): streamed {streamed['wall_s']:.1f} s "
        f"+{streamed['peak_added_mib']:.0f} MiB, whole {whole['wall_s']:.1f} s +{whole['peak_added_mib']:.0f} MiB"
    )
    details = {
        "rows": float(rows),
        "decoded_mib": decoded / 2**20,
        "streamed_val_accuracy": streamed["val_accuracy"],
        "whole_val_accuracy": whole["val_accuracy"],
    }
    return [
        Measurement("streaming_train_time", streamed["wall_s"], whole["wall_s"], details),
        Measurement("streaming_train_rss", streamed["peak_added_mib"], whole["peak_added_mib"], details),
    ]


def main() -> None:
    """One run, its figures printed as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__)
    parser.add_argument("--mode", choices=("stream", "memory"), required=True)
    parser.add_argument("--table", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(one_run(args.mode, args.table)))


if __name__ == "__main__":
    main()
