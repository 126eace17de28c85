"""GPU honesty: a worker asked for GPU N starts only where GPU N exists and TensorFlow can use it.

Discovery goes through NVML (``nvidia-ml-py``), which needs no TensorFlow; TensorFlow's own view is read in a
fresh subprocess, so the worker's parent never imports it (TensorFlow is not fork-safe).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from worker.gpu import visible_devices


class GpuUnavailable(ValueError):
    """The GPU a worker was pinned to is not there (or TensorFlow cannot use it); the message says why."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML names it."""

    index: int
    name: str
    uuid: str
    memory_mib: int


def nvml_gpus() -> tuple[list[GpuInfo], str | None]:
    """The GPUs NVML sees, and why none could be listed (no library, no driver) or None when it could."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed (pip install 'tensorq[worker]')"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"NVML could not start ({exc}): no NVIDIA driver on this host"
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(GpuInfo(index, _text(name), _text(uuid), int(memory)))
        return gpus, None
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def tensorflow_gpu_count(cuda_visible_devices: str) -> int:
    """How many GPUs TensorFlow lists when pinned to ``cuda_visible_devices`` (in a fresh interpreter)."""
    code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": cuda_visible_devices, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise GpuUnavailable(f"TensorFlow could not start to list GPUs: {done.stderr.strip()[-400:]}")
    return int(done.stdout.strip().splitlines()[-1])


def check_gpu_request(
    gpu: str,
    discover: Callable[[], tuple[list[GpuInfo], str | None]] = nvml_gpus,
    tensorflow_count: Callable[[str], int] = tensorflow_gpu_count,
) -> list[GpuInfo]:
    """The GPUs a ``--gpu`` choice pins to; raises GpuUnavailable when one is missing or unusable.

    'none' and 'auto' ask for nothing and pass. An index must exist under NVML, and TensorFlow pinned to it
    must list it (a CPU-only TensorFlow build on a GPU host is refused too).
    """
    value = visible_devices(gpu)
    if value is None or value == "-1":
        return []
    wanted = [int(part) for part in value.split(",")]
    gpus, why = discover()
    if why is not None:
        raise GpuUnavailable(f"--gpu {gpu} asks for GPU {value}, but {why}; run CPU workers with --gpu none")
    by_index = {info.index: info for info in gpus}
    missing = [index for index in wanted if index not in by_index]
    if missing:
        found = ", ".join(f"{g.index}: {g.name}" for g in gpus) or "none"
        raise GpuUnavailable(f"--gpu {gpu} asks for GPU {missing[0]}, which this host does not have (GPUs: {found})")
    seen = tensorflow_count(value)
    if seen < len(wanted):
        raise GpuUnavailable(
            f"--gpu {gpu}: NVML sees the GPU but TensorFlow lists {seen} GPU(s) when pinned to it "
            "(a CPU-only TensorFlow build, or CUDA libraries missing: pip install 'tensorq[gpu]')"
        )
    return [by_index[index] for index in wanted]
