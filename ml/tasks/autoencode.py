"""Variational autoencoders: reconstruction and KL loss, held-out reconstruction error against the mean."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ml import builders
from ml.datasets import Dataset
from ml.tasks.base import Task, adapt_preprocessing, check_numeric
from tensorq.core.errors import InvalidRequest


def reconstruction_error(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> float:
    """Mean squared error, in the input's own scale, of the model's deterministic reconstructions of ``x``."""
    total = 0.0
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        total += float(np.sum((np.asarray(model(batch, training=False), dtype=np.float64) - batch) ** 2))
    return total / max(x.size, 1)


class Autoencode(Task):
    """Generative models of their inputs; labels, if any, are ignored."""

    name = "autoencode"

    def check(self, data: Dataset) -> int:
        """Numeric tabular rows or images, at least two."""
        check_numeric(data, "a vae")
        if len(data.x) < 2:
            raise InvalidRequest("a vae needs at least two rows")
        return 0

    def build(self, architecture: str, params: dict[str, Any], train: Dataset, num_classes: int) -> keras.Model:
        """The registered builder's model, normalisation adapted."""
        model = builders.get(architecture)(tuple(train.x.shape[1:]), 0, params)
        adapt_preprocessing(model, train.x)
        return model

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        """The model computes its own losses; only the optimizer is set."""
        model.compile(optimizer=optimizer)

    def targets(self, data: Dataset) -> Any:
        """The inputs themselves (the model ignores them: its loss is its own)."""
        return data.x

    def test_metrics(self, model: keras.Model, train: Dataset, test: Dataset) -> dict[str, float]:
        """The losses, ``test_reconstruction_error`` (MSE in the input's scale) and ``test_baseline_error``
        (the MSE of always answering the training rows' mean)."""
        metrics = self.evaluate(model, test)
        mean = train.x.mean(axis=0, dtype=np.float64)
        metrics["test_reconstruction_error"] = reconstruction_error(model, test.x)
        metrics["test_baseline_error"] = float(np.mean((test.x - mean) ** 2))
        return metrics

    def signature(self, model: keras.Model, data: Dataset, num_classes: int) -> dict[str, Any]:
        """Input shape, latent size and the predict modes."""
        return {
            "task": self.name,
            "input_shape": list(data.x.shape[1:]),
            "input_dtype": "float32",
            "latent_dim": int(model.latent_dim),
            "kind": data.kind,
            "feature_names": data.feature_names,
            "modes": ["encode", "reconstruct", "sample"],
        }
