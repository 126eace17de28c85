"""Training of every task: held-out splits, per-epoch progress, cooperative cancel, checkpoints and resume."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
from pydantic import ValidationError

from ml import builders, tasks
from ml.checkpoint import CHECKPOINT, load_best_weights, load_checkpoint, save_best_weights, save_checkpoint
from ml.datasets import Dataset, split
from ml.gradient_registry import dropping_custom_gradients
from ml.specs import EarlyStopping, TrainOptions
from ml.table_stream import TableStream
from ml.tasks.base import model_input
from tensorq.core.errors import InvalidRequest, JobCancelled, OutOfRange, TensorQError

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
    notes: dict[str, Any] = field(default_factory=dict)  # more of the job's result (why an agent stopped)


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


def optimizer_of(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh optimizer named ``name`` (``ml.catalog.OPTIMIZERS``) with ``learning_rate``."""
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


@dataclass
class _Splits:
    """The rows to fit on, and the held-out validation and test rows (None when their split is 0)."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None


@dataclass
class _Start:
    """Where fitting starts: a fresh model at epoch 0, or the checkpoint's model, epoch and history."""

    model: keras.Model
    epoch: int
    history: dict[str, list[float]]
    stopping_state: dict[str, Any] | None
    from_checkpoint: bool

    def finished(self, epochs: int) -> bool:
        """Whether the checkpoint already ran every epoch or stopped early."""
        return self.epoch >= epochs or bool(self.stopping_state and self.stopping_state.get("stopped"))


def _splits(task: tasks.Task, data: Dataset, config: TrainOptions) -> _Splits:
    """Test rows first, then validation rows, both fixed by the seed (0 without one) so that a resumed
    job validates on the same rows."""
    seed = config.seed if config.seed is not None else 0
    test = val = None
    if config.test_split > 0:
        data, test = split(data, config.test_split, seed, stratified=task.stratified)
    if config.validation_split > 0:
        data, val = split(data, config.validation_split, seed + 1, stratified=task.stratified)
    return _Splits(data, val, test)


def _start(
    task: tasks.Task,
    config: TrainOptions,
    data: Dataset,
    num_classes: int,
    workdir: Path,
    build: Callable[[str, dict[str, Any]], keras.Model] | None = None,
) -> _Start:
    """Resume from the folder's checkpoint when its model fits this data, else build (with ``build`` when given,
    else the task's) and compile a new one."""
    resumed = load_checkpoint(workdir)
    if resumed is not None and task.fits(resumed.model, data, num_classes):
        return _Start(resumed.model, resumed.epoch, resumed.history, resumed.early_stopping, from_checkpoint=True)
    if build is not None:
        model = build(config.architecture, config.params)
    else:
        model = task.build(config.architecture, config.params, data, num_classes)
    task.compile(model, optimizer_of(config.optimizer, config.learning_rate))
    return _Start(model, 0, {}, None, from_checkpoint=False)


def _arrays(task: tasks.Task, config: TrainOptions, splits: _Splits) -> dict[str, Any]:
    """``fit``'s data arguments for rows held in memory: the task's inputs and targets, shuffled per epoch."""
    val = splits.val
    return {
        "x": model_input(splits.train.x),
        "y": task.targets(splits.train),
        "validation_data": (model_input(val.x), task.targets(val)) if val is not None else None,
        "batch_size": config.batch_size,
        "shuffle": True,
    }


def _fit(config: TrainOptions, data: dict[str, Any], start: _Start, callbacks: list, options: dict[str, Any]) -> None:
    """Keras ``fit`` from the start epoch to ``config.epochs`` on ``data`` (``fit``'s data arguments), with the
    task's fit options; the graphs it traced are freed with the model (``ml/gradient_registry.py``)."""
    # The traced train step's custom gradient would stay in TensorFlow's registry, and the graph with it.
    with dropping_custom_gradients():
        start.model.fit(
            **data,
            epochs=config.epochs,
            initial_epoch=start.epoch,
            callbacks=callbacks,
            verbose=0,
            **options,
        )


def _save(model: keras.Model, workdir: Path, checkpoint_is_final: bool) -> Path:
    """Write ``model.keras`` atomically. When the last checkpoint is this very model, ``model.keras`` is a hard
    link to it (no second save, and one file's bytes on disk rather than two identical files; the checkpoint
    stays for a resume until the job is recorded, and a later checkpoint replaces its name, not the bytes);
    a copy where the store has no hard links."""
    model_path = workdir / MODEL
    tmp = workdir / f".{MODEL}.tmp.keras"
    tmp.unlink(missing_ok=True)
    if checkpoint_is_final:
        try:
            os.link(workdir / CHECKPOINT, tmp)
        except OSError:
            shutil.copyfile(workdir / CHECKPOINT, tmp)
    else:
        model.save(tmp)
    tmp.replace(model_path)
    return model_path


