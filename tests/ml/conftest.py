"""Fixtures of the TensorFlow core's tests: small models trained once per session on built-in data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ml.datasets import Dataset, load_builtin, split


@dataclass
class Trained:
    """A model trained once for several tests, with the rows it never saw."""

    model: Any
    outcome: Any
    held_out: Dataset


def _train(tmp: Path, architecture: str, dataset: str, epochs: int) -> Trained:
    import keras

    from ml.training import TrainConfig, train

    data = load_builtin(dataset)
    rest, held_out = split(data, 0.2, seed=7)
    config = TrainConfig(architecture, {}, epochs=epochs, seed=3, test_split=0.2, validation_split=0.2)
    outcome = train(config, rest, tmp)
    model = keras.models.load_model(outcome.model_path, safe_mode=True, compile=False)
    return Trained(model, outcome, held_out)


@pytest.fixture(scope="session")
def trained_mlp(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """An mlp trained on breast_cancer (20 epochs)."""
    return _train(tmp_path_factory.mktemp("mlp"), "mlp", "breast_cancer", 20)


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A cnn trained on the 8x8 digits (5 epochs)."""
    return _train(tmp_path_factory.mktemp("cnn"), "cnn", "digits", 5)
