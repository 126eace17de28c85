"""Training: held-out splits, per-epoch progress, cooperative cancel, checkpoints and resume."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml import registry
from ml.catalog import OPTIMIZERS
from ml.checkpoint import load_best_weights, load_checkpoint, save_best_weights, save_checkpoint
from ml.datasets import Dataset, split
from tensorq.errors import InvalidRequest, JobCancelled, OutOfRange

MODEL = "model.keras"
MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")
EARLY_STOPPING_KEYS = ("patience", "monitor", "min_delta")


@dataclass
class TrainConfig:
    """What to train and how; ``early_stopping`` is ``{"patience": int, "monitor": str}`` or None."""

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


def _number(value: Any, integer: bool) -> bool:
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool)


def validate(config: TrainConfig) -> None:
    """Range-check the config; OutOfRange names the field."""
    checks = [
        ("epochs", True, lambda v: 1 <= v <= 10_000, "1..10000"),
        ("batch_size", True, lambda v: 1 <= v <= 65_536, "1..65536"),
        ("validation_split", False, lambda v: 0.0 <= v < 0.9, "[0, 0.9)"),
        ("test_split", False, lambda v: 0.0 <= v < 0.9, "[0, 0.9)"),
        ("learning_rate", False, lambda v: 0.0 < v <= 10.0, "(0, 10]"),
    ]
    for name, integer, ok, allowed in checks:
        value = getattr(config, name)
        if not (_number(value, integer) and ok(value)):
            raise OutOfRange(f"{name} must be in {allowed}", details={"field": name, "allowed": allowed})
    if config.validation_split + config.test_split >= 0.9:
        raise OutOfRange(
            "validation_split + test_split must leave at least 10% of the rows for training",
            details={"field": "validation_split"},
        )
    if config.seed is not None and not _number(config.seed, True):
        raise OutOfRange("seed must be an integer", details={"field": "seed"})
    if config.early_stopping is not None:
        _early_stopping_args(config.early_stopping, config.validation_split > 0)
    if config.optimizer not in OPTIMIZERS:
        known = list(OPTIMIZERS)
        message = f"unknown optimizer '{config.optimizer}'; known: {', '.join(known)}"
        raise InvalidRequest(message, details={"known": known})


def _optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return optimizers[name](learning_rate=learning_rate)


def _early_stopping_args(spec: dict[str, Any], has_validation: bool) -> dict[str, Any]:
    """EarlyStopping's arguments from the spec; a val_ monitor without validation data watches the training figure."""
    if not isinstance(spec, dict):
        raise InvalidRequest("early_stopping must be an object")
    unknown = sorted(set(spec) - set(EARLY_STOPPING_KEYS))
    if unknown:
        raise InvalidRequest(
            f"unknown early_stopping keys {unknown}; allowed: {list(EARLY_STOPPING_KEYS)}",
            details={"allowed": list(EARLY_STOPPING_KEYS)},
        )
    monitor = spec.get("monitor") or ("val_loss" if has_validation else "loss")
    if monitor not in MONITORS:
        raise OutOfRange(
            f"early_stopping.monitor must be one of {', '.join(MONITORS)}",
            details={"field": "early_stopping.monitor", "allowed": list(MONITORS)},
        )
    if not has_validation:
        monitor = monitor.removeprefix("val_")
    patience = spec.get("patience", 3)
    if not (_number(patience, True) and 0 <= patience <= 10_000):
        raise OutOfRange("early_stopping.patience must be in 0..10000", details={"field": "early_stopping.patience"})
    min_delta = spec.get("min_delta", 0.0)
    if not (_number(min_delta, False) and min_delta >= 0):
        raise OutOfRange("early_stopping.min_delta must be >= 0", details={"field": "early_stopping.min_delta"})
    return {"monitor": monitor, "patience": int(patience), "min_delta": float(min_delta)}


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras EarlyStopping (best weights restored) whose patience and best weights survive a resume."""

    def __init__(self, workdir: Path, resume: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(restore_best_weights=True, **kwargs)
        self.workdir = workdir
        self.resume = resume

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self.resume and self.resume.get("best") is not None:
            self.wait = int(self.resume["wait"])
            self.best = float(self.resume["best"])
            self.best_epoch = int(self.resume["best_epoch"])
            self.best_weights = load_best_weights(self.workdir)

    def state(self, epoch: int) -> dict[str, Any]:
        """What to checkpoint after ``epoch`` (0-based); writes the best weights when they just changed."""
        if self.best_epoch == epoch and self.best_weights is not None:
            save_best_weights(self.best_weights, self.workdir)
        best = None if self.best is None else float(self.best)
        stopped = bool(self.model.stop_training)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch), "stopped": stopped}


class _Progress(keras.callbacks.Callback):
    """Polls for a stop after each batch, and at each epoch's end records, checkpoints and reports."""

    def __init__(
        self,
        total: int,
        workdir: Path,
        history: dict[str, list[float]],
        on_epoch: Callable[[dict], None] | None,
        should_stop: Callable[[], bool] | None,
        early_stopping: _EarlyStopping | None,
    ) -> None:
        super().__init__()
        self.total = total
        self.workdir = workdir
        self.history = history
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.early_stopping = early_stopping

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.should_stop is not None and self.should_stop():
            raise JobCancelled("cancelled")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        figures = {k: float(v) for k, v in (logs or {}).items() if k in MONITORS}
        for name, value in figures.items():
            self.history.setdefault(name, []).append(value)
        stopping = self.early_stopping.state(epoch) if self.early_stopping is not None else None
        save_checkpoint(self.model, self.workdir, epoch + 1, self.history, stopping)
        if self.on_epoch is not None:
            self.on_epoch({"epoch": epoch + 1, "epochs": self.total, **figures})


