"""``cnn``: the classic Keras MNIST convnet, adapted to the input's size."""

from __future__ import annotations

from typing import Any

import keras

from ml.registry import check_params, check_range, register
from tensorq.errors import InvalidRequest

DEFAULTS = {"filters": [32, 64, 64], "dense": 64, "dropout": 0.0, "kernel_size": 3}


@register("cnn")
def build(input_shape: tuple[int, ...], num_classes: int, params: dict[str, Any]) -> keras.Model:
    """Normalization, then Conv2D ``filters`` (default 32, 64, 64; 3x3, relu, same padding) with a 2x2
    max-pool between them while the image stays at least 2 pixels wide, Flatten, Dense ``dense`` (64),
    optional ``dropout`` (0.0), and a softmax over the classes."""
    p = check_params(params, DEFAULTS)
    filters = p["filters"]
    if not isinstance(filters, list) or not filters or not all(isinstance(f, int) for f in filters):
        raise InvalidRequest("params.filters must be a non-empty list of integers")
    for count in filters:
        check_range("filters", count, 1, 1024)
    check_range("dense", p["dense"], 1, 8192)
    check_range("dropout", p["dropout"], 0.0, 0.9)
    check_range("kernel_size", p["kernel_size"], 1, 11)
    if len(input_shape) != 3:
        raise InvalidRequest(f"cnn needs images shaped (height, width, channels), not {list(input_shape)}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Normalization(axis=None, name="normalize")(inputs)
    size = min(input_shape[0], input_shape[1])
    for i, count in enumerate(filters):
        x = keras.layers.Conv2D(count, p["kernel_size"], padding="same", activation="relu", name=f"conv_{i}")(x)
        if i < len(filters) - 1 and size // 2 >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
            size //= 2
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(p["dense"], activation="relu", name="dense")(x)
    if p["dropout"]:
        x = keras.layers.Dropout(p["dropout"], name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")
