"""A dataset larger than the worker's memory ceiling, streamed (docs/data.md, "Tables larger than memory"): a
real worker whose jobs may add ``CEILING_MB`` to its process (``TENSORQ_JOB_MEMORY_MB``) trains on a Parquet
dataset by reference that decodes to more than 4 times that, and the job's peak resident memory above the
worker's own stays under the ceiling.

What is measured: the pool child's peak resident set (``VmHWM``), reset (``/proc/<pid>/clear_refs``) once the
child is warm (TensorFlow loaded, one small training run), less its resident set at that moment. That is the
quantity the ceiling bounds: ``worker/memory.py`` caps each job at the process's size when the job starts plus
``TENSORQ_JOB_MEMORY_MB``, so a process that holds TensorFlow (some 800 MB) is never under the ceiling as a
whole, and what a job may add is the figure that must not grow with the data."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.reliability.harness import wait_for, worker_ready
from tests.services import RedisServer
from worker.drain import child_pids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CEILING_MB = 384
FEATURES = 64
GROUP_ROWS = 32_768


def write_table(path: Path, decoded_bytes: int, seed: int = 0) -> tuple[int, int]:
    """A Parquet file of ``FEATURES`` float64 columns (two decimals: small on disk) and an int64 label the first
    four decide, its row groups repeated until the data decodes to at least ``decoded_bytes``; its decoded bytes
    and rows."""
    rng = np.random.default_rng(seed)
    columns = {f"f{j}": np.round(rng.normal(size=GROUP_ROWS), 2) for j in range(FEATURES)}
    score = columns["f0"] - columns["f1"] + columns["f2"] - columns["f3"]
    group = pa.table({**columns, "label": (score > 0).astype(np.int64)})
    groups = -(-decoded_bytes // group.nbytes)
    with pq.ParquetWriter(path, group.schema, compression="zstd") as writer:
        for _ in range(groups):
            writer.write_table(group, row_group_size=GROUP_ROWS)
    return groups * group.nbytes, groups * GROUP_ROWS


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A Redis of its own, SQLite, the API in a thread and one real CPU worker with a low job memory ceiling;
    every table streams (``stream_above_mb`` 0)."""
    home = tmp_path_factory.mktemp("streamed")
    data = home / "lake"
    data.mkdir()
    url = f"sqlite:///{home / 'tq.sqlite3'}"
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(
        home,
        url,
        broker_url=redis_server.url,
        job_memory_mb=CEILING_MB,
        stream_above_mb=0,
        dataset_url_prefixes=[data.as_uri() + "/"],
    )
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    with pytest.MonkeyPatch.context() as env:
        # the ceiling caps address space: glibc reserves 64 MiB of it per malloc arena (up to 8 per core) and
        # mimalloc (Arrow's pool) large segments, so a worker with a low ceiling keeps to two arenas and Arrow
        # to the system allocator (docs/data.md)
        env.setenv("MALLOC_ARENA_MAX", "2")
        env.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        worker = WorkerProcess(settings, home / "worker.log", gpu="none").start()
    wait_http(f"{api.url}/readyz")
    key = db.keys.create("acme")
    try:
        yield {"api": api, "key": key, "data": data, "worker": worker, "client": TensorQClient(api.url, key)}
    finally:
        worker.stop()
        api.stop()
        db.dispose()
        redis_server.stop()
        log = home / "worker.log"
        if log.exists():
            print(log.read_text()[-3000:])


def _reference(stack: dict, path: Path) -> str:
    response = httpx.post(
        f"{stack['api'].url}/v1/datasets/references",
        json={"url": path.as_uri(), "name": path.stem},
        headers={"Authorization": f"Bearer {stack['key']}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _train(stack: dict, dataset: str, batch_size: int) -> dict:
    spec = {
        "architecture": "mlp",
        "dataset": dataset,
        "label_column": "label",
        "epochs": 1,
        "batch_size": batch_size,
        "seed": 1,
        "validation_split": 0.1,
        "register_as": f"m-{uuid.uuid4().hex[:6]}",
    }
    job = stack["client"].run("train", spec, timeout=300)
    assert job.status == "succeeded", job.error
    return job.result


def test_training_on_a_table_four_times_the_memory_ceiling_stays_under_it(stack: dict) -> None:
    small, large = stack["data"] / "small.parquet", stack["data"] / "large.parquet"
    write_table(small, 4 * 1024 * 1024)
    decoded, rows = write_table(large, 4 * CEILING_MB * 1024 * 1024 + 1)
    assert decoded > 4 * CEILING_MB * 1024 * 1024
    worker: WorkerProcess = stack["worker"]
    wait_for(lambda: worker_ready(worker), timeout=120, what="the worker's TensorFlow")
    _train(stack, _reference(stack, small), 4096)  # the child warm: this job's imports and traces
    [child] = child_pids(worker.proc.pid) if worker.proc else []
    baseline = _kib(child, "VmRSS")
    Path(f"/proc/{child}/clear_refs").write_text("5")  # VmHWM := VmRSS
    started = time.monotonic()
    result = _train(stack, _reference(stack, large), 16_384)
    took = time.monotonic() - started
    peak = _kib(child, "VmHWM")
    added_mb = (peak - baseline) / 1024
    print(
        f"streamed {decoded / 2**20:.0f} MiB ({rows} rows) in {took:.1f} s; worker RSS {baseline / 1024:.0f} MiB "
        f"before, peak {peak / 1024:.0f} MiB: +{added_mb:.0f} MiB under a {CEILING_MB} MiB job ceiling"
    )
    assert [child] == child_pids(worker.proc.pid)  # the same process ran it (not replaced mid-way)
    assert added_mb < CEILING_MB
    assert result["metrics"]["val_accuracy"] > 0.8
