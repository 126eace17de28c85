"""``rnn``: a recurrent classifier for text (vectorised inside the model) or numeric sequences."""

from __future__ import annotations

from typing import Any

import keras

from ml.builders import check_bool, check_choice, check_float, check_int, check_params, register
from tensorq.errors import InvalidRequest

DEFAULTS: dict[str, Any] = {
    "cell": "lstm",
    "units": 64,
    "layers": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "dense": 0,
    "max_tokens": 20_000,
    "sequence_length": 64,
    "embedding_dim": 64,
}
CELLS = ("lstm", "gru")


def _recurrent(cell: str, units: int, return_sequences: bool, dropout: float, name: str) -> keras.layers.Layer:
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    return layer(units, return_sequences=return_sequences, dropout=dropout, name=name)


@register("rnn")
def build(input_shape: tuple[int, ...], num_classes: int, params: dict[str, Any]) -> keras.Model:
    """Text or a sequence in, recurrent layers, softmax over the classes.

    Text (``input_shape`` ``()``, one string per row): a ``TextVectorization`` layer named "vectorize"
    (lower case, punctuation stripped, split on whitespace, at most ``max_tokens`` words, padded or cut
    to ``sequence_length``), then an ``Embedding`` named "embedding" (``embedding_dim``, padding masked).
    Numeric sequences (``input_shape`` ``(T, F)``, or ``(T, F, 1)`` as a 3-D ``.npz`` loads): a
    per-feature ``Normalization``. Then ``layers`` recurrent layers of ``units`` (``cell`` "lstm" or
    "gru", each wrapped in ``Bidirectional`` when ``bidirectional``), an optional Dense ``dense`` (relu),
    and the softmax.
    Params (defaults): ``cell`` ("lstm"); ``units`` 1..4096 (64); ``layers`` 1..8 (1); ``bidirectional``
    (false); ``dropout`` on the recurrent inputs, 0.0..0.9 (0.0); ``dense`` 0..8192, 0 for none (0);
    ``max_tokens`` 100..1000000 (20000); ``sequence_length`` 1..4096 (64); ``embedding_dim`` 1..1024 (64).
    """
    p = check_params(params, DEFAULTS)
    cell = check_choice("cell", p["cell"], CELLS)
    units = check_int("units", p["units"], 1, 4096)
    layers = check_int("layers", p["layers"], 1, 8)
    bidirectional = check_bool("bidirectional", p["bidirectional"])
    dropout = check_float("dropout", p["dropout"], 0.0, 0.9)
    dense = check_int("dense", p["dense"], 0, 8192)
    max_tokens = check_int("max_tokens", p["max_tokens"], 100, 1_000_000)
    sequence_length = check_int("sequence_length", p["sequence_length"], 1, 4096)
    embedding_dim = check_int("embedding_dim", p["embedding_dim"], 1, 1024)
    shape = tuple(input_shape)
    if shape == ():
        inputs = keras.Input(shape=(), dtype="string", name="text")
        x = keras.layers.TextVectorization(
            max_tokens=max_tokens, output_sequence_length=sequence_length, name="vectorize"
        )(inputs)
        x = keras.layers.Embedding(max_tokens, embedding_dim, mask_zero=True, name="embedding")(x)
    elif len(shape) == 2 or (len(shape) == 3 and shape[-1] == 1):
        inputs = keras.Input(shape=shape, name="sequence")
        x = inputs if len(shape) == 2 else keras.layers.Reshape(shape[:2], name="squeeze")(inputs)
        x = keras.layers.Normalization(axis=-1, name="normalize")(x)
    else:
        raise InvalidRequest(
            f"rnn needs text or sequences shaped (steps, features), not {list(shape)}",
            details={"input_shape": list(shape)},
        )
    for i in range(layers):
        layer = _recurrent(cell, units, i < layers - 1, dropout, f"{cell}_{i}")
        x = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")(x) if bidirectional else layer(x)
    if dense:
        x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="rnn")
