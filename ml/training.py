"""Training: validation split, per-epoch progress, cooperative cancel, checkpoints and resume."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml import registry
from ml.datasets import Dataset, split
from tensorq.errors import InvalidRequest, JobCancelled, OutOfRange

CHECKPOINT = "checkpoint.keras"
CHECKPOINT_STATE = "checkpoint.json"
MODEL = "model.keras"


@dataclass
class TrainConfig:
    """What to train and how."""

    architecture: str
    params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 32
    validation_split: float = 0.2
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    early_stopping: dict[str, Any] | None = None
    seed: int | None = None
    test_split: float = 0.0


@dataclass
class TrainOutcome:
    """A trained model on disk and its figures."""

    model_path: Path
    metrics: dict[str, float]
    history: dict[str, list[float]]
    input_shape: list[int]
    num_classes: int
    epochs_run: int


def validate(config: TrainConfig) -> None:
    """Range-check the config; OutOfRange names the field."""
    checks = [
        ("epochs", 1 <= config.epochs <= 10_000),
        ("batch_size", 1 <= config.batch_size <= 65_536),
        ("validation_split", 0.0 <= config.validation_split < 0.9),
        ("test_split", 0.0 <= config.test_split < 0.9),
        ("learning_rate", 0.0 < config.learning_rate <= 10.0),
    ]
    for name, ok in checks:
        if not ok:
            raise OutOfRange(f"{name} is out of range", details={"field": name})


def _optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    if name not in optimizers:
        raise InvalidRequest(f"unknown optimizer '{name}'; known: {', '.join(optimizers)}")
    return optimizers[name](learning_rate=learning_rate)


class _Progress(keras.callbacks.Callback):
    """Reports each epoch, polls for a stop between batches, and checkpoints at each epoch's end."""

    def __init__(
        self,
        total: int,
        workdir: Path,
        history: dict[str, list[float]],
        on_epoch: Callable[[dict], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        super().__init__()
        self.total = total
        self.workdir = workdir
        self.history = history
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.stopped = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.stopped:
            return
        figures = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        for name, value in figures.items():
            self.history.setdefault(name, []).append(value)
        save_checkpoint(self.model, self.workdir, epoch + 1, self.history)
        if self.on_epoch is not None:
            self.on_epoch({"epoch": epoch + 1, "epochs": self.total, **figures})


def save_checkpoint(model: keras.Model, workdir: Path, epoch: int, history: dict[str, list[float]]) -> None:
    """Write the model (with optimizer state) and the epoch and history, each atomically."""
    tmp = workdir / f".{CHECKPOINT}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, workdir / CHECKPOINT)
    state_tmp = workdir / f".{CHECKPOINT_STATE}.tmp"
    state_tmp.write_text(json.dumps({"epoch": epoch, "history": history}))
    os.replace(state_tmp, workdir / CHECKPOINT_STATE)


def load_checkpoint(workdir: Path) -> tuple[keras.Model, int, dict[str, list[float]]] | None:
    """The last checkpoint's model, epoch and history, or None when there is none."""
    model_path, state_path = workdir / CHECKPOINT, workdir / CHECKPOINT_STATE
    if not (model_path.is_file() and state_path.is_file()):
        return None
    state = json.loads(state_path.read_text())
    model = keras.models.load_model(model_path, safe_mode=True, compile=True)
    return model, int(state["epoch"]), {k: list(v) for k, v in state["history"].items()}


def _labels(y: np.ndarray) -> int:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise InvalidRequest("labels must be non-negative integer class ids")
    return int(y.max()) + 1 if len(y) else 0


def train(
    config: TrainConfig,
    data: Dataset,
    workdir: Path,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train per ``config`` on ``data`` in ``workdir``, resuming from its checkpoint when one exists."""
    validate(config)
    num_classes = _labels(data.y)
    if num_classes < 2:
        raise InvalidRequest("training needs at least two classes")
    workdir.mkdir(parents=True, exist_ok=True)
    seed = config.seed if config.seed is not None else 0
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    test = None
    if config.test_split > 0:
        data, test = split(data, config.test_split, seed)
    val = None
    if config.validation_split > 0:
        data, val = split(data, config.validation_split, seed + 1)
    if len(data.x) == 0:
        raise InvalidRequest("no rows left to train on")

    resumed = load_checkpoint(workdir)
    if resumed is not None:
        model, initial_epoch, history = resumed
    else:
        model = registry.get(config.architecture)(tuple(data.x.shape[1:]), num_classes, config.params)
        model.get_layer("normalize").adapt(data.x)
        model.compile(
            optimizer=_optimizer(config.optimizer, config.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        initial_epoch, history = 0, {}
    progress = _Progress(config.epochs, workdir, history, on_epoch, should_stop)
    callbacks: list[keras.callbacks.Callback] = [progress]
    if config.early_stopping:
        monitor = config.early_stopping.get("monitor", "val_loss" if val is not None else "loss")
        callbacks.insert(
            0,
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=int(config.early_stopping.get("patience", 3)), restore_best_weights=True
            ),
        )
    if initial_epoch < config.epochs:
        model.fit(
            data.x,
            data.y,
            validation_data=(val.x, val.y) if val is not None else None,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            batch_size=config.batch_size,
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
        )
    if progress.stopped:
        raise JobCancelled("training stopped at a batch boundary")
    metrics = {name: values[-1] for name, values in history.items() if values}
    if test is not None:
        loss, accuracy = model.evaluate(test.x, test.y, batch_size=1024, verbose=0)
        metrics.update(test_loss=float(loss), test_accuracy=float(accuracy))
    model_path = workdir / MODEL
    model.save(model_path)
    return TrainOutcome(
        model_path=model_path,
        metrics=metrics,
        history=history,
        input_shape=list(data.x.shape[1:]),
        num_classes=num_classes,
        epochs_run=len(next(iter(history.values()), [])),
    )
