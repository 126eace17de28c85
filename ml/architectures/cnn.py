"""``cnn``: the classic Keras MNIST convnet, adapted to the input's size."""

from __future__ import annotations

from typing import Any

import keras

from ml.builders import check_float, check_int, check_int_list, check_params, register
from tensorq.errors import InvalidRequest

DEFAULTS: dict[str, Any] = {"filters": [32, 64, 64], "dense": 64, "dropout": 0.0, "kernel_size": 3}


@register("cnn")
def build(input_shape: tuple[int, ...], num_classes: int, params: dict[str, Any]) -> keras.Model:
    """Input, Normalization (one mean and variance), Conv2D stack, Dense, softmax over the classes.

    Each entry of ``filters`` is a Conv2D (``kernel_size`` square, relu, same padding), with a 2x2
    max-pool between consecutive ones while the image stays at least 2 pixels on its short side;
    then Flatten, Dense ``dense`` (relu), optional Dropout ``dropout``, and the softmax.
    Params (defaults): ``filters`` 1..1024 each ([32, 64, 64]); ``dense`` 1..8192 (64);
    ``dropout`` 0.0..0.9 (0.0); ``kernel_size`` 1..11 (3).
    """
    p = check_params(params, DEFAULTS)
    filters = check_int_list("filters", p["filters"], 1, 1024, max_len=16)
    dense = check_int("dense", p["dense"], 1, 8192)
    dropout = check_float("dropout", p["dropout"], 0.0, 0.9)
    kernel_size = check_int("kernel_size", p["kernel_size"], 1, 11)
    if len(input_shape) != 3:
        raise InvalidRequest(
            f"cnn needs images shaped (height, width, channels), not {list(input_shape)}",
            details={"input_shape": list(input_shape)},
        )
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Normalization(axis=None, name="normalize")(inputs)
    size = min(input_shape[0], input_shape[1])
    for i, count in enumerate(filters):
        x = keras.layers.Conv2D(count, kernel_size, padding="same", activation="relu", name=f"conv_{i}")(x)
        if i < len(filters) - 1 and size // 2 >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
            size //= 2
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")
