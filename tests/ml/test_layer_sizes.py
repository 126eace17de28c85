"""Every layer an uploaded ``.keras`` may use is sized from its config before Keras builds it: for each class in
``ml.catalog.KERAS_LAYERS`` a tiny model is saved, and the estimate from its ``config.json`` must be at least
the weights Keras builds; a layer that cannot be sized is refused."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import pytest

from ml.budget import config_estimate
from ml.catalog import KERAS_LAYERS
from ml.layer_sizes import SIZES
from ml.model_import import load
from tensorq.core.errors import InvalidRequest, OutOfRange

L = keras.layers


def _on(shape: tuple, *layers: Any, dtype: str = "float32") -> keras.Model:
    inputs = keras.Input(shape, dtype=dtype)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def _branches(merge: Any, widths: tuple[int, int] = (3, 3)) -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, merge([L.Dense(widths[0])(inputs), L.Dense(widths[1])(inputs)]))


IMAGE, VOLUME, SEQUENCE = (8, 8, 3), (6, 6, 6, 2), (10, 3)
MODELS: dict[str, Callable[[], keras.Model]] = {
    "InputLayer": lambda: _on((4,), L.Dense(2)),
    "Dense": lambda: _on((4,), L.Dense(3)),
    "EinsumDense": lambda: _on((5, 4), L.EinsumDense("abc,cd->abd", output_shape=(5, 6), bias_axes="d")),
    "Embedding": lambda: _on((6,), L.Embedding(20, 4)),
    "Conv1D": lambda: _on(SEQUENCE, L.Conv1D(4, 3)),
    "Conv2D": lambda: _on(IMAGE, L.Conv2D(4, 3, strides=2, padding="same")),
    "Conv3D": lambda: _on(VOLUME, L.Conv3D(3, 2)),
    "Conv1DTranspose": lambda: _on(SEQUENCE, L.Conv1DTranspose(4, 3, strides=2)),
    "Conv2DTranspose": lambda: _on(IMAGE, L.Conv2DTranspose(4, 3)),
    "Conv3DTranspose": lambda: _on(VOLUME, L.Conv3DTranspose(3, 2)),
    "DepthwiseConv1D": lambda: _on(SEQUENCE, L.DepthwiseConv1D(3, depth_multiplier=2)),
    "DepthwiseConv2D": lambda: _on(IMAGE, L.DepthwiseConv2D(3, depth_multiplier=2)),
    "SeparableConv1D": lambda: _on(SEQUENCE, L.SeparableConv1D(4, 3, depth_multiplier=2)),
    "SeparableConv2D": lambda: _on(IMAGE, L.SeparableConv2D(4, 3, depth_multiplier=2)),
    "BatchNormalization": lambda: _on(IMAGE, L.BatchNormalization()),
    "LayerNormalization": lambda: _on(SEQUENCE, L.LayerNormalization()),
    "Normalization": lambda: _on((5,), L.Normalization(mean=[0.0] * 5, variance=[1.0] * 5)),
    "PReLU": lambda: _on(SEQUENCE, L.PReLU()),
    "LSTM": lambda: _on(SEQUENCE, L.LSTM(4)),
    "GRU": lambda: _on(SEQUENCE, L.GRU(4, return_sequences=True)),
    "SimpleRNN": lambda: _on(SEQUENCE, L.SimpleRNN(4)),
    "Bidirectional": lambda: _on(SEQUENCE, L.Bidirectional(L.LSTM(4))),
    "MaxPooling1D": lambda: _on(SEQUENCE, L.MaxPooling1D(), L.Flatten(), L.Dense(2)),
    "MaxPooling2D": lambda: _on(IMAGE, L.MaxPooling2D(), L.Flatten(), L.Dense(2)),
    "MaxPooling3D": lambda: _on(VOLUME, L.MaxPooling3D(), L.Flatten(), L.Dense(2)),
    "AveragePooling1D": lambda: _on(SEQUENCE, L.AveragePooling1D(2), L.Flatten(), L.Dense(2)),
    "AveragePooling2D": lambda: _on(IMAGE, L.AveragePooling2D(2, padding="same"), L.Flatten(), L.Dense(2)),
    "AveragePooling3D": lambda: _on(VOLUME, L.AveragePooling3D(2), L.Flatten(), L.Dense(2)),
    "GlobalMaxPooling1D": lambda: _on(SEQUENCE, L.GlobalMaxPooling1D(), L.Dense(2)),
    "GlobalMaxPooling2D": lambda: _on(IMAGE, L.GlobalMaxPooling2D(), L.Dense(2)),
    "GlobalMaxPooling3D": lambda: _on(VOLUME, L.GlobalMaxPooling3D(), L.Dense(2)),
    "GlobalAveragePooling1D": lambda: _on(SEQUENCE, L.GlobalAveragePooling1D(), L.Dense(2)),
    "GlobalAveragePooling2D": lambda: _on(IMAGE, L.GlobalAveragePooling2D(), L.Dense(2)),
    "GlobalAveragePooling3D": lambda: _on(VOLUME, L.GlobalAveragePooling3D(), L.Dense(2)),
    "UpSampling1D": lambda: _on(SEQUENCE, L.UpSampling1D(3), L.Flatten(), L.Dense(2)),
    "UpSampling2D": lambda: _on(IMAGE, L.UpSampling2D(2), L.Flatten(), L.Dense(2)),
    "UpSampling3D": lambda: _on(VOLUME, L.UpSampling3D(2), L.Flatten(), L.Dense(2)),
    "Flatten": lambda: _on(IMAGE, L.Flatten(), L.Dense(3)),
    "Reshape": lambda: _on((12,), L.Reshape((3, -1)), L.Dense(2)),
    "Permute": lambda: _on(SEQUENCE, L.Permute((2, 1)), L.Dense(2)),
    "RepeatVector": lambda: _on((4,), L.RepeatVector(5), L.Dense(2)),
    "Dropout": lambda: _on((4,), L.Dropout(0.1), L.Dense(2)),
    "SpatialDropout1D": lambda: _on(SEQUENCE, L.SpatialDropout1D(0.1), L.Dense(2)),
    "SpatialDropout2D": lambda: _on(IMAGE, L.SpatialDropout2D(0.1), L.Dense(2)),
    "SpatialDropout3D": lambda: _on(VOLUME, L.SpatialDropout3D(0.1), L.Dense(2)),
    "GaussianNoise": lambda: _on((4,), L.GaussianNoise(0.1), L.Dense(2)),
    "GaussianDropout": lambda: _on((4,), L.GaussianDropout(0.1), L.Dense(2)),
    "AlphaDropout": lambda: _on((4,), L.AlphaDropout(0.1), L.Dense(2)),
    "ActivityRegularization": lambda: _on((4,), L.ActivityRegularization(), L.Dense(2)),
    "Activation": lambda: _on((4,), L.Activation("relu"), L.Dense(2)),
    "ReLU": lambda: _on((4,), L.ReLU(), L.Dense(2)),
    "LeakyReLU": lambda: _on((4,), L.LeakyReLU(), L.Dense(2)),
    "ELU": lambda: _on((4,), L.ELU(), L.Dense(2)),
    "Softmax": lambda: _on((4,), L.Softmax(), L.Dense(2)),
    "Identity": lambda: _on((4,), L.Identity(), L.Dense(2)),
    "Rescaling": lambda: _on(IMAGE, L.Rescaling(1 / 255), L.Flatten(), L.Dense(2)),
    "Add": lambda: _branches(L.Add()),
    "Subtract": lambda: _branches(L.Subtract()),
    "Multiply": lambda: _branches(L.Multiply()),
    "Average": lambda: _branches(L.Average()),
    "Maximum": lambda: _branches(L.Maximum()),
    "Minimum": lambda: _branches(L.Minimum()),
    "TextVectorization": lambda: _on(
        (1,), L.TextVectorization(vocabulary=["a", "b", "c"], output_mode="multi_hot"), L.Dense(2), dtype="string"
    ),
    "StringLookup": lambda: _on(
        (1,), L.StringLookup(vocabulary=["a", "b"], output_mode="one_hot"), L.Dense(2), dtype="string"
    ),
    "IntegerLookup": lambda: _on((3,), L.IntegerLookup(vocabulary=[1, 2, 3]), L.Embedding(8, 2), dtype="int64"),
}


def _concatenated() -> keras.Model:
    """The layer after a merge sees the merged width: a concatenation of 3 and 5 is 8 wide."""
    inputs = keras.Input((4,))
    joined = L.Concatenate()([L.Dense(3)(inputs), L.Dense(5)(inputs)])
    return keras.Model(inputs, L.Dense(4)(joined))


MODELS["Concatenate"] = _concatenated


def _config(model: keras.Model, tmp_path: Path) -> dict:
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def test_every_allowed_layer_has_a_size_and_a_test() -> None:
    assert set(MODELS) == KERAS_LAYERS
    assert set(SIZES) | {"InputLayer"} == KERAS_LAYERS | {
        "MatrixFactorization",
        "TabularEncoder",
        "VariationalAutoencoder",
    }


@pytest.mark.parametrize("layer", sorted(KERAS_LAYERS))
def test_the_estimate_is_at_least_what_keras_builds(layer: str, tmp_path: Path) -> None:
    model = MODELS[layer]()
    config = _config(model, tmp_path)
    assert layer in json.dumps(config)
    estimate = config_estimate(config)
    assert estimate.params >= model.count_params(), (layer, estimate.params, model.count_params())
    assert estimate.params <= 4 * model.count_params() + 64, (layer, estimate.params, model.count_params())


def test_an_einsum_dense_of_twelve_million_outputs_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """The report's file: an EinsumDense declaring output_shape 12,000,000 was counted as 27 weights."""
    small = _on((8,), L.EinsumDense("ab,bc->ac", output_shape=3, bias_axes="c"))
    config = _config(small, tmp_path)
    assert config_estimate(config).params == small.count_params() == 27
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "EinsumDense":
            layer["config"]["output_shape"] = [12_000_000]
    assert config_estimate(config).params == 8 * 12_000_000 + 12_000_000
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    huge = tmp_path / "huge.keras"
    with zipfile.ZipFile(huge, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else data)
    with pytest.raises(OutOfRange) as refused:
        load(huge, max_params=50_000_000)
    assert refused.value.code == "model_too_large"


