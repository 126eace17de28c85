"""The figures of jobs made of jobs (issue 22): a large sharded predict on two workers against one, and a tune
against Keras Tuner's RandomSearch at the same trial budget, with pruning against without, and on two workers
against one. A second worker is started for the two-worker runs and stopped after them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from bench import keras_tuner_baseline
from bench.context import Context
from bench.data import save_npz
from bench.jobs import Run, run_job
from bench.services import TensorQWorker, wait_until
from bench.specs import Measurement

FEATURES = 32
SHARDS = 2
# A wide MLP: each row costs enough that the shards' own work, not their bookkeeping, is what is timed.
WIDE_MLP = {"hidden": [512, 512], "dropout": 0.0}
TUNE_DATASET = "builtin:breast_cancer"
TUNE_SEED = 7
# The search space, the same for TensorQ's tune and for Keras Tuner (bench/keras_tuner_baseline.py).
SEARCH_SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    "params.dropout": {"type": "float", "low": 0.0, "high": 0.5},
}


@contextlib.contextmanager
def second_worker(ctx: Context) -> Iterator[TensorQWorker]:
    """A second TensorQ worker on the same services for the block (its log in ``worker2/``), warmed."""
    worker = TensorQWorker(ctx.stack.settings, ctx.stack.folder / "worker2")
    worker.start()
    try:
        wait_until(lambda: _ready(worker), "the second worker to load TensorFlow", 180)
        _warm_both(ctx)
        yield worker
    finally:
        worker.stop()


def _ready(worker: TensorQWorker) -> bool:
    """Whether the worker's pool child has TensorFlow loaded and Celery said it is ready."""
    try:
        maps = Path(f"/proc/{worker.pool_child()}/maps").read_text()
    except (OSError, RuntimeError):
        return False
    return "_pywrap_tensorflow" in maps and " ready." in worker.log_path.read_text(errors="replace")


def workers_used(ctx: Context, parent_id: str) -> int:
    """How many workers ran the children of ``parent_id`` (the ``host:pid`` each child's row names)."""
    with ctx.stack.db.engine.connect() as conn:
        query = text("SELECT COUNT(DISTINCT worker) FROM jobs WHERE parent_id = :id")
        return int(conn.execute(query, {"id": parent_id}).scalar_one())


def _warm_both(ctx: Context) -> None:
    """Tiny 2-shard predicts until both workers have loaded TensorFlow and the tiny model (each shard lands on
    whichever worker is free, so a few rounds reach both)."""
    spec = {"model": ctx.tiny_model, "inputs": [[5.1, 3.5, 1.4, 0.2]] * 4, "shards": 2}
    with ctx.client() as client:
        for _ in range(4):
            run_job(client, "predict", spec, timeout=600)


def _wide_model(ctx: Context) -> str:
    """A wide MLP trained on a few synthetic rows of ``FEATURES`` columns (made once per run)."""
    if ctx.wide_model:
        return ctx.wide_model
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    folder = ctx.stack.folder / "data"
    with ctx.client() as client:
        dataset = client.upload_dataset(save_npz(folder / "wide_train.npz", x, y)).id
        spec = {"architecture": "mlp", "params": WIDE_MLP, "dataset": dataset, "epochs": 1, "seed": 1}
        model = run_job(client, "train", {**spec, "model_name": "bench-wide"}, timeout=600).job.result["model_id"]
    ctx.wide_model = str(model)
    return ctx.wide_model


def _predict_rows(ctx: Context) -> str:
    """The uploaded dataset of ``sizes.shard_rows`` rows to predict (made once per run)."""
    if ctx.shard_dataset:
        return ctx.shard_dataset
    rows = ctx.sizes.shard_rows
    rng = np.random.default_rng(6)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    with ctx.client() as client:
        dataset = client.upload_dataset(save_npz(ctx.stack.folder / "data" / "shard_rows.npz", x, y)).id
    ctx.shard_dataset = dataset
    return dataset


