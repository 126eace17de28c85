"""``mlp``: a multilayer perceptron for tabular data (images are flattened first)."""

from __future__ import annotations

from typing import Any

import keras

from ml.builders import check_choice, check_float, check_int_list, check_params, register

DEFAULTS: dict[str, Any] = {"hidden": [64, 32], "dropout": 0.1, "activation": "relu"}
ACTIVATIONS = ("relu", "gelu", "tanh", "elu", "selu", "swish", "sigmoid")


@register("mlp")
def build(input_shape: tuple[int, ...], num_classes: int, params: dict[str, Any]) -> keras.Model:
    """Input, Normalization (per feature), Dense ``hidden`` layers, softmax over the classes.

    Params (defaults): ``hidden`` list of layer widths, 1..4096 each ([64, 32]); ``dropout`` after
    each hidden layer, 0.0..0.9 (0.1); ``activation`` one of ACTIVATIONS ("relu").
    """
    p = check_params(params, DEFAULTS)
    hidden = check_int_list("hidden", p["hidden"], 1, 4096)
    dropout = check_float("dropout", p["dropout"], 0.0, 0.9)
    activation = check_choice("activation", p["activation"], ACTIVATIONS)
    inputs = keras.Input(shape=input_shape, name="features")
    x = keras.layers.Normalization(name="normalize")(inputs)
    if len(input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation=activation, name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")
