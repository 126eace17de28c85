"""``rnn``: a recurrent classifier for text (vectorised inside the model) or numeric sequences."""

from __future__ import annotations

import keras

from ml.builders import register
from ml.specs import RnnParams
from tensorq.core.errors import InvalidRequest


def _recurrent(cell: str, units: int, return_sequences: bool, dropout: float, name: str) -> keras.layers.Layer:
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    return layer(units, return_sequences=return_sequences, dropout=dropout, name=name)


@register("rnn")
def build(input_shape: tuple[int, ...], num_classes: int, params: RnnParams) -> keras.Model:
    """Text or a sequence in, recurrent layers, softmax over the classes.

    Text (``input_shape`` ``()``, one string per row): a ``TextVectorization`` layer named "vectorize"
    (lower case, punctuation stripped, split on whitespace, at most ``max_tokens`` words, padded or cut
    to ``sequence_length``), then an ``Embedding`` named "embedding" (``embedding_dim``, padding masked).
    Numeric sequences (``input_shape`` ``(T, F)``, or ``(T, F, 1)`` as a 3-D ``.npz`` loads): a
    per-feature ``Normalization``. Then ``layers`` recurrent layers of ``units`` (``cell`` "lstm" or
    "gru", each wrapped in ``Bidirectional`` when ``bidirectional``), an optional Dense ``dense`` (relu),
    and the softmax.
    Params, their ranges and defaults: ``ml.specs.RnnParams``.
    """
    cell, units, layers, dropout, dense = params.cell, params.units, params.layers, params.dropout, params.dense
    bidirectional, max_tokens = params.bidirectional, params.max_tokens
    sequence_length, embedding_dim = params.sequence_length, params.embedding_dim
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