def _num_classes(y: np.ndarray) -> int:
    """The number of classes in integer labels ``y``; anything but non-negative class ids is a 400."""
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise InvalidRequest("labels must be non-negative integer class ids, one per row")
    return int(y.max()) + 1 if len(y) else 0


def _check_data(data: Dataset) -> int:
    """Validate ``data`` for training and return its number of classes."""
    if len(data.x) != len(data.y):
        raise InvalidRequest("x and y have different lengths", details={"x": len(data.x), "y": len(data.y)})
    num_classes = _num_classes(np.asarray(data.y))
    if num_classes < 2:
        raise InvalidRequest("training needs at least two classes")
    if not np.all(np.isfinite(data.x)):
        raise InvalidRequest("x contains NaN or infinite values")
    return num_classes


def _build(config: TrainConfig, train_x: np.ndarray, num_classes: int) -> keras.Model:
    """A fresh compiled model whose Normalization layers are adapted to the training rows."""
    model = registry.get(config.architecture)(tuple(train_x.shape[1:]), num_classes, config.params)
    for layer in model.layers:  # builders put their Normalization on the raw input, statistics unset
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
            layer.adapt(train_x)
    model.compile(
        optimizer=_optimizer(config.optimizer, config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _fits(model: keras.Model, train_x: np.ndarray, num_classes: int) -> bool:
    """Whether a checkpointed model takes these rows and predicts this many classes."""
    return tuple(model.input_shape[1:]) == train_x.shape[1:] and model.output_shape[-1] == num_classes


def train(
    config: TrainConfig,
    data: Dataset,
    workdir: Path,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train per ``config`` on ``data`` in ``workdir``, resuming from its checkpoint when one exists."""
    validate(config)
    num_classes = _check_data(data)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    # The splits are fixed by the seed (0 without one) so a resumed job validates on the same rows.
    split_seed = config.seed if config.seed is not None else 0
    data = Dataset(np.asarray(data.x, dtype=np.float32), np.asarray(data.y), data.kind)
    test = val = None
    if config.test_split > 0:
        data, test = split(data, config.test_split, split_seed)
    if config.validation_split > 0:
        data, val = split(data, config.validation_split, split_seed + 1)

    resumed = load_checkpoint(workdir)
    if resumed is not None and _fits(resumed.model, data.x, num_classes):
        model, initial_epoch, history = resumed.model, resumed.epoch, resumed.history
        stopping_state = resumed.early_stopping
    else:
        model, initial_epoch, history, stopping_state = _build(config, data.x, num_classes), 0, {}, None
    early_stopping = None
    if config.early_stopping is not None:
        args = _early_stopping_args(config.early_stopping, val is not None)
        early_stopping = _EarlyStopping(workdir, stopping_state, **args)
    progress = _Progress(config.epochs, workdir, history, on_epoch, should_stop, early_stopping)
    callbacks = [c for c in (early_stopping, progress) if c is not None]
    finished = initial_epoch >= config.epochs or bool(stopping_state and stopping_state.get("stopped"))
    if finished and early_stopping is not None:  # stopped before the final save: keep the best weights
        best_weights = load_best_weights(workdir)
        if best_weights is not None:
            model.set_weights(best_weights)
    if not finished:
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
    metrics = {name: values[-1] for name, values in history.items() if values}
    if test is not None:
        loss, accuracy = model.evaluate(test.x, test.y, batch_size=1024, verbose=0)
        metrics.update(test_loss=float(loss), test_accuracy=float(accuracy))
    model_path = workdir / MODEL
    tmp = workdir / f".{MODEL}.tmp.keras"
    model.save(tmp)
    tmp.replace(model_path)
    return TrainOutcome(
        model_path=model_path,
        metrics=metrics,
        history=history,
        input_shape=list(data.x.shape[1:]),
        num_classes=num_classes,
        epochs_run=len(history.get("loss", [])),
    )
