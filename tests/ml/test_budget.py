"""Model size budgets: estimates from specs and .keras configs against the real models' counts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from ml.budget import check_params, config_params, train_params
from ml.model_import import load
from tensorq.errors import OutOfRange
from tests.ml.keras_files import plain_model


def _trainable(model) -> int:  # type: ignore[no-untyped-def]
    return sum(int(w.shape.num_elements()) for w in model.trainable_weights)


@pytest.mark.parametrize(
    ("architecture", "params", "shape"),
    [
        ("mlp", {"hidden": [64, 32]}, (30,)),
        ("mlp", {"hidden": [16]}, (8, 8, 1)),
        ("cnn", {"filters": [8, 16], "dense": 32, "kernel_size": 3}, (8, 8, 1)),
        ("cnn", {"filters": [4, 4, 4, 4], "dense": 8, "kernel_size": 5}, (28, 28, 1)),
        ("vae", {"hidden": [32, 16], "latent_dim": 4}, (30,)),
        ("rnn", {"units": 16, "layers": 2, "cell": "gru"}, (10, 3)),
        ("rnn", {"units": 8, "bidirectional": True, "max_tokens": 500, "embedding_dim": 8}, ()),
    ],
)
def test_train_estimates_are_close_to_the_built_models(architecture: str, params: dict, shape: tuple) -> None:
    import ml.architectures.cnn  # noqa: F401 - registers the builders
    import ml.architectures.mlp  # noqa: F401
    import ml.architectures.rnn  # noqa: F401
    import ml.architectures.vae  # noqa: F401
    from ml.builders import get

    model = get(architecture)(shape, 10, params)
    real, estimate = _trainable(model), train_params(architecture, params, shape)
    assert abs(estimate - real) <= 0.1 * real, (estimate, real)


def test_the_cnn_of_the_report_is_far_over_the_default_budget() -> None:
    params = {"filters": [1024] * 16, "kernel_size": 11, "dense": 8192}
    with pytest.raises(OutOfRange) as refused:
        check_params(train_params("cnn", params, (8, 8, 1)), 50_000_000, "this cnn")
    assert refused.value.code == "model_too_large"


def test_a_keras_config_is_counted_before_anything_is_built(tmp_path: Path) -> None:
    import keras

    path = plain_model(tmp_path / "plain.keras", features=4, classes=3)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    assert config_params(config) == _trainable(keras.saving.load_model(path))

    for layer in config["config"]["layers"]:
        if layer["class_name"] == "Dense" and layer["config"]["units"] == 8:
            layer["config"]["units"] = 100_000_000
    huge = tmp_path / "huge.keras"
    with zipfile.ZipFile(huge, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else data)
    assert huge.stat().st_size < 64 * 1024
    with pytest.raises(OutOfRange) as refused:
        load(huge, max_params=50_000_000)
    assert refused.value.code == "model_too_large" and refused.value.details["estimated_params"] > 5 * 10**8
