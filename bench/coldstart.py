"""Cold start from zero workers: a job is submitted with no worker running, a `tensorq worker` is started at once
(what the autoscaler does from zero, less the container's own start), and the wait until the job runs is timed
and split by the worker's log: the process start to Celery ready, the pool child's TensorFlow import, the claim.

    python -m bench.coldstart [--runs 5] [--redis-url redis://127.0.0.1:6379/0]

Each run uses its own SQLite file, queue prefix and artifact folder (the model cache starts cold), then a second
job on the same warm worker gives the warm figure.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.core.settings import Settings
from tensorq.localstack import ApiThread, WorkerProcess

SPEC = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1, "seed": 1}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ")


def _logged_at(log: str, needle: str) -> float | None:
    """The epoch time of the first worker log line holding ``needle``."""
    for line in log.splitlines():
        match = STAMP.match(line)
        if match and needle in line:
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def one_run(folder: Path, redis_url: str) -> dict[str, float]:
    """Submit with no worker, start one at once; the figures of this run (seconds)."""
    settings = Settings(
        database_url=f"sqlite:///{folder / 'tensorq.sqlite3'}",
        broker_url=redis_url,
        artifact_dir=str(folder / "artifacts"),
        queue_prefix=f"cold{uuid.uuid4().hex[:8]}",
    )
    upgrade(settings.database_url)
    db = Database(settings)
    api = ApiThread(settings).start()
    client = TensorQClient(api.url, db.keys.create("cold"))
    worker = WorkerProcess(settings, folder / "worker.log", queues="train", gpu="none")
    try:
        submitted = time.time()
        job = client.submit("train", SPEC)
        worker.start()
        while (current := client.job(job.id, wait=1)).status == "queued":
            pass
        running = current.started_at.timestamp() if current.started_at else time.time()
        done = client.wait(job.id, timeout=300)
        log = (folder / "worker.log").read_text()
        ready = _logged_at(log, "ready.") or running
        child = _logged_at(log, "worker child ready") or running
        warm_submitted = time.time()
        warm = client.submit("train", {**SPEC, "seed": 2})
        while (again := client.job(warm.id, wait=1)).status == "queued":
            pass
        warm_running = again.started_at.timestamp() if again.started_at else time.time()
        client.wait(warm.id, timeout=300)
        assert done.status == "succeeded", done.error
        return {
            "cold_start_s": running - submitted,
            "process_to_celery_ready_s": ready - submitted,
            "tensorflow_import_in_child_s": child - submitted,
            "claim_after_child_ready_s": running - max(child, ready),
            "warm_start_s": warm_running - warm_submitted,
        }
    finally:
        worker.stop()
        client.close()
        api.stop()
        db.dispose()


def main() -> None:
    """Run the cold starts and print each figure's median."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_run(Path(tmp), args.redis_url))
        print(f"run {i + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in runs[-1].items()), flush=True)
    print("p50: " + ", ".join(f"{k}={statistics.median(r[k] for r in runs):.1f}" for k in runs[0]))


if __name__ == "__main__":
    main()
