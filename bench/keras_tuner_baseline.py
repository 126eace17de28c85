"""The tune figure's baseline: Keras Tuner's ``RandomSearch`` in-process, at the same trial budget, on the same
data and validation rows, over the same search space, building the same model as a TensorQ trial does (the
architecture's own builder, compiled by its task with the same optimizer)."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class SearchOutcome:
    """The best trial's validation loss at its last epoch (what a TensorQ trial reports) and at its best epoch
    (what Keras Tuner itself ranks by), over every trial."""

    best_last_epoch: float
    best_any_epoch: float
    trials: int


def random_search(
    dataset: str, space: dict[str, dict[str, Any]], *, trials: int, epochs: int, seed: int
) -> SearchOutcome:
    """Run ``trials`` trials of Keras Tuner's RandomSearch over ``space`` (TensorQ's search-space form) on the
    builtin ``dataset`` with an MLP; validation rows as a train spec with ``seed`` and the default split."""
    import keras
    import keras_tuner

    from ml import tasks
    from ml.datasets import load_builtin, split
    from ml.specs import MlpParams, TrainSpec
    from ml.tasks.base import model_input
    from ml.training import optimizer_of

    base = TrainSpec.model_validate({"architecture": "mlp", "dataset": dataset, "epochs": epochs, "seed": seed})
    task = tasks.for_architecture("mlp")
    raw = load_builtin(dataset.removeprefix("builtin:"))
    num_classes = task.check(raw)
    data = task.prepare(raw)
    train, val = split(data, base.validation_split, seed + 1, stratified=task.stratified)
    last: list[float] = []
    best: list[float] = []

    class HyperMlp(keras_tuner.HyperModel):
        def build(self, hp: Any) -> keras.Model:
            point = {name: _draw(hp, name, param) for name, param in space.items()}
            params = MlpParams(**{k.removeprefix("params."): v for k, v in point.items() if k.startswith("params.")})
            model = task.build("mlp", params.model_dump(), train, num_classes)
            task.compile(model, optimizer_of(base.optimizer, float(point.get("learning_rate", base.learning_rate))))
            return model

        def fit(self, hp: Any, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
            batch_size = int(hp.get("batch_size")) if "batch_size" in space else base.batch_size
            history = model.fit(*args, batch_size=batch_size, **kwargs)
            losses = history.history["val_loss"]
            last.append(float(losses[-1]))
            best.append(float(min(losses)))
            return history

    with tempfile.TemporaryDirectory(prefix="tensorq-kt-") as folder:
        keras.utils.set_random_seed(seed)
        tuner = keras_tuner.RandomSearch(
            HyperMlp(),
            objective="val_loss",
            max_trials=trials,
            seed=seed,
            directory=folder,
            project_name="bench",
            overwrite=True,
        )
        tuner.search(
            model_input(train.x),
            task.targets(train),
            validation_data=(model_input(val.x), task.targets(val)),
            epochs=epochs,
            shuffle=True,
            verbose=0,
        )
    finite = [v for v in last if math.isfinite(v)]
    return SearchOutcome(
        best_last_epoch=float(np.min(finite)) if finite else math.nan,
        best_any_epoch=float(np.min([v for v in best if math.isfinite(v)] or [math.nan])),
        trials=len(last),
    )


def _draw(hp: Any, name: str, param: dict[str, Any]) -> Any:
    """One dimension of a TensorQ search space as Keras Tuner's hyperparameter of the same range."""
    if param["type"] == "categorical":
        return hp.Choice(name, list(param["choices"]))
    sampling = "log" if param.get("log") else "linear"
    if param["type"] == "int":
        return hp.Int(name, int(param["low"]), int(param["high"]), sampling=sampling)
    return hp.Float(name, float(param["low"]), float(param["high"]), sampling=sampling)
