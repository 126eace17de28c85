"""The interface every task implements, and helpers they share."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml.catalog import TASK_METRICS
from ml.datasets import Dataset
from tensorq.core.errors import InvalidRequest


def model_input(x: np.ndarray) -> Any:
    """``x`` as Keras takes it: float32 arrays as they are, strings as a string tensor."""
    if x.dtype.kind in "OSU":
        return tf.constant(np.asarray(x, dtype=object).astype(str))
    return np.asarray(x, dtype=np.float32)


def adapt_preprocessing(model: keras.Model, x: np.ndarray) -> None:
    """Adapt the model's unadapted ``Normalization`` and ``TextVectorization`` layers to the training rows."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
            layer.adapt(x)
        elif isinstance(layer, keras.layers.TextVectorization) and layer.vocabulary_size() <= 2:
            layer.adapt(model_input(x))


def table_model(builder: Any, params: dict[str, Any], train: Dataset, num_classes: int) -> keras.Model:
    """A model for a table's cells (``train.columns`` set): the ``TabularEncoder`` fitted to the training rows,
    then ``builder``'s model on the encoded numbers, its preprocessing adapted to them."""
    from ml.encoding import fit_encoder, floor_variance, wrap

    encoder = fit_encoder(list(train.columns or []), train.x)
    encoded = np.asarray(encoder(model_input(train.x)), dtype=np.float32)
    head = builder((encoder.width,), num_classes, params)
    adapt_preprocessing(head, encoded)
    floor_variance(head)
    return wrap(encoder, head)


def check_numeric(data: Dataset, what: str) -> None:
    """Refuse non-numeric or non-finite features."""
    if data.kind not in ("tabular", "image") or data.x.dtype.kind not in "biuf":
        raise InvalidRequest(f"{what} needs numeric tabular or image data, not {data.kind}")
    if not np.all(np.isfinite(data.x)):
        raise InvalidRequest("x contains NaN or infinite values")


class Task:
    """How one kind of model is built, fitted and scored; subclasses fill in each step."""

    name = "task"
    stratified = False  # whether held-out splits keep the class proportions

    @property
    def metrics(self) -> tuple[str, ...]:
        """The figures logged per epoch (``val_`` ones too when there is validation data)."""
        return TASK_METRICS[self.name]

    def check(self, data: Dataset) -> int:
        """Validate ``data`` for this task; the number of classes (0 when there are none)."""
        raise NotImplementedError

    def prepare(self, data: Dataset) -> Dataset:
        """``data`` with ``x`` in the dtype the model takes."""
        dtype = np.float32 if data.x.dtype.kind in "biuf" else object
        return replace(data, x=np.asarray(data.x, dtype=dtype), y=np.asarray(data.y))

    def build(self, architecture: str, params: dict[str, Any], train: Dataset, num_classes: int) -> keras.Model:
        """A fresh model, its preprocessing adapted to ``train`` (not compiled)."""
        raise NotImplementedError

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        """Compile with the task's loss and metrics."""
        raise NotImplementedError

    def fits(self, model: keras.Model, train: Dataset, num_classes: int) -> bool:
        """Whether a checkpointed model suits this data (else training starts afresh)."""
        return tuple(model.input_shape[1:]) == tuple(train.x.shape[1:])

    def targets(self, data: Dataset) -> Any:
        """What ``fit`` gets as ``y``."""
        return data.y

    def fit_options(self, class_weight: str | dict[str, Any] | None, train: Dataset, num_classes: int) -> dict:
        """Extra arguments of ``fit`` (class weights); refuses options the task does not take."""
        if class_weight is not None:
            raise InvalidRequest(f"class_weight applies to classifiers, not to the {self.name} task")
        return {}

    def test_metrics(self, model: keras.Model, train: Dataset, test: Dataset) -> dict[str, float]:
        """Figures on the held-out test rows, each named ``test_*``."""
        raise NotImplementedError

    def signature(self, model: keras.Model, data: Dataset, num_classes: int) -> dict[str, Any]:
        """What clients and the API need to know to call the model."""
        raise NotImplementedError

    def evaluate(self, model: keras.Model, data: Dataset) -> dict[str, float]:
        """``model.evaluate`` on ``data`` as named figures, each prefixed ``test_``."""
        values = model.evaluate(model_input(data.x), self.targets(data), batch_size=1024, verbose=0, return_dict=True)
        return {f"test_{name}": float(value) for name, value in values.items()}
