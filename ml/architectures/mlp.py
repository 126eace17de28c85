"""``mlp``: a multilayer perceptron for tabular data (images are flattened first)."""

from __future__ import annotations

import keras

from ml.builders import register
from ml.specs import MlpParams


@register("mlp")
def build(input_shape: tuple[int, ...], num_classes: int, params: MlpParams) -> keras.Model:
    """Input, Normalization (per feature), Dense ``hidden`` layers, softmax over the classes.

    Params, their ranges and defaults: ``ml.specs.MlpParams``.
    """
    hidden, dropout, activation = params.hidden, params.dropout, params.activation
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
