"""GPU honesty: a worker pinned to a GPU the host lacks refuses to start, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.gpu_check import GpuInfo, GpuUnavailable, check_gpu_request, nvml_gpus

ROOT = Path(__file__).resolve().parents[2]
ONE_GPU = ([GpuInfo(0, "Test GPU", "GPU-0000", 81920)], None)


def _never() -> tuple[list[GpuInfo], str | None]:
    raise AssertionError("discovery must not run for a CPU worker")


def test_cpu_and_auto_ask_for_nothing() -> None:
    assert check_gpu_request("none", discover=_never) == []
    assert check_gpu_request("auto", discover=_never) == []


def test_a_missing_index_is_refused_with_the_gpus_found() -> None:
    with pytest.raises(GpuUnavailable, match=r"GPU 1, which this host does not have \(GPUs: 0: Test GPU\)"):
        check_gpu_request("1", discover=lambda: ONE_GPU, tensorflow_count=lambda _v: 1)


def test_no_driver_is_refused_with_the_reason() -> None:
    with pytest.raises(GpuUnavailable, match="no NVIDIA driver.*--gpu none"):
        check_gpu_request("0", discover=lambda: ([], "NVML could not start (x): no NVIDIA driver on this host"))


def test_an_existing_gpu_tensorflow_can_use_passes() -> None:
    assert check_gpu_request("0", discover=lambda: ONE_GPU, tensorflow_count=lambda v: 1) == ONE_GPU[0]


def test_a_gpu_tensorflow_cannot_see_is_refused() -> None:
    """A real TensorFlow (CPU here) pinned to GPU 0 lists none: the worker must not silently run on the CPU."""
    with pytest.raises(GpuUnavailable, match="TensorFlow lists 0 GPU"):
        check_gpu_request("0", discover=lambda: ONE_GPU)


def test_worker_command_refuses_a_gpu_this_host_lacks() -> None:
    gpus, _why = nvml_gpus()
    if gpus:
        pytest.skip("this host has GPUs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TENSORQ_BROKER_URL": "memory://"}
    done = subprocess.run(
        [sys.executable, "-m", "tensorq.cli", "worker", "--gpu", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "--gpu 0 asks for GPU 0" in done.stderr
    assert "--gpu none" in done.stderr
    assert "Traceback" not in done.stderr
