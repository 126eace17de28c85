"""A classifier trained on a table streamed in chunks (``ml.table_stream``) instead of loaded whole.

One pass over the table finds every column's type (as the in-memory loader infers it, from every row), the
labels, and the training rows' figures: each numeric column's mean and variance, each categorical column's
values and their counts. From them come the table encoder's statistics and vocabularies, and the ``Normalization``
after it (its mean and variance over the encoded training rows follow from the same counts, no second pass).
Each epoch then reads the table again through ``tf.data``: rows are held out by a hash of their position
(``ml.table_stream.held_out``), and the training rows pass through a shuffle buffer (``SHUFFLE_ROWS`` rows or
``SHUFFLE_BYTES``, whichever is fewer, and at least a batch), each full buffer permuted and handed on in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pyarrow as pa
import tensorflow as tf

from ml import builders
from ml.datasets import Dataset
from ml.encoding import MISSING_SLOT, TabularEncoder, floor_variance, wrap
from ml.table_stream import TableScan, TableStream, chunks, class_counts, feature_matrix, held_out, label_ids, scan
from ml.tasks.classify import class_weights
from tensorq.core.errors import InvalidRequest

SHUFFLE_ROWS = 65_536  # the training rows buffered and permuted at once, at most
SHUFFLE_BYTES = 8 * 1024 * 1024  # ... and at most about this many bytes of them (fewer rows for a wide table)
TRAIN, VALIDATION, TEST = 0, 1, 2
STREAMED_TASKS = ("classify",)


@dataclass
class StreamedTable:
    """A table scanned once, ready to build a model for and to read in batches per part."""

    stream: TableStream
    found: TableScan
    seed: int
    test: float
    validation: float
    num_classes: int

    @property
    def shape(self) -> Dataset:
        """An empty dataset with the table's feature columns, classes and dtype (what a checkpoint is checked
        against and the model's signature is drawn from)."""
        features = self.found.features
        dtype = object if self.found.mixed else np.float32
        return Dataset(
            np.empty((0, len(features)), dtype=dtype),
            np.empty(0, dtype=np.int64),
            "tabular",
            feature_names=[entry["name"] for entry in features],
            class_names=self.found.class_names,
            columns=list(features) if self.found.mixed else None,
        )

    def rows(self, part: int) -> int:
        """How many rows fall in ``part`` (TRAIN, VALIDATION or TEST)."""
        return self.found.parts[part]

    def build(self, architecture: str, params: dict[str, Any]) -> keras.Model:
        """The architecture's model for these rows: the table encoder (when the features need it) with the
        scanned statistics, then the model, its ``Normalization`` set from the same pass."""
        builder = builders.get(architecture)
        if not self.found.mixed:
            model = builder((len(self.found.features),), self.num_classes, params)
            mean, variance = self._numeric_moments()
            set_normalization(model, mean, variance)
            return model
        encoder = TabularEncoder(encoder_columns(self.found), name="encode")
        head = builder((encoder.width,), self.num_classes, params)
        set_normalization(head, *encoded_moments(encoder, self.found))
        floor_variance(head)
        return wrap(encoder, head)

    def _numeric_moments(self) -> tuple[np.ndarray, np.ndarray]:
        stats = [self.found.stats[entry["name"]].moments for entry in self.found.features]
        return np.asarray([m.mean for m in stats]), np.asarray([m.variance for m in stats])

    def fit_options(self, class_weight: str | dict[str, Any] | None) -> dict[str, Any]:
        """``class_weight`` for ``fit`` ("balanced" from the scanned label counts)."""
        if class_weight is None:
            return {}
        if class_weight != "balanced":
            return {"class_weight": class_weights(class_weight, np.zeros(0, dtype=np.int64), self.num_classes)}
        counts = class_counts(self.found).astype(np.float64)
        weights = np.ones(self.num_classes)
        present = counts > 0
        weights[: len(counts)][present] = counts.sum() / (present.sum() * counts[present])
        return {"class_weight": {c: float(w) for c, w in enumerate(weights)}}

    def batches(self, part: int, batch_size: int, shuffle_seed: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The rows of ``part`` as (x, class ids) batches of ``batch_size`` rows (the last one less), shuffled
        through the buffer when ``shuffle_seed``."""
        label = self.stream.label_column
        assert label is not None
        names = [entry["name"] for entry in self.found.features]
        rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
        held: list[tuple[np.ndarray, np.ndarray]] = []
        row_bytes = 4 * len(names) if not self.found.mixed else 64 * len(names)
        buffer_rows = max(batch_size, min(SHUFFLE_ROWS, SHUFFLE_BYTES // max(row_bytes, 1)))
        buffered = offset = 0
        for batch in chunks(self.stream.path, self.stream.fmt, [*names, label]):
            parts = held_out(offset, batch.num_rows, self.seed, self.test, self.validation)
            offset += batch.num_rows
            chosen = batch.filter(pa.array(parts == part))
            if not chosen.num_rows:
                continue
            x = feature_matrix(chosen, self.found.features, self.found.mixed)
            y = label_ids(chosen.column(chosen.schema.names.index(label)), self.found.class_names)
            held.append((x, y))
            buffered += len(y)
            if buffered >= (buffer_rows if rng is not None else batch_size):
                x, y = _permuted(held, rng)
                whole = len(y) - len(y) % batch_size
                yield from _sliced(x[:whole], y[:whole], batch_size)
                held, buffered = [(x[whole:], y[whole:])], len(y) - whole
        if buffered:
            x, y = _permuted(held, rng)
            yield from _sliced(x, y, batch_size)

    def dataset(self, part: int, batch_size: int, shuffle: bool) -> tf.data.Dataset:
        """``batches`` of ``part`` as a ``tf.data`` dataset read afresh each epoch (a new shuffle each time)."""
        epochs = iter(range(1 << 30))

        def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            seed = self.seed * 1_000_003 + next(epochs) if shuffle else None
            yield from self.batches(part, batch_size, seed)

        width = len(self.found.features)
        dtype = tf.string if self.found.mixed else tf.float32
        signature = (tf.TensorSpec((None, width), dtype), tf.TensorSpec((None,), tf.int64))
        batches = -(-self.rows(part) // batch_size)  # every batch is whole but the last
        dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(2)


def _sliced(x: np.ndarray, y: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(y), size):
        yield x[start : start + size], y[start : start + size]


def _permuted(
    held: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """The held rows as one block, in a random order when ``rng``."""
    x = np.concatenate([part[0] for part in held])
    y = np.concatenate([part[1] for part in held])
    if rng is None:
        return x, y
    order = rng.permutation(len(y))
    return x[order], y[order]


def plan(stream: TableStream, task_name: str, seed: int, test: float, validation: float) -> StreamedTable:
    """Scan ``stream`` once for a task that trains on it streamed (a classifier)."""
    if task_name not in STREAMED_TASKS:
        raise InvalidRequest(f"a {task_name} model trains on a table loaded whole, not streamed")
    if stream.label_column is None:
        raise InvalidRequest("a streamed table needs 'label_column'")
    found = scan(stream, seed, test, validation)
    counts = class_counts(found)
    if int((counts > 0).sum()) < 2:
        raise InvalidRequest("training needs at least two classes")
    if found.parts[TRAIN] == 0:
        raise InvalidRequest("no rows are left to train on", details={"rows": sum(found.parts)})
    return StreamedTable(stream, found, seed, test, validation, len(counts))


def set_normalization(model: keras.Model, mean: np.ndarray, variance: np.ndarray) -> None:
    """Give the model's unadapted ``Normalization`` layers the training rows' ``mean`` and ``variance`` (what
    ``adapt`` would find on them)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
            layer.adapt_mean.assign(np.asarray(mean, dtype="float32").reshape(layer.adapt_mean.shape))
            layer.adapt_variance.assign(np.asarray(variance, dtype="float32").reshape(layer.adapt_variance.shape))
            layer.finalize_state()


def encoder_columns(found: TableScan) -> list[dict[str, Any]]:
    """The table encoder's columns from the scanned training rows (as ``ml.encoding.fit_encoder`` finds them)."""
    columns = []
    for entry in found.features:
        stats = found.stats[entry["name"]]
        if entry["type"] == "numeric":
            moments = stats.moments
            std = float(np.sqrt(moments.variance)) if moments.count else 1.0
            columns.append(
                {
                    "name": entry["name"],
                    "type": "numeric",
                    "mean": moments.mean if moments.count else 0.0,
                    "std": std if std > 1e-12 else 1.0,
                    "indicator": moments.count < stats.rows,
                }
            )
        else:
            vocabulary = sorted(stats.counts)
            columns.append({"name": entry["name"], "type": "categorical", "vocabulary": [MISSING_SLOT, *vocabulary]})
    return columns


def encoded_moments(encoder: TabularEncoder, found: TableScan) -> tuple[np.ndarray, np.ndarray]:
    """The mean and variance of each number the encoder makes of the training rows, from the scanned counts:
    a scaled column's mean is 0 (a missing cell becomes the mean), an indicator's or a one-hot slot's is the
    share of rows it is on in."""
    mean = np.zeros(encoder.width)
    variance = np.zeros(encoder.width)
    for column, span in zip(encoder.columns, encoder.positions(), strict=True):
        stats = found.stats[column["name"]]
        rows = max(stats.rows, 1)
        if column["type"] == "numeric":
            present = stats.moments.count / rows
            variance[span[0]] = present * stats.moments.variance / float(column["std"]) ** 2
            if column["indicator"]:
                mean[span[1]] = 1.0 - present
                variance[span[1]] = present * (1.0 - present)
            continue
        shares = [0.0, 1.0 - sum(stats.counts.values()) / rows]  # the unknown slot, the missing slot
        shares += [stats.counts[value] / rows for value in column["vocabulary"][1:]]
        mean[span] = shares
        variance[span] = [share * (1.0 - share) for share in shares]
    return mean, variance
