"""Recommenders: ratings of (user, item) pairs by matrix factorisation, scored by RMSE against the global mean."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ml import builders
from ml.datasets import Dataset
from ml.tasks.base import Task, model_input
from tensorq.core.errors import InvalidRequest


def vocabularies(x: np.ndarray) -> tuple[list[str], list[str]]:
    """The sorted distinct user ids and item ids of (N, 2) pairs."""
    return sorted({str(u) for u in x[:, 0]}), sorted({str(i) for i in x[:, 1]})


class Recommend(Task):
    """Matrix factorisation trained on squared error, reported as RMSE."""

    name = "recommend"

    def check(self, data: Dataset) -> int:
        """An interactions dataset (user, item, rating) with finite ratings."""
        if data.kind != "interactions":
            raise InvalidRequest(
                "the recommender trains on an interactions CSV (user, item, rating columns)",
                details={"kind": data.kind},
            )
        if len(data.x) < 2 or not np.all(np.isfinite(data.y)):
            raise InvalidRequest("the recommender needs at least two ratings, all finite")
        return 0

    def prepare(self, data: Dataset) -> Dataset:
        """Ids as strings, ratings as float32."""
        x = np.asarray(data.x, dtype=object).astype(str).astype(object)
        return Dataset(x, np.asarray(data.y, dtype=np.float32), data.kind, feature_names=data.feature_names)

    def build(self, architecture: str, params: dict[str, Any], train: Dataset, num_classes: int) -> keras.Model:
        """A model over the training rows' users and items, its global bias starting at their mean rating."""
        users, items = vocabularies(train.x)
        return builders.get(architecture)(users, items, float(np.mean(train.y)), params)

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        """Mean squared error, with RMSE."""
        model.compile(optimizer=optimizer, loss="mse", metrics=[keras.metrics.RootMeanSquaredError(name="rmse")])

    def fits(self, model: keras.Model, train: Dataset, num_classes: int) -> bool:
        """The same users and items."""
        layer = model.get_layer("mf")
        return (layer.users, layer.items) == vocabularies(train.x)

    def test_metrics(self, model: keras.Model, train: Dataset, test: Dataset) -> dict[str, float]:
        """``test_loss``, ``test_rmse`` and ``test_baseline_rmse`` (always answering the training mean)."""
        metrics = self.evaluate(model, test)
        predicted = np.asarray(model(model_input(test.x), training=False), dtype=np.float64)
        metrics["test_rmse"] = float(np.sqrt(np.mean((predicted - test.y) ** 2)))
        metrics["test_baseline_rmse"] = float(np.sqrt(np.mean((float(np.mean(train.y)) - test.y) ** 2)))
        return metrics

    def signature(self, model: keras.Model, data: Dataset, num_classes: int) -> dict[str, Any]:
        """Inputs are (user, item) pairs; how many users and items the model knows."""
        layer = model.get_layer("mf")
        return {
            "task": self.name,
            "input_shape": None,
            "input_dtype": "string",
            "kind": "interactions",
            "columns": data.feature_names,
            "users": len(layer.users),
            "items": len(layer.items),
            "rating_range": [float(np.min(data.y)), float(np.max(data.y))],
        }
