"""Inference: safe loading of ``.keras`` models, a per-process cache, input checks, batched calls."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from threading import Lock
from typing import Any

import keras
import numpy as np

from tensorq.errors import InvalidRequest

_cache: OrderedDict[tuple[str, float], keras.Model] = OrderedDict()
_cache_size = 8
_lock = Lock()


def set_cache_size(n: int) -> None:
    """How many loaded models this process keeps."""
    global _cache_size
    _cache_size = max(1, n)


def load_model(path: str | Path) -> keras.Model:
    """A ``.keras`` model loaded with ``safe_mode=True``, from this process's LRU cache when there."""
    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidRequest("only .keras model files are loaded")
    if not path.is_file():
        raise InvalidRequest("the model file is missing")
    key = (str(path.resolve()), path.stat().st_mtime)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model = keras.models.load_model(path, safe_mode=True, compile=False)
    with _lock:
        _cache[key] = model
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)
    return model


def input_signature(model: keras.Model) -> dict[str, Any]:
    """The model's input shape (without the batch axis) and dtype."""
    return {"input_shape": list(model.input_shape[1:]), "dtype": "float32"}


def coerce_inputs(model: keras.Model, inputs: Any) -> np.ndarray:
    """``inputs`` as a float32 batch the model takes; a single example gets a batch axis."""
    want = list(model.input_shape[1:])
    try:
        x = np.asarray(inputs, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidRequest(
            "inputs must be a rectangular array of numbers", details={"expected_shape": ["batch", *want]}
        ) from None
    if not np.all(np.isfinite(x)):
        raise InvalidRequest("inputs contain NaN or infinite values")

    def fits(shape: list[int]) -> bool:
        return len(shape) == len(want) and all(w is None or s == w for s, w in zip(shape, want, strict=True))

    got = list(x.shape)
    if fits(got[1:]):
        return x
    if want and want[-1] == 1 and fits([*got[1:], 1]):
        return x[..., None]
    if fits(got):
        return x[None, ...]
    if want and want[-1] == 1 and fits([*got, 1]):
        return x[None, ..., None]
    raise InvalidRequest(
        f"input shape {got} does not match the model's input shape {want}",
        details={"expected_shape": ["batch", *want], "got_shape": got},
    )


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs on ``x``, calling it directly on batches (no ``model.predict`` retracing)."""
    outputs = [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs) if outputs else np.empty((0,), dtype=np.float32)