def train(
    config: TrainOptions,
    data: Dataset | TableStream,
    workdir: Path,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train per ``config`` on ``data`` in ``workdir``, resuming from its checkpoint when one exists; ``data`` is
    rows in memory, or a table to stream in chunks (``ml.streaming``: a classifier only).

    A full garbage collection follows: a trained Keras model sits in reference cycles that hold its traced
    graphs, its data pipeline and a TensorFlow thread pool (about 15 MiB and two threads for a tiny MLP), and a
    long-lived worker process otherwise keeps several trainings' worth until Python's rare full collection."""
    try:
        return _train(config, data, workdir, on_epoch, should_stop)
    finally:
        gc.collect()


@dataclass
class _Prepared:
    """What fitting needs, whichever way the rows are held: the rows' shape (a dataset, empty when streamed),
    the classes, ``fit``'s data arguments and options, how to build a model, and the test figures."""

    shape: Dataset
    num_classes: int
    data: dict[str, Any]
    options: dict[str, Any]
    build: Callable[[str, dict[str, Any]], keras.Model] | None
    test_metrics: Callable[[keras.Model], dict[str, float]] | None


def _in_memory(task: tasks.Task, config: TrainOptions, data: Dataset) -> _Prepared:
    """Rows held in memory: checked, split (``_splits``) and fed as arrays."""
    num_classes = task.check(data)
    splits = _splits(task, task.prepare(data), config)
    options = task.fit_options(config.class_weight, splits.train, num_classes)  # refused before any build
    test = splits.test
    scored = None if test is None else lambda model: task.test_metrics(model, splits.train, test)
    return _Prepared(splits.train, num_classes, _arrays(task, config, splits), options, None, scored)


def _streamed(task: tasks.Task, config: TrainOptions, stream: TableStream) -> _Prepared:
    """A table streamed in chunks (``ml.streaming``): scanned once, then read per epoch through ``tf.data``."""
    from ml.streaming import TEST, TRAIN, VALIDATION, plan

    seed = config.seed if config.seed is not None else 0
    table = plan(stream, task.name, seed, config.test_split, config.validation_split)
    options = table.fit_options(config.class_weight)
    val = table.dataset(VALIDATION, config.batch_size, shuffle=False) if table.rows(VALIDATION) else None
    data = {"x": table.dataset(TRAIN, config.batch_size, shuffle=True), "validation_data": val, "shuffle": False}

    def scored(model: keras.Model) -> dict[str, float]:
        values = model.evaluate(table.dataset(TEST, 1024, shuffle=False), verbose=0, return_dict=True)
        return {f"test_{name}": float(value) for name, value in values.items()}

    return _Prepared(table.shape, table.num_classes, data, options, table.build, scored if table.rows(TEST) else None)


def _train(
    config: TrainOptions,
    data: Dataset | TableStream,
    workdir: Path,
    on_epoch: Callable[[dict], None] | None,
    should_stop: Callable[[], bool] | None,
) -> TrainOutcome:
    """``train`` without the collection."""
    config = checked(config)
    if config.task == "reinforce":
        raise InvalidRequest("a policy trains in an environment, not on data (ml.reinforce.train_agent)")
    task = tasks.for_architecture(config.architecture)
    builders.get(config.architecture)  # an unknown architecture is refused before any work
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    prepared = _streamed(task, config, data) if isinstance(data, TableStream) else _in_memory(task, config, data)
    num_classes = prepared.num_classes
    start = _start(task, config, prepared.shape, num_classes, workdir, prepared.build)
    model, history = start.model, start.history

    early_stopping = None
    if config.early_stopping is not None:
        has_validation = prepared.data.get("validation_data") is not None
        args = _early_stopping_args(config.early_stopping, has_validation)
        early_stopping = _EarlyStopping(workdir, start.stopping_state, **args)
    progress = _Progress(config.epochs, workdir, history, on_epoch, should_stop, early_stopping)
    if start.from_checkpoint:
        progress.checkpointed_epoch = start.epoch
    if not start.finished(config.epochs):
        callbacks = [c for c in (early_stopping, progress) if c is not None]
        _fit(config, prepared.data, start, callbacks, prepared.options)
    elif early_stopping is not None:  # stopped before the final save: keep the best weights
        best_weights = load_best_weights(workdir)
        if best_weights is not None:
            model.set_weights(best_weights)

    metrics = {name: values[-1] for name, values in history.items() if values}
    if prepared.test_metrics is not None:
        metrics.update(prepared.test_metrics(model))
    epochs_run = len(history.get("loss", []))
    checkpoint_is_final = early_stopping is None and progress.checkpointed_epoch == epochs_run
    return TrainOutcome(
        model_path=_save(model, workdir, checkpoint_is_final),
        metrics=metrics,
        history=history,
        input_shape=list(prepared.shape.x.shape[1:]),
        num_classes=num_classes,
        epochs_run=epochs_run,
        signature=task.signature(model, prepared.shape, num_classes),
    )
