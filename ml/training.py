"""Training of every task: held-out splits, per-epoch progress, cooperative cancel, checkpoints and resume."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
from pydantic import ValidationError

from ml import registry, tasks
from ml.checkpoint import CHECKPOINT, load_best_weights, load_checkpoint, save_best_weights, save_checkpoint
from ml.datasets import Dataset, split
from ml.specs import EarlyStopping, TrainOptions
from ml.tasks.base import model_input
from tensorq.errors import InvalidRequest, JobCancelled, OutOfRange, TensorQError

MODEL = "model.keras"
# Validation errors that mean the config cannot run at all (InvalidRequest); any other is an OutOfRange.
SHAPE_ERRORS = frozenset({"unknown_name", "extra_forbidden", "missing", "model_type", "dict_type", "union_tag_invalid"})


class TrainConfig(TrainOptions):
    """What to train and how: ``TrainOptions`` (ranges and defaults in ``ml.specs``), built positionally.

    A value the spec refuses is an OutOfRange (or an InvalidRequest when it cannot run) naming the field.
    """

    def __init__(self, architecture: str, params: dict[str, Any] | None = None, **options: Any) -> None:
        try:
            super().__init__(architecture=architecture, params={} if params is None else params, **options)
        except ValidationError as exc:
            raise config_error(exc) from None


@dataclass
class TrainOutcome:
    """A trained model on disk, its figures, and its signature (what callers need to know to use it)."""

    model_path: Path
    metrics: dict[str, float]
    history: dict[str, list[float]]
    input_shape: list[int]
    num_classes: int
    epochs_run: int
    signature: dict[str, Any] = field(default_factory=dict)


def config_error(exc: ValidationError) -> TensorQError:
    """The coded error of a refused config: its first failed check, with the field in ``details``."""
    first = exc.errors(include_url=False, include_input=False)[0]
    name = ".".join(str(p) for p in first["loc"])
    kind = InvalidRequest if first["type"] in SHAPE_ERRORS else OutOfRange
    return kind(f"{name}: {first['msg']}" if name else first["msg"], details={"field": name})


def checked(config: TrainOptions) -> TrainOptions:
    """``config`` checked again against its spec (a field may have been set after it was built)."""
    try:
        return type(config).model_validate(dict(config))
    except ValidationError as exc:
        raise config_error(exc) from None


def _optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    return optimizers[name](learning_rate=learning_rate)


def _early_stopping_args(spec: EarlyStopping, has_validation: bool) -> dict[str, Any]:
    """EarlyStopping's arguments; a val_ monitor without validation data watches the training figure."""
    monitor = spec.monitor if has_validation else spec.monitor.removeprefix("val_")
    mode = "max" if monitor.endswith("accuracy") else "min"
    return {"monitor": monitor, "patience": spec.patience, "min_delta": spec.min_delta, "mode": mode}


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
        self.checkpointed_epoch: int | None = None  # the epoch whose model checkpoint.keras holds

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.should_stop is not None and self.should_stop():
            raise JobCancelled("cancelled")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        figures = {k: float(v) for k, v in (logs or {}).items()}
        for name, value in figures.items():
            self.history.setdefault(name, []).append(value)
        stopping = self.early_stopping.state(epoch) if self.early_stopping is not None else None
        save_checkpoint(self.model, self.workdir, epoch + 1, self.history, stopping)
        self.checkpointed_epoch = epoch + 1
        if self.on_epoch is not None:
            self.on_epoch({"epoch": epoch + 1, "epochs": self.total, **figures})


def train(
    config: TrainOptions,
    data: Dataset,
    workdir: Path,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train per ``config`` on ``data`` in ``workdir``, resuming from its checkpoint when one exists."""
    config = checked(config)
    task = tasks.for_architecture(config.architecture)
    registry.get(config.architecture)  # an unknown architecture is refused before any work
    num_classes = task.check(data)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    # The splits are fixed by the seed (0 without one) so a resumed job validates on the same rows.
    split_seed = config.seed if config.seed is not None else 0
    full = data
    data = task.prepare(data)
    test = val = None
    if config.test_split > 0:
        data, test = split(data, config.test_split, split_seed, stratified=task.stratified)
    if config.validation_split > 0:
        data, val = split(data, config.validation_split, split_seed + 1, stratified=task.stratified)
    fit_options = task.fit_options(config.class_weight, data, num_classes)

    resumed = load_checkpoint(workdir)
    if resumed is not None and task.fits(resumed.model, data, num_classes):
        model, initial_epoch, history = resumed.model, resumed.epoch, resumed.history
        stopping_state = resumed.early_stopping
    else:
        model = task.build(config.architecture, config.params, data, num_classes)
        task.compile(model, _optimizer(config.optimizer, config.learning_rate))
        initial_epoch, history, stopping_state = 0, {}, None
    early_stopping = None
    if config.early_stopping is not None:
        args = _early_stopping_args(config.early_stopping, val is not None)
        early_stopping = _EarlyStopping(workdir, stopping_state, **args)
    progress = _Progress(config.epochs, workdir, history, on_epoch, should_stop, early_stopping)
    if resumed is not None and model is resumed.model:
        progress.checkpointed_epoch = initial_epoch
    callbacks = [c for c in (early_stopping, progress) if c is not None]
    finished = initial_epoch >= config.epochs or bool(stopping_state and stopping_state.get("stopped"))
    if finished and early_stopping is not None:  # stopped before the final save: keep the best weights
        best_weights = load_best_weights(workdir)
        if best_weights is not None:
            model.set_weights(best_weights)
    if not finished:
        model.fit(
            model_input(data.x),
            task.targets(data),
            validation_data=(model_input(val.x), task.targets(val)) if val is not None else None,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            batch_size=config.batch_size,
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
            **fit_options,
        )
    metrics = {name: values[-1] for name, values in history.items() if values}
    if test is not None:
        metrics.update(task.test_metrics(model, data, test))
    model_path = workdir / MODEL
    tmp = workdir / f".{MODEL}.tmp.keras"
    epochs_run = len(history.get("loss", []))
    if early_stopping is None and progress.checkpointed_epoch == epochs_run:
        shutil.copyfile(workdir / CHECKPOINT, tmp)  # the last checkpoint is this very model: no second save
    else:
        model.save(tmp)
    tmp.replace(model_path)
    return TrainOutcome(
        model_path=model_path,
        metrics=metrics,
        history=history,
        input_shape=list(data.x.shape[1:]),
        num_classes=num_classes,
        epochs_run=epochs_run,
        signature=task.signature(model, full, num_classes),
    )
