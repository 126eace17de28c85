"""Classifiers (mlp, cnn, rnn): class probabilities, cross-entropy, accuracy, optional class weights."""

from __future__ import annotations

import numbers
from typing import Any

import keras
import numpy as np

from ml import builders
from ml.datasets import Dataset
from ml.tasks.base import Task, adapt_preprocessing, table_model
from tensorq.core.errors import InvalidRequest, OutOfRange


def class_weights(spec: str | dict[str, Any], y: np.ndarray, num_classes: int) -> dict[int, float]:
    """Per-class loss weights: "balanced" (``n / (k * count)``) or a mapping of class id to weight (default 1)."""
    if spec == "balanced":
        counts = np.bincount(y, minlength=num_classes).astype(np.float64)
        present = counts > 0
        weights = np.ones(num_classes)
        weights[present] = len(y) / (present.sum() * counts[present])
        return {c: float(w) for c, w in enumerate(weights)}
    if not isinstance(spec, dict):
        raise InvalidRequest('class_weight must be "balanced" or an object of class id to weight')
    weights = {c: 1.0 for c in range(num_classes)}
    for key, value in spec.items():
        try:
            cls = int(key)
        except (TypeError, ValueError):
            raise InvalidRequest(f"class_weight key '{key}' is not a class id") from None
        if not 0 <= cls < num_classes:
            message = f"class_weight key {cls} is not a class below {num_classes}"
            raise OutOfRange(message, details={"field": "class_weight"})
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1e6:
            raise OutOfRange("class weights must be numbers in (0, 1e6]", details={"field": "class_weight"})
        weights[cls] = float(value)
    return weights


class Classify(Task):
    """Softmax classifiers trained with sparse categorical cross-entropy."""

    name = "classify"
    stratified = True

    def check(self, data: Dataset) -> int:
        """Labels must be class ids, at least two classes; numeric features must be finite."""
        if data.kind == "interactions":
            raise InvalidRequest("interactions (user, item, rating) train the recommender, not a classifier")
        if len(data.x) != len(data.y):
            raise InvalidRequest("x and y have different lengths", details={"x": len(data.x), "y": len(data.y)})
        y = np.asarray(data.y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise InvalidRequest("labels must be non-negative integer class ids, one per row")
        num_classes = int(y.max()) + 1 if len(y) else 0
        if num_classes < 2:
            raise InvalidRequest("training needs at least two classes")
        if data.x.dtype.kind in "biuf" and not np.all(np.isfinite(data.x)):
            raise InvalidRequest("x contains NaN or infinite values")
        return num_classes

    def build(self, architecture: str, params: dict[str, Any], train: Dataset, num_classes: int) -> keras.Model:
        """The registered builder's model, preprocessing adapted (behind the table encoder for a table's cells)."""
        if train.columns is not None:
            return table_model(builders.get(architecture), params, train, num_classes)
        model = builders.get(architecture)(tuple(train.x.shape[1:]), num_classes, params)
        adapt_preprocessing(model, train.x)
        return model

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        """Cross-entropy on class ids, with accuracy."""
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def fits(self, model: keras.Model, train: Dataset, num_classes: int) -> bool:
        """Same input shape and number of classes."""
        return super().fits(model, train, num_classes) and model.output_shape[-1] == num_classes

    def fit_options(self, class_weight: str | dict[str, Any] | None, train: Dataset, num_classes: int) -> dict:
        """``class_weight`` for ``fit`` when asked for."""
        if class_weight is None:
            return {}
        return {"class_weight": class_weights(class_weight, np.asarray(train.y), num_classes)}

    def test_metrics(self, model: keras.Model, train: Dataset, test: Dataset) -> dict[str, float]:
        """``test_loss`` and ``test_accuracy``."""
        return self.evaluate(model, test)

    def signature(self, model: keras.Model, data: Dataset, num_classes: int) -> dict[str, Any]:
        """Input shape (None for text: one string per row), classes and their names, feature names."""
        text = data.kind == "text"
        signature = {
            "task": self.name,
            "input_shape": None if text else list(data.x.shape[1:]),
            "input_dtype": "string" if text or data.columns is not None else "float32",
            "num_classes": num_classes,
            "kind": data.kind,
            "feature_names": data.feature_names,
            "class_names": data.class_names,
        }
        if data.sample_rate is not None:
            signature["sample_rate"] = data.sample_rate
        if data.columns is not None:
            from ml.encoding import encoder_of, report

            signature["columns"] = report(encoder_of(model), data.columns)
        return signature
