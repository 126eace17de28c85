"""The encoder a table's model carries: one row of cells (strings) in, a row of numbers out, inside the saved
model, so that predicting on a table needs nothing but the model.

Per feature column (the output holds the numeric columns' values, then their missing indicators, then the
categorical columns' one-hot slots; ``positions`` says where each column's numbers are):

- numeric: ``(value - mean) / std`` with the mean and standard deviation of the training rows' present
  cells; a missing cell (or one that is not a number) becomes 0, i.e. the training mean, and when the
  training column had missing cells a second feature, 1.0 for a missing cell, tells the model so;
- categorical: one-hot through Keras's ``StringLookup`` over the training rows' values, with a slot for a
  missing cell (the empty string) and one for a value unseen in training (``[UNK]``).

``TabularEncoder`` is registered (``tensorq>TabularEncoder``) and its config is plain JSON (the statistics
and vocabularies), so a model holding it loads with ``safe_mode``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml.tabular import MISSING_TOKENS, NUMBER_PATTERN, number

MISSING_SLOT = ""  # the vocabulary entry of a missing categorical cell


@keras.saving.register_keras_serializable(package="tensorq")
class TabularEncoder(keras.layers.Layer):
    """Rows of cells (N, columns) as strings in, float32 (N, width) out; ``columns`` holds, per column,
    ``{"name", "type": "numeric", "mean", "std", "indicator"}`` or ``{"name", "type": "categorical",
    "vocabulary"}``."""

    def __init__(self, columns: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = [dict(c) for c in columns]
        self.lookups = [
            keras.layers.StringLookup(
                vocabulary=list(c["vocabulary"]), num_oov_indices=1, output_mode="one_hot", name=f"lookup_{j}"
            )
            for j, c in enumerate(self.columns)
            if c["type"] == "categorical"
        ]

    def build(self, input_shape: Any) -> None:
        self.built = True  # the lookups hold their vocabularies already; nothing else has state

    def _numeric(self) -> list[int]:
        return [j for j, c in enumerate(self.columns) if c["type"] == "numeric"]

    def positions(self) -> list[list[int]]:
        """Where each column's numbers lie in the output: the numeric columns' scaled values first (in column
        order), then their missing indicators, then each categorical column's one-hot slots."""
        numeric = self._numeric()
        flagged = [j for j in numeric if self.columns[j]["indicator"]]
        spans: list[list[int]] = [[] for _ in self.columns]
        for k, j in enumerate(numeric):
            spans[j].append(k)
        for k, j in enumerate(flagged):
            spans[j].append(len(numeric) + k)
        start = len(numeric) + len(flagged)
        for j, c in enumerate(self.columns):
            if c["type"] == "categorical":
                size = len(c["vocabulary"]) + 1
                spans[j] = list(range(start, start + size))
                start += size
        return spans

    @property
    def width(self) -> int:
        """How many numbers one row becomes."""
        return sum(len(span) for span in self.positions())

    def call(self, inputs: Any) -> Any:
        cells = tf.strings.strip(tf.convert_to_tensor(inputs, dtype=tf.string))
        lowered = tf.strings.lower(cells)
        missing = tf.zeros_like(cells, dtype=tf.bool)
        for token in sorted(MISSING_TOKENS):
            missing = tf.logical_or(missing, tf.equal(lowered, token))
        cells = tf.where(missing, tf.constant(MISSING_SLOT), cells)
        parts = []
        numeric = self._numeric()
        if numeric:  # every numeric column at once: a wide table stays a small graph
            block = tf.gather(cells, numeric, axis=1)
            present = tf.strings.regex_full_match(block, NUMBER_PATTERN)
            value = tf.strings.to_number(tf.where(present, block, tf.constant("0")), out_type=tf.float32)
            present = tf.logical_and(present, tf.math.is_finite(value))
            means = tf.constant([float(self.columns[j]["mean"]) for j in numeric], dtype=tf.float32)
            stds = tf.constant([float(self.columns[j]["std"]) for j in numeric], dtype=tf.float32)
            scaled = (tf.where(present, value, means) - means) / stds
            parts.append(scaled)
            flagged = [k for k, j in enumerate(numeric) if self.columns[j]["indicator"]]
            if flagged:
                parts.append(tf.gather(tf.cast(tf.logical_not(present), tf.float32), flagged, axis=1))
        lookups = iter(self.lookups)
        for j, c in enumerate(self.columns):
            if c["type"] == "categorical":
                parts.append(tf.cast(next(lookups)(cells[:, j]), tf.float32))
        return tf.concat(parts, axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, int]:
        return (input_shape[0], self.width)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "columns": self.columns}


