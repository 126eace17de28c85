"""``python -m bench.store``: the S3 store against the file store, side by side in one run (issue 21).

Each store gets its own SQLite database and runs the same jobs through the real handlers in this process
(``JobRunner``, no broker): a table upload, a small training, predicts on the dataset (cold: the model neither
in memory nor in the worker's disk cache; warm: cached), and explains. The S3 store is ``rclone serve s3`` on
this machine, so the ratios measure the store's protocol and copies, not a network. Figures are medians of
``--runs`` runs; ratios are S3 over file (above 1: S3 slower), and cold over warm.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.services import Service, free_port, wait_until

S3_KEY = "tensorqbenchaccesskey"
S3_SECRET = "tensorq-bench-secret-key-0123456789"
CITIES = ("Paris", "Lyon", "Nice", "Lille")


def table_csv(rows: int, seed: int = 0) -> bytes:
    """A mixed table (numbers, a string category, a label the features decide) of ``rows`` rows."""
    rng = np.random.default_rng(seed)
    lines = ["age,income,city,plan,label"]
    for _ in range(rows):
        city = CITIES[int(rng.integers(len(CITIES)))]
        income = float(rng.normal(50, 15))
        label = "yes" if city in ("Paris", "Nice") or income > 70 else "no"
        lines.append(f"{int(rng.integers(18, 80))},{income:.2f},{city},{int(rng.integers(1, 4))},{label}")
    return ("\n".join(lines) + "\n").encode()


def s3_server(folder: Path) -> tuple[Service, str]:
    """``rclone serve s3`` over ``folder`` (bucket ``tensorq``) and its endpoint URL."""
    import socket
    import sys

    (folder / "tensorq").mkdir(parents=True, exist_ok=True)
    port = free_port()
    rclone = str(Path(sys.executable).parent / "rclone")
    argv = [rclone, "serve", "s3", "--auth-key", f"{S3_KEY},{S3_SECRET}", "--addr", f"127.0.0.1:{port}"]
    service = Service("rclone", [*argv, "--config", "/dev/null", str(folder)], folder / "rclone.log").start()

    def answers() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(answers, "rclone serve s3", 20, service.proc)
    return service, f"http://127.0.0.1:{port}"


def _median(run: Callable[[], object], runs: int, before: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(kind: str, home: Path, endpoint: str, rows: int, runs: int) -> dict[str, float]:
    """The figures of one store: seconds per upload, train, cold and warm predict, explain."""
    from api.uploads import store_upload
    from db.database import Database
    from db.jobs import NewJob
    from db.migrate import upgrade
    from ml.inference import clear_cache
    from tensorq.core.settings import Settings
    from worker.runner import JobRunner
    from worker.storage import store_for

    fields: dict[str, object] = {}
    if kind == "s3":
        fields = {
            "artifact_url": f"s3://tensorq/{uuid.uuid4().hex[:8]}",
            "s3_endpoint_url": endpoint,
            "aws_access_key_id": S3_KEY,
            "aws_secret_access_key": S3_SECRET,
            "aws_region": "us-east-1",
        }
    settings = Settings(
        database_url=f"sqlite:///{home / 'tq.sqlite3'}",
        broker_url="memory://",
        artifact_dir=home / "artifacts",
        scratch_dir=home / "scratch",
        model_cache_dir=home / "cache",
        max_inline_rows=10 * rows,
        batch_max_jobs=1,
        **fields,
    )
    upgrade(settings.database_url)
    db = Database(settings)
    tenant = db.keys.ensure_tenant("bench")
    store = store_for(settings)
    data = table_csv(rows)

    def upload() -> str:
        stored = store_upload(io.BytesIO(data), store, tenant, 1 << 30)
        record = db.datasets.add(
            tenant, dataset_id=stored.id, name="t", fmt=stored.format, path=stored.location,
            size_bytes=stored.size_bytes, info=stored.info, profile=stored.profile,
        )  # fmt: skip
        return record.id

    def run(job_type: str, spec: dict) -> None:
        job_id = db.jobs.submit(NewJob(tenant, job_type, spec)).job.id
        assert JobRunner(settings, db).run(job_id) == "succeeded", db.jobs.get_any(job_id).error

    def forget() -> None:
        clear_cache()
        shutil.rmtree(home / "cache", ignore_errors=True)

    figures = {"upload": _median(upload, runs)}
    dataset = upload()
    train = {"architecture": "mlp", "dataset": dataset, "label_column": "label", "epochs": 3, "seed": 1}
    figures["train"] = _median(lambda: run("train", train | {"register_as": "bench"}), runs)
    predict = {"model": "bench", "dataset": dataset}
    figures["predict_cold"] = _median(lambda: run("predict", predict), runs, before=forget)
    run("predict", predict)
    figures["predict_warm"] = _median(lambda: run("predict", predict), runs)
    explain = {"model": "bench", "inputs": [["30", "20.5", "Paris", "2"], ["52", "80.0", "Lille", "1"]]}
    figures["explain"] = _median(lambda: run("explain", explain), runs)
    db.dispose()
    return figures


def main(argv: list[str] | None = None) -> None:
    """Measure both stores and print the figures with their ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--rows", type=int, default=2000, help="rows of the table (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure, median kept (default 3)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="tensorq-bench-store-"))
    server, endpoint = s3_server(home / "objects")
    try:
        results = {kind: measure(kind, home / kind, endpoint, args.rows, args.runs) for kind in ("file", "s3")}
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(f"{'figure (median s)':<16} {'file':>8} {'s3':>8} {'s3/file':>8}")
    for name in results["file"]:
        file_s, s3_s = results["file"][name], results["s3"][name]
        print(f"{name:<16} {file_s:8.3f} {s3_s:8.3f} {s3_s / file_s:8.2f}")
    for kind in ("file", "s3"):
        cold, warm = results[kind]["predict_cold"], results[kind]["predict_warm"]
        print(f"{kind}: predict cold/warm (model cache) {cold / warm:.2f}")


if __name__ == "__main__":
    main()