@pytest.mark.parametrize(
    ("equation", "output_shape"),
    [("ab,bc", [3]), ("abc,cd->abd", [3]), ("ab,bz->az", [None]), ("ab,cd->ad", [3])],
)
def test_an_einsum_dense_that_does_not_say_its_sizes_is_refused(equation: str, output_shape: list) -> None:
    layer = {"class_name": "EinsumDense", "config": {"equation": equation, "output_shape": output_shape}}
    config = {"class_name": "Sequential", "config": {"layers": [_input([None, 8]), layer]}}
    with pytest.raises(InvalidRequest) as refused:
        config_estimate(config)
    assert refused.value.code == "unsupported_layer"


def _input(batch_shape: list) -> dict:
    return {"class_name": "InputLayer", "config": {"batch_shape": batch_shape}}


def test_a_layer_that_cannot_be_sized_is_refused(tmp_path: Path) -> None:
    attention = keras.Input((5, 4))
    model = keras.Model(attention, L.MultiHeadAttention(2, 3)(attention, attention))
    with pytest.raises(InvalidRequest) as refused:
        config_estimate(_config(model, tmp_path))
    assert refused.value.code == "unsupported_layer"
    assert refused.value.details["layers"] == ["MultiHeadAttention"]
    wrapped = {"class_name": "Bidirectional", "config": {"layer": {"class_name": "Dense", "config": {"units": 9}}}}
    with pytest.raises(InvalidRequest, match="Bidirectional"):
        config_estimate({"class_name": "Sequential", "config": {"layers": [_input([None, 5, 4]), wrapped]}})


