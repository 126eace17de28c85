"""GPU pinning: set ``CUDA_VISIBLE_DEVICES`` before TensorFlow loads, then turn on memory growth."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def visible_devices(gpu: str) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value for a ``--gpu`` choice: an index, 'none' (CPU) or 'auto' (unchanged)."""
    choice = gpu.strip().lower()
    if choice == "auto":
        return None
    if choice in ("none", "cpu", "-1"):
        return "-1"
    if not all(part.strip().isdigit() for part in choice.split(",")):
        raise ValueError(f"--gpu takes an index such as 0, a list such as 0,1, 'none' or 'auto'; got {gpu!r}")
    return ",".join(part.strip() for part in choice.split(","))


def pin_gpu(gpu: str) -> None:
    """Pin this process (and the children it forks) to ``gpu``; must run before TensorFlow is imported."""
    value = visible_devices(gpu)
    if value is None:
        return
    import sys

    if "tensorflow" in sys.modules:
        raise RuntimeError("pin_gpu must run before TensorFlow is imported")
    os.environ["CUDA_VISIBLE_DEVICES"] = value


def configure_tensorflow(keras_extras: bool = True) -> list[str]:
    """Import TensorFlow in this (child) process (without Keras' optional extras unless ``keras_extras``: see
    ``worker/tf_boot.py``), enable memory growth, and name the GPUs it sees."""
    from worker.tf_boot import lean_import

    tf = lean_import(keras_extras)

    gpus = tf.config.list_physical_devices("GPU")
    for device in gpus:
        try:
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:  # already initialised: growth can no longer change
            log.warning("could not enable memory growth on %s", device.name)
    return [d.name for d in gpus]


def gpu_details(choice: str, visible: list[str]) -> dict[str, object] | None:
    """What a worker reports about its GPU: the ``--gpu`` choice, and each visible device's name and
    compute capability as TensorFlow sees them; None on the CPU."""
    if not visible:
        return None
    import tensorflow as tf

    devices = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (RuntimeError, ValueError):
            details = {}
        capability = details.get("compute_capability")
        devices.append(
            {
                "device": device.name,
                "name": details.get("device_name"),
                "compute_capability": ".".join(map(str, capability)) if capability else None,
            }
        )
    return {"index": choice, "devices": devices}
