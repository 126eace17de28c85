"""Explanations: integrated gradients, every interpolation step in batched gradient calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ml.catalog import EXPLAIN_METHODS
from tensorq.errors import InvalidRequest, OutOfRange


@dataclass
class Explanation:
    """Attributions of the inputs' shape, the explained classes and the method's quality figure."""

    attributions: np.ndarray
    targets: list[int]
    predictions: np.ndarray
    method: str
    quality: dict[str, float]
    per_input_gap: list[float]


def _baseline(x: np.ndarray, baseline: str | np.ndarray) -> np.ndarray:
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros_like(x[0])
        if baseline == "mean":
            return x.mean(axis=0)
        raise InvalidRequest("baseline must be 'zeros', 'mean' or an input-shaped array")
    base = np.asarray(baseline, dtype=np.float32)
    if base.shape != x.shape[1:]:
        raise InvalidRequest(
            "baseline shape does not match the inputs",
            details={"expected_shape": list(x.shape[1:]), "got_shape": list(base.shape)},
        )
    return base


def _targets(predictions: np.ndarray, target: int | list[int] | None) -> np.ndarray:
    n, classes = predictions.shape
    if target is None:
        return predictions.argmax(axis=1)
    chosen = np.full(n, target) if isinstance(target, int) else np.asarray(target)
    if chosen.shape != (n,) or chosen.min() < 0 or chosen.max() >= classes:
        raise InvalidRequest(f"target must be a class index below {classes}", details={"classes": classes})
    return chosen.astype(np.int64)


def integrated_gradients(
    model: tf.keras.Model,
    x: np.ndarray,
    target: int | list[int] | None = None,
    steps: int = 64,
    baseline: str | np.ndarray = "zeros",
    batch_size: int = 4096,
) -> Explanation:
    """Integrated gradients (midpoint Riemann sum) from ``baseline`` to each input, for its target class."""
    if not 1 <= steps <= 1024:
        raise OutOfRange("steps must be between 1 and 1024", details={"field": "steps"})
    x = np.asarray(x, dtype=np.float32)
    base = _baseline(x, baseline).astype(np.float32)
    predictions = np.asarray(model(x, training=False))
    targets = _targets(predictions, target)
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    n, feature_shape = len(x), x.shape[1:]
    # Every (input, step) point in one flat batch, chunked only to bound memory.
    deltas = x - base
    points = base[None, None] + alphas.reshape(1, steps, *[1] * len(feature_shape)) * deltas[:, None]
    points = points.reshape(n * steps, *feature_shape)
    point_targets = np.repeat(targets, steps)
    grads = np.empty_like(points)
    for start in range(0, len(points), batch_size):
        grads[start : start + batch_size] = _gradients(
            model, points[start : start + batch_size], point_targets[start : start + batch_size]
        )
    mean_grads = grads.reshape(n, steps, *feature_shape).mean(axis=1)
    attributions = deltas * mean_grads
    base_out = np.asarray(model(np.repeat(base[None], n, axis=0), training=False))
    rows = np.arange(n)
    difference = predictions[rows, targets] - base_out[rows, targets]
    sums = attributions.reshape(n, -1).sum(axis=1)
    gaps = np.abs(sums - difference) / np.maximum(np.abs(difference), 1e-8)
    return Explanation(
        attributions=attributions,
        targets=targets.tolist(),
        predictions=predictions,
        method="integrated_gradients",
        quality={"completeness_gap": float(gaps.max())},
        per_input_gap=[float(g) for g in gaps],
    )


def _gradients(model: tf.keras.Model, points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    inputs = tf.convert_to_tensor(points)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = model(inputs, training=False)
        chosen = tf.gather(outputs, tf.convert_to_tensor(targets), axis=1, batch_dims=1)
    return tape.gradient(chosen, inputs).numpy()


def explain(
    model: tf.keras.Model,
    x: np.ndarray,
    method: str,
    target: int | list[int] | None = None,
    steps: int = 64,
    baseline: str | np.ndarray = "zeros",
) -> Explanation:
    """Run the named explanation method."""
    if method not in EXPLAIN_METHODS:
        raise InvalidRequest(f"unknown method '{method}'; known: {', '.join(EXPLAIN_METHODS)}")
    return integrated_gradients(model, x, target=target, steps=steps, baseline=baseline)