def sharded_predict(ctx: Context, run: int) -> list[Measurement]:
    """A ``sizes.shard_rows``-row predict in ``SHARDS`` shards: submit to succeeded on one worker against on two."""
    model, dataset = _wide_model(ctx), _predict_rows(ctx)
    spec = {"model": model, "dataset": dataset, "shards": SHARDS}
    with ctx.client() as client:
        if "sharded" not in ctx.warmed:  # the model cached and the data read once on the first worker
            run_job(client, "predict", spec, timeout=1800)
            ctx.warmed.add("sharded")
        one = run_job(client, "predict", spec, timeout=1800)
    with second_worker(ctx), ctx.client() as client:
        run_job(client, "predict", spec, timeout=1800)  # warm the second worker at this model and size
        two = run_job(client, "predict", spec, timeout=1800)
    details = {
        "rows": float(ctx.sizes.shard_rows),
        "shards": float(SHARDS),
        "one_worker_s": one.wall_s,
        "two_workers_s": two.wall_s,
        "workers_used_two": float(workers_used(ctx, two.job.id)),
    }
    return [Measurement("shard_predict_2_vs_1_workers", one.wall_s, two.wall_s, details)]


def tune_spec(ctx: Context, pruner: str, parallelism: int = 2) -> dict[str, Any]:
    """The reference search: ``sizes.tune_trials`` trials of an MLP on breast_cancer, TPE, ``pruner``."""
    sizes = ctx.sizes
    train = {"architecture": "mlp", "dataset": TUNE_DATASET, "epochs": sizes.tune_epochs, "seed": TUNE_SEED}
    return {
        "train": train,
        "search_space": SEARCH_SPACE,
        "n_trials": sizes.tune_trials,
        "parallelism": parallelism,
        "sampler": "tpe",
        "pruner": pruner,
        "metric": "val_loss",
        "seed": TUNE_SEED,
        "register_as": f"bench-tune-{pruner}",
    }


def _tune(ctx: Context, pruner: str) -> Run:
    with ctx.client() as client:
        return run_job(client, "tune", tune_spec(ctx, pruner), timeout=7200)


def _epochs(run: Run, full: int) -> int:
    """The epochs a tune's trials ran in all (a trial that ran them all may not say so)."""
    return sum(int(t.get("epochs_run") or full) for t in run.job.result["trials"])


def tuning(ctx: Context, run: int) -> list[Measurement]:
    """The reference search against Keras Tuner's RandomSearch at the same budget (best last-epoch val_loss);
    pruning on against off (the epochs run, and the best val_loss of each); its wall time on two workers
    against one (pruning off: every trial does the same work)."""
    sizes = ctx.sizes
    off = _tune(ctx, "none")
    on = _tune(ctx, "median")
    with second_worker(ctx):
        off_two = _tune(ctx, "none")
    start = time.perf_counter()
    reference = keras_tuner_baseline.random_search(
        TUNE_DATASET, SEARCH_SPACE, trials=sizes.tune_trials, epochs=sizes.tune_epochs, seed=TUNE_SEED
    )
    kt_wall = time.perf_counter() - start
    best_on, best_off = float(on.job.result["best_value"]), float(off.job.result["best_value"])
    epochs_on, epochs_off = _epochs(on, sizes.tune_epochs), _epochs(off, sizes.tune_epochs)
    pruned = sum(1 for t in on.job.result["trials"] if t["state"] == "pruned")
    common = {"trials": float(sizes.tune_trials), "epochs": float(sizes.tune_epochs)}
    versus_kt = {
        **common,
        "tensorq_best_pruning_off": best_off,
        "tensorq_wall_s": on.wall_s,
        "keras_tuner_wall_s": kt_wall,
        "keras_tuner_best_epoch_val_loss": reference.best_any_epoch,
    }
    pruning = {
        **common,
        "epochs_run_on": float(epochs_on),
        "epochs_run_off": float(epochs_off),
        "epochs_saved_fraction": 1 - epochs_on / epochs_off,
        "pruned_trials": float(pruned),
        "best_val_loss_on": best_on,
        "best_val_loss_off": best_off,
        "best_gap": best_on - best_off,
        "wall_on_s": on.wall_s,
        "wall_off_s": off.wall_s,
    }
    walls = {**common, "one_worker_s": off.wall_s, "two_workers_s": off_two.wall_s}
    walls["workers_used_two"] = float(workers_used(ctx, off_two.job.id))
    return [
        Measurement("tune_best_vs_keras_tuner", best_on, reference.best_last_epoch, versus_kt),
        Measurement("tune_epochs_pruning_on_vs_off", float(epochs_on), float(epochs_off), pruning),
        Measurement("tune_wall_2_vs_1_workers", off.wall_s, off_two.wall_s, walls),
    ]
