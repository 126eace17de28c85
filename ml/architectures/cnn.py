"""``cnn``: the classic Keras MNIST convnet, adapted to the input's size."""

from __future__ import annotations

import keras

from ml.builders import register
from ml.specs import CnnParams
from tensorq.core.errors import InvalidRequest


@register("cnn")
def build(input_shape: tuple[int, ...], num_classes: int, params: CnnParams) -> keras.Model:
    """Input, Normalization (one mean and variance), Conv2D stack, Dense, softmax over the classes.

    Each entry of ``filters`` is a Conv2D (``kernel_size`` square, relu, same padding), with a 2x2
    max-pool between consecutive ones while the image stays at least 2 pixels on its short side;
    then Flatten, Dense ``dense`` (relu), optional Dropout ``dropout``, and the softmax.
    Params, their ranges and defaults: ``ml.specs.CnnParams``.
    """
    filters, dense, dropout, kernel_size = params.filters, params.dense, params.dropout, params.kernel_size
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
