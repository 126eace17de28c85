"""Model size and memory budgets: estimates from specs and .keras configs against the real models' counts
(weights, and the sum of the layers' output sizes per sample, measured on the built model)."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest

from ml.budget import (
    MB,
    check_memory,
    check_params,
    config_estimate,
    config_params,
    train_estimate,
    train_params,
)
from ml.model_import import load
from tensorq.core.errors import OutOfRange
from tests.ml.keras_files import plain_model


def _trainable(model) -> int:  # type: ignore[no-untyped-def]
    return sum(int(w.shape.num_elements()) for w in model.trainable_weights)


def _output_sizes(model) -> int:  # type: ignore[no-untyped-def]
    """The measured figure: values per sample output by every layer (nested models' layers, not the models)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += _output_sizes(layer) - math.prod(layer.inputs[0].shape[1:])  # its input is the layer before's
            continue
        shape = layer.output.shape[1:]
        total += math.prod(d for d in shape if d is not None) if shape else 1
    return total


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
        ("audio_cnn", {"sample_rate": 8000, "clip_seconds": 0.6, "filters": [16, 32], "dense": 32}, (4800,)),
    ],
)
def test_train_estimates_are_close_to_the_built_models(architecture: str, params: dict, shape: tuple) -> None:
    import ml.architectures.audio_cnn  # noqa: F401 - registers the builders
    import ml.architectures.cnn  # noqa: F401
    import ml.architectures.mlp  # noqa: F401
    import ml.architectures.rnn  # noqa: F401
    import ml.architectures.vae  # noqa: F401
    from ml.builders import get

    model = get(architecture)(shape, 10, params)
    real, estimate = _trainable(model), train_params(architecture, params, shape)
    assert abs(estimate - real) <= 0.1 * real, (estimate, real)
    outputs = _output_sizes(model)
    estimated = train_estimate(architecture, params, shape)
    assert abs(estimated.outputs - outputs) <= 0.1 * outputs, (estimated.outputs, outputs)
    # A step's activations (kept values and their gradients) against the batch's layer outputs: twice those,
    # and more for recurrent layers, which keep every step's gate values while a final-state layer outputs one
    # step (an LSTM over 64 steps outputs 16 values per row and keeps 64 x 16 x 5 for the backward pass).
    measured_bytes = 4 * 32 * outputs
    activation_bytes = estimated.train_bytes(32) - estimated.train_bytes(0)
    factor = 40 if architecture == "rnn" else 2.2
    assert 1.8 * measured_bytes <= activation_bytes <= factor * measured_bytes


def _keras_config(model, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _config_models() -> list:  # type: ignore[no-untyped-def]
    import keras

    image = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 5, strides=2, padding="valid")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    convnet = keras.Model(image, keras.layers.Dense(10, activation="softmax")(x), name="convnet")
    tokens = keras.Input((20,))
    y = keras.layers.Embedding(500, 16)(tokens)
    y = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True))(y)
    y = keras.layers.GRU(4)(y)
    recurrent = keras.Model(tokens, keras.layers.Dense(3, activation="softmax")(y), name="recurrent")
    stacked = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(64), keras.layers.Dropout(0.2), keras.layers.Dense(2)], name="stacked"
    )
    return [convnet, recurrent, stacked]


def test_config_estimates_are_close_to_the_built_models(tmp_path: Path) -> None:
    for model in _config_models():
        estimate = config_estimate(_keras_config(model, tmp_path))
        assert estimate.params == model.count_params(), model.name  # BatchNormalization's statistics too
        outputs = _output_sizes(model)
        assert abs(estimate.outputs - outputs) <= 0.1 * outputs, (model.name, estimate.outputs, outputs)
        assert estimate.peak <= outputs


def test_a_wide_activation_model_with_few_weights_is_refused_for_its_memory(tmp_path: Path) -> None:
    import keras

    # 1,800 weights; 64 channels of 1024x1024 per row: 256 MiB of activations per row.
    image = keras.Input((1024, 1024, 3))
    x = keras.layers.Conv2D(64, 3, padding="same")(image)
    wide = keras.Model(image, keras.layers.Dense(2)(keras.layers.GlobalMaxPooling2D()(x)), name="wide")
    estimate = config_estimate(_keras_config(wide, tmp_path))
    assert estimate.params == _trainable(wide) < 2000
    check_params(estimate.params, 50_000_000, "the uploaded model")
    with pytest.raises(OutOfRange) as refused:
        check_memory(estimate.inference_bytes(), 8192, "the uploaded model")
    assert refused.value.code == "memory_budget_exceeded"
    assert refused.value.details["limit_mb"] == 8192
    with pytest.raises(OutOfRange) as refused:  # the import job refuses it before Keras builds it
        load(tmp_path / "wide.keras", max_params=50_000_000, max_memory_mb=8192)
    assert refused.value.code == "memory_budget_exceeded"

    # A train spec: about 1.3 million weights, but 65,536 rows of 8x8x1024 activations per batch.
    params = {"filters": [1024, 1024], "kernel_size": 1, "dense": 16}
    spec = train_estimate("cnn", params, (8, 8, 1))
    assert spec.params < 2_000_000
    with pytest.raises(OutOfRange) as refused:
        check_memory(spec.train_bytes(65_536), 8192, "this cnn")
    assert refused.value.code == "memory_budget_exceeded"
    assert refused.value.details["estimated_mb"] > 8192
    check_memory(spec.train_bytes(32), 8192, "this cnn")  # the same model at an ordinary batch fits
    assert spec.train_bytes(32) < 100 * MB


def test_the_cnn_of_the_report_is_far_over_the_default_budget() -> None:
    params = {"filters": [1024] * 16, "kernel_size": 11, "dense": 8192}
    with pytest.raises(OutOfRange) as refused:
        check_params(train_params("cnn", params, (8, 8, 1)), 50_000_000, "this cnn")
    assert refused.value.code == "model_too_large"
    # Its weights alone (with gradients and Adam's moments) are far over the 8 GiB job memory, too.
    with pytest.raises(OutOfRange) as refused:
        check_memory(train_estimate("cnn", params, (8, 8, 1)).train_bytes(32), 8192, "this cnn")
    assert refused.value.code == "memory_budget_exceeded"


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
    assert refused.value.code == "model_too_large"
    assert refused.value.details["estimated_params"] > 5 * 10**8
