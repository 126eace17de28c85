"""Inference: safe loading of ``.keras`` models, a per-process cache, input checks, batched calls."""

from __future__ import annotations

import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from threading import Lock
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import ml.custom_objects  # noqa: F401 - registers TensorQ's own Keras classes before any load
from ml.budget import PREDICT_BATCH
from ml.encoding import encoder_of
from ml.tabular import row_cells
from ml.validation import input_layout, shape_mismatch
from tensorq.core.errors import InvalidRequest, OutOfRange

MAX_TEXT_CHARS = 100_000

_cache: OrderedDict[tuple[str, int, int], keras.Model] = OrderedDict()
_cache_size = 8
_lock = Lock()
# One traced serving function per live model, keyed by id(model) and dropped when the model is.
_serving: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {}


def set_cache_size(n: int) -> None:
    """How many loaded models this process keeps (at least 1); the least recently used go first."""
    global _cache_size
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OutOfRange("the model cache size must be an integer >= 1", details={"field": "cache_size"})
    with _lock:
        _cache_size = n
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)


def clear_cache() -> None:
    """Forget every cached model."""
    with _lock:
        _cache.clear()


def load_model(path: str | Path) -> keras.Model:
    """A ``.keras`` model loaded with ``safe_mode=True``, from this process's LRU cache when there."""
    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidRequest("only .keras model files are loaded", details={"path": path.name})
    if not path.is_file():
        raise InvalidRequest("the model file is missing", details={"path": path.name})
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as exc:  # unsafe or not a Keras model
        raise InvalidRequest(f"the model file cannot be loaded safely: {exc}", details={"path": path.name}) from None
    with _lock:
        _cache[key] = model
        _cache.move_to_end(key)
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)
    return model


def _input_shape(model: keras.Model) -> list[int | None]:
    """The model's input shape without the batch axis."""
    return list(model.input_shape[1:])


def takes_strings(model: keras.Model) -> bool:
    """Whether the model's input is strings (text, or the recommender's id pairs)."""
    return getattr(model.inputs[0], "dtype", "float32") == "string"


def input_signature(model: keras.Model) -> dict[str, Any]:
    """The model's input shape (without the batch axis) and dtype."""
    return {"input_shape": _input_shape(model), "dtype": "string" if takes_strings(model) else "float32"}


def coerce_texts(inputs: Any) -> np.ndarray:
    """``inputs`` (a string or a list of strings) as an object array of strings, each bounded in length."""
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list | tuple | np.ndarray) or len(texts) == 0:
        raise InvalidRequest("a text model takes a string or a non-empty list of strings")
    if not all(isinstance(t, str | np.str_) for t in texts):
        raise InvalidRequest("a text model takes strings only", details={"expected_shape": ["batch"]})
    if any(len(t) > MAX_TEXT_CHARS for t in texts):
        raise OutOfRange(f"each text may have at most {MAX_TEXT_CHARS} characters", details={"field": "inputs"})
    return np.asarray([str(t) for t in texts], dtype=object)


def coerce_inputs(model: keras.Model, inputs: Any) -> np.ndarray:
    """``inputs`` as a batch the model takes: float32, a single example with a batch axis, (H, W) with a
    channel; strings for a text model; rows of cells (strings, "" when missing) for a table model."""
    encoder = encoder_of(model)
    if encoder is not None:
        if isinstance(inputs, np.ndarray) and inputs.dtype == object and inputs.ndim == 2:
            return inputs  # a table's cells, read and checked by ml.datasets.load_columns
        rows = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
        return np.asarray(row_cells(rows, encoder.columns), dtype=object)
    if takes_strings(model) and _input_shape(model) in ([], [1]):
        texts = coerce_texts(inputs)
        return texts if _input_shape(model) == [] else texts.reshape(-1, 1)
    return _numeric_batch(inputs, _input_shape(model))


def _numeric_batch(inputs: Any, want: list[int | None]) -> np.ndarray:
    """Numeric ``inputs`` as a float32 batch of shape ``want`` (a batch axis or a channel added where missing);
    anything else, an empty batch, or NaN and infinities is an InvalidRequest."""
    expected = ["batch", *want]
    try:
        array = np.asarray(inputs)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise InvalidRequest("inputs must be a rectangular array of numbers", details={"expected_shape": expected})
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32 becomes inf, refused below
        x = array.astype(np.float32, copy=False)
    got = list(x.shape)
    layout = input_layout(got, want)
    if layout is None:
        raise shape_mismatch(got, want)
    add_batch, add_channel = layout
    if add_channel:
        x = x[..., None]
    if add_batch:
        x = x[None, ...]
    if len(x) == 0:
        raise InvalidRequest("inputs are empty", details={"expected_shape": expected, "got_shape": got})
    # Integers and booleans always fit float32's range: only floats need the (full-pass) check.
    if array.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise InvalidRequest("inputs contain NaN or infinite values (or numbers too large for float32)")
    return x


def _serving_fn(model: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """A ``tf.function`` calling ``model`` in inference mode, traced once for any batch size."""
    key = id(model)
    fn = _serving.get(key)
    if fn is None:
        ref = weakref.ref(model)  # the function must not keep an evicted model alive

        def call(batch: tf.Tensor) -> tf.Tensor:
            return ref()(batch, training=False)

        dtype = tf.string if takes_strings(model) else tf.float32
        spec = tf.TensorSpec([None, *_input_shape(model)], dtype)
        fn = tf.function(call, input_signature=[spec], reduce_retracing=True)
        _serving[key] = fn
        weakref.finalize(model, _serving.pop, key, None)
    return fn


def predict(model: keras.Model, x: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """The model's outputs on ``x``, calling it directly on batches (no ``model.predict`` leaks or retracing)."""
    if batch_size < 1:
        raise OutOfRange("batch_size must be >= 1", details={"field": "batch_size"})
    strings = takes_strings(model)
    x = np.asarray(x, dtype=object).astype(str) if strings else np.asarray(x, dtype=np.float32)
    if strings and x.ndim == 1 and _input_shape(model) == [1]:
        x = x[:, None]
    fn = _serving_fn(model)
    outputs = [fn(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    if not outputs:
        return np.empty((0, *model.output_shape[1:]), dtype=np.float32)
    return np.concatenate(outputs)
