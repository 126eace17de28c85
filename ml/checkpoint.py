"""Training checkpoints: the model with its optimizer state, the epoch and history, each written atomically.

A job folder holds ``checkpoint.keras`` (the model after the last finished epoch), ``checkpoint.json``
(``{"epoch", "history", "early_stopping"}``) and, when early stopping is on, ``checkpoint.best.npz``
(the best weights so far), so that a re-queued job resumes where it left off.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

import ml.custom_objects  # noqa: F401 - registers TensorQ's own Keras classes before any load

CHECKPOINT = "checkpoint.keras"
CHECKPOINT_STATE = "checkpoint.json"
BEST_WEIGHTS = "checkpoint.best.npz"
# What a resume needs, in the order a store receives them (the state last: it names the epoch the model is at).
CHECKPOINT_FILES = (CHECKPOINT, BEST_WEIGHTS, CHECKPOINT_STATE)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the compiled model, the epochs done, and the history so far."""

    model: keras.Model
    epoch: int
    history: dict[str, list[float]]
    early_stopping: dict[str, Any] | None = None


def save_checkpoint(
    model: keras.Model,
    workdir: Path,
    epoch: int,
    history: dict[str, list[float]],
    early_stopping: dict[str, Any] | None = None,
) -> None:
    """Write the model (with optimizer state), then the epoch and history, each atomically."""
    tmp = workdir / f".{CHECKPOINT}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, workdir / CHECKPOINT)
    _write_json(workdir / CHECKPOINT_STATE, {"epoch": epoch, "history": history, "early_stopping": early_stopping})


def load_checkpoint(workdir: Path) -> Checkpoint | None:
    """The last checkpoint in ``workdir``, or None when there is none (or it is unreadable)."""
    model_path, state_path = workdir / CHECKPOINT, workdir / CHECKPOINT_STATE
    if not (model_path.is_file() and state_path.is_file()):
        return None
    try:
        state = json.loads(state_path.read_text())
        epoch = int(state["epoch"])
        history = {str(k): [float(v) for v in values] for k, values in state["history"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    model = keras.models.load_model(model_path, safe_mode=True, compile=True)
    return Checkpoint(model, epoch, history, state.get("early_stopping"))


def save_best_weights(weights: list[np.ndarray], workdir: Path) -> None:
    """Write early stopping's best weights so far, atomically."""
    tmp = workdir / f".{BEST_WEIGHTS}.tmp.npz"
    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(weights)})
    os.replace(tmp, workdir / BEST_WEIGHTS)


def load_best_weights(workdir: Path) -> list[np.ndarray] | None:
    """Early stopping's best weights saved by ``save_best_weights``, or None."""
    path = workdir / BEST_WEIGHTS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        return [archive[f"w{i}"] for i in range(len(archive.files))]


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)