def fit_encoder(schema: list[dict[str, Any]], cells: np.ndarray) -> TabularEncoder:
    """An encoder for the feature columns ``schema`` (``ml.tabular`` entries) fitted to the training rows'
    ``cells`` (N, columns): means, standard deviations and vocabularies from those rows alone."""
    columns = []
    for j, entry in enumerate(schema):
        values = [str(v) for v in cells[:, j]]
        if entry["type"] == "numeric":
            numbers = np.asarray([n for n in (number(v) for v in values if v) if n is not None], dtype=np.float64)
            mean = float(numbers.mean()) if len(numbers) else 0.0
            std = float(numbers.std()) if len(numbers) else 1.0
            columns.append(
                {
                    "name": entry["name"],
                    "type": "numeric",
                    "mean": mean,
                    "std": std if std > 1e-12 else 1.0,
                    "indicator": len(numbers) < len(values),
                }
            )
        else:
            vocabulary = sorted({v for v in values if v})
            columns.append({"name": entry["name"], "type": "categorical", "vocabulary": [MISSING_SLOT, *vocabulary]})
    return TabularEncoder(columns, name="encode")


def wrap(encoder: TabularEncoder, head: keras.Model) -> keras.Model:
    """The whole model: cells in, the encoder, then ``head`` (a model built on the encoder's width)."""
    inputs = keras.Input(shape=(len(encoder.columns),), dtype="string", name="cells")
    return keras.Model(inputs, head(encoder(inputs)), name=f"{head.name}_tabular")


def floor_variance(model: keras.Model, floor: float = 1e-6) -> None:
    """Give the adapted ``Normalization`` layers of ``model`` a variance of 1 where training saw none (a one-hot
    slot never on in training, such as the unknown-value slot, would otherwise be scaled by 1/epsilon)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and getattr(layer, "adapt_variance", None) is not None:
            variance = np.asarray(layer.adapt_variance)
            layer.adapt_variance.assign(np.where(variance < floor, 1.0, variance).astype(variance.dtype))
            layer.finalize_state()


def encoder_of(model: keras.Model) -> TabularEncoder | None:
    """The model's ``TabularEncoder`` when it takes a table's cells, else None."""
    return next((layer for layer in model.layers if isinstance(layer, TabularEncoder)), None)


def head_of(model: keras.Model) -> keras.Model:
    """The model after its encoder (what takes the encoded numbers)."""
    layers = list(model.layers)
    encoder = encoder_of(model)
    after = layers[layers.index(encoder) + 1 :] if encoder is not None else []
    if len(after) != 1 or not isinstance(after[0], keras.Model):
        raise ValueError("a table model is its encoder followed by one model")
    return after[0]


def encode(model: keras.Model, cells: np.ndarray) -> np.ndarray:
    """Rows of cells as the model's encoder turns them into numbers."""
    encoder = encoder_of(model)
    if encoder is None:
        raise ValueError("the model has no TabularEncoder")
    rows = np.asarray(cells, dtype=object).astype(str).reshape(-1, len(encoder.columns))
    return np.asarray(encoder(tf.constant(rows)), dtype=np.float32)


def report(encoder: TabularEncoder, schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per feature column what training found and does: its type, missing cells in the table, how a missing
    cell is imputed, and a categorical column's vocabulary size (without the missing and unknown slots)."""
    missing = {entry["name"]: int(entry.get("missing", 0)) for entry in schema}
    rows = []
    for c in encoder.columns:
        row: dict[str, Any] = {"name": c["name"], "type": c["type"], "missing": missing.get(c["name"], 0)}
        if c["type"] == "numeric":
            row["imputation"] = "mean" + (" + missing indicator" if c["indicator"] else "")
            row["mean"] = round(float(c["mean"]), 6)
        else:
            row["imputation"] = "missing category"
            row["vocabulary_size"] = len(c["vocabulary"]) - 1
        rows.append(row)
    return rows
