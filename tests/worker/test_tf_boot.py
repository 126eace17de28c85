"""TensorFlow's load in a pool child: in the background while the child claims, lean of Keras' extras."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from db.database import Database
from db.jobs import NewJob
from tensorq.core.errors import JobCancelled
from tensorq.core.settings import Settings
from worker.context import HandlerResult, JobContext
from worker.runner import JobRunner
from worker.tf_boot import refused, start_loading, wait_until_loaded


def test_a_refused_package_fails_to_import_within_the_block_only() -> None:
    sys.modules.pop("colorsys", None)
    with refused(["colorsys"]), pytest.raises(ModuleNotFoundError):
        import colorsys  # noqa: F401
    import colorsys  # noqa: F401, F811 - after the block it imports as ever

    assert "colorsys" in sys.modules


def test_a_claimed_job_runs_only_once_the_load_has_ended(settings: Settings, db: Database) -> None:
    release = threading.Event()
    start_loading(lambda: release.wait(30))
    seen: list[str] = []

    def handler(ctx: JobContext) -> HandlerResult:
        seen.append(db.jobs.get_any(ctx.job.id).status)
        return HandlerResult({"ok": True})

    tenant = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(tenant, "train", {})).job.id
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(JobRunner(settings, db, {"train": handler}).run(job_id)))
    runner.start()
    try:
        for _ in range(100):  # claimed (running) while the load goes on, its handler not yet called
            if db.jobs.get_any(job_id).status == "running":
                break
            threading.Event().wait(0.1)
        assert db.jobs.get_any(job_id).status == "running"
        runner.join(0.5)
        assert seen == []
        assert runner.is_alive()
    finally:
        release.set()
        runner.join(30)
    assert outcome == ["succeeded"]
    assert seen == ["running"]


def test_a_job_cancelled_while_the_load_goes_on_stops_waiting() -> None:
    release = threading.Event()
    start_loading(lambda: release.wait(30))
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise JobCancelled("cancelled")

    try:
        with pytest.raises(JobCancelled):
            wait_until_loaded(check, every_s=0.01)
    finally:
        release.set()
    assert wait_until_loaded(check) < 5  # the load ended: no wait, no check


def test_a_failed_load_ends_the_wait() -> None:
    def broken() -> None:
        raise ImportError("no tensorflow here")

    start_loading(broken).join(10)
    assert wait_until_loaded(lambda: None) < 1


def test_the_lean_import_keeps_keras_extras_out_and_keras_still_trains() -> None:
    code = (
        "import sys, numpy as np\n"
        "from worker.gpu import configure_tensorflow\n"
        "configure_tensorflow(keras_extras=False)\n"
        "extras = [m for m in ('pandas', 'matplotlib', 'sklearn', 'scipy') if m in sys.modules]\n"
        "import keras\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
        "model.compile('sgd', 'mse')\n"
        "model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)\n"
        "from sklearn.model_selection import train_test_split\n"
        "import pandas\n"
        "print(extras, 'trained')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("[] trained")