def _recommender() -> keras.Model:
    from ml.architectures.recommender import build
    from ml.specs import RecommenderParams

    return build(["u1", "u2", "u3"], ["i1", "i2"], 3.5, RecommenderParams(factors=4))


def _vae() -> keras.Model:
    import ml.architectures.vae  # noqa: F401 - registers the builder
    from ml.builders import get

    return get("vae")((6,), 3, {"hidden": [8], "latent_dim": 2})


def _table() -> keras.Model:
    import numpy as np

    from ml.encoding import fit_encoder

    cells = np.asarray([["1.5", "red"], ["", "blue"], ["2", "red"]], dtype=object)
    encoder = fit_encoder([{"name": "x", "type": "numeric"}, {"name": "colour", "type": "categorical"}], cells)
    inputs = keras.Input((2,), dtype="string")
    return keras.Model(inputs, L.Dense(2)(encoder(inputs)))


@pytest.mark.parametrize("build", [_recommender, _vae, _table], ids=["recommender", "vae", "table"])
def test_tensorqs_own_models_are_sized_too(build: Callable[[], keras.Model], tmp_path: Path) -> None:
    model = build()
    estimate = config_estimate(_config(model, tmp_path))
    assert model.count_params() <= estimate.params <= 4 * model.count_params() + 64
