"""Explanations: integrated gradients, every interpolation step of every input in batched gradient calls."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml.catalog import EXPLAIN_METHODS
from tensorq.errors import InvalidRequest, OutOfRange

MAX_STEPS = 1024
# The completeness gap is relative to |f(x)[t] - f(baseline)[t]|, a difference of probabilities; below this
# floor that difference is float32 noise (an input the baseline already scores alike), not a scale to divide by.
GAP_FLOOR = 1e-3


@dataclass
class Explanation:
    """Attributions of the inputs' shape, the explained classes, the predictions and the method's quality."""

    attributions: np.ndarray
    targets: list[int]
    predictions: np.ndarray
    method: str
    quality: dict[str, float]
    per_input_gap: list[float]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _baseline(x: np.ndarray, baseline: str | np.ndarray) -> np.ndarray:
    """The baseline input: "zeros", "mean" (of the inputs) or an array of one input's shape."""
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros(x.shape[1:], dtype=np.float32)
        if baseline == "mean":
            return x.mean(axis=0, dtype=np.float64).astype(np.float32)
        raise InvalidRequest("baseline must be 'zeros', 'mean' or an input-shaped array")
    try:
        base = np.asarray(baseline, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidRequest("baseline must be 'zeros', 'mean' or an input-shaped array of numbers") from None
    if base.shape != x.shape[1:]:
        raise InvalidRequest(
            "baseline shape does not match the inputs",
            details={"expected_shape": list(x.shape[1:]), "got_shape": list(base.shape)},
        )
    if not np.all(np.isfinite(base)):
        raise InvalidRequest("baseline contains NaN or infinite values")
    return base


def _targets(predictions: np.ndarray, target: int | list[int] | None) -> np.ndarray:
    """One class per input: the given one(s), or the predicted class."""
    n, classes = predictions.shape
    if target is None:
        return predictions.argmax(axis=1).astype(np.int64)
    chosen = [target] * n if _is_int(target) else target
    if not isinstance(chosen, list | tuple | np.ndarray) or len(chosen) != n or not all(_is_int(t) for t in chosen):
        raise InvalidRequest("target must be a class index or one class index per input", details={"classes": classes})
    result = np.asarray(chosen, dtype=np.int64)
    if result.min() < 0 or result.max() >= classes:
        message = f"target must be a class index below {classes}"
        raise OutOfRange(message, details={"field": "target", "classes": classes})
    return result


def _gradients(model: keras.Model, points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d output[target] / d input at each point, in one gradient call."""
    inputs = tf.convert_to_tensor(points)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = model(inputs, training=False)
        chosen = tf.gather(outputs, tf.convert_to_tensor(targets), axis=1, batch_dims=1)
    return tape.gradient(chosen, inputs).numpy()


def integrated_gradients(
    model: keras.Model,
    x: np.ndarray,
    target: int | list[int] | None = None,
    steps: int = 64,
    baseline: str | np.ndarray = "zeros",
    batch_size: int = 4096,
) -> Explanation:
    """Integrated gradients (midpoint Riemann sum) from ``baseline`` to each input, for its target class.

    ``quality["completeness_gap"]`` is the largest ``|sum(attributions) - (f(x)[t] - f(baseline)[t])|``
    relative to ``max(|f(x)[t] - f(baseline)[t]|, GAP_FLOOR)`` over the inputs; ``per_input_gap`` lists each.
    """
    if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
        raise OutOfRange(f"steps must be an integer in 1..{MAX_STEPS}", details={"field": "steps"})
    if not _is_int(batch_size) or batch_size < 1:
        raise OutOfRange("batch_size must be an integer >= 1", details={"field": "batch_size"})
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise InvalidRequest("x must be a non-empty batch of inputs")
    base = _baseline(x, baseline)
    predictions = np.asarray(model(x, training=False))
    targets = _targets(predictions, target)
    n, feature_shape = len(x), x.shape[1:]
    alphas = ((np.arange(steps, dtype=np.float64) + 0.5) / steps).astype(np.float32)
    deltas = x - base
    # The (n * steps) interpolation points, flat and input-major, made chunk by chunk to bound memory.
    grad_sums = np.zeros((n, *feature_shape), dtype=np.float64)
    total = n * steps
    for start in range(0, total, batch_size):
        rows, cols = np.divmod(np.arange(start, min(start + batch_size, total)), steps)
        points = base + alphas[cols].reshape(-1, *[1] * len(feature_shape)) * deltas[rows]
        grads = _gradients(model, points, targets[rows])
        present, first = np.unique(rows, return_index=True)
        grad_sums[present] += np.add.reduceat(grads.astype(np.float64), first, axis=0)
    attributions = (deltas * (grad_sums / steps)).astype(np.float32)
    base_out = np.asarray(model(base[None], training=False))[0]
    difference = predictions[np.arange(n), targets] - base_out[targets]
    sums = attributions.reshape(n, -1).sum(axis=1, dtype=np.float64)
    gaps = np.abs(sums - difference) / np.maximum(np.abs(difference), GAP_FLOOR)
    return Explanation(
        attributions=attributions,
        targets=targets.tolist(),
        predictions=predictions,
        method="integrated_gradients",
        quality={"completeness_gap": float(gaps.max())},
        per_input_gap=[float(g) for g in gaps],
    )


def explain(
    model: keras.Model,
    x: np.ndarray,
    method: str,
    target: int | list[int] | None = None,
    steps: int = 64,
    baseline: str | np.ndarray = "zeros",
) -> Explanation:
    """Run the named explanation method; an unknown one is a 400 listing the known ones."""
    if method not in EXPLAIN_METHODS:
        known = list(EXPLAIN_METHODS)
        raise InvalidRequest(f"unknown method '{method}'; known: {', '.join(known)}", details={"known": known})
    return integrated_gradients(model, x, target=target, steps=steps, baseline=baseline)
