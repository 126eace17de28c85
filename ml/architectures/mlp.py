"""``mlp``: a multilayer perceptron for tabular data."""

from __future__ import annotations

from typing import Any

import keras

from ml.registry import check_params, check_range, register
from tensorq.errors import InvalidRequest

DEFAULTS = {"hidden": [64, 32], "dropout": 0.1, "activation": "relu"}
ACTIVATIONS = ("relu", "gelu", "tanh", "elu", "selu", "swish")


@register("mlp")
def build(input_shape: tuple[int, ...], num_classes: int, params: dict[str, Any]) -> keras.Model:
    """Normalization, then Dense layers ``hidden`` (default [64, 32]) with ``activation`` (relu) and
    ``dropout`` (0.1) after each, then a softmax over the classes."""
    p = check_params(params, DEFAULTS)
    hidden = p["hidden"]
    if not isinstance(hidden, list) or not hidden or not all(isinstance(h, int) for h in hidden):
        raise InvalidRequest("params.hidden must be a non-empty list of integers")
    for width in hidden:
        check_range("hidden", width, 1, 4096)
    check_range("dropout", p["dropout"], 0.0, 0.9)
    if p["activation"] not in ACTIVATIONS:
        raise InvalidRequest(f"params.activation must be one of {', '.join(ACTIVATIONS)}")
    inputs = keras.Input(shape=input_shape, name="features")
    x = keras.layers.Normalization(name="normalize")(inputs)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation=p["activation"], name=f"dense_{i}")(x)
        if p["dropout"]:
            x = keras.layers.Dropout(p["dropout"], name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")
