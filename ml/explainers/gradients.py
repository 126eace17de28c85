"""Integrated gradients and SmoothGrad: every point of every input in batched gradient calls."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ml.explainers.common import relative_gaps, totals
from ml.explainers.views import Forward, View

MAX_STEPS = 1024
MAX_SAMPLES = 1024


def gradients(forward: Forward, points: np.ndarray, targets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """d output[target] / d point at each point, in one gradient call."""
    inputs = tf.convert_to_tensor(points)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = forward(inputs, rows)
        chosen = tf.gather(outputs, tf.convert_to_tensor(targets), axis=1, batch_dims=1)
    return tape.gradient(chosen, inputs).numpy()


def _chunks(total: int, batch_size: int) -> list[np.ndarray]:
    return [np.arange(start, min(start + batch_size, total)) for start in range(0, total, batch_size)]


def integrated(
    view: View, predictions: np.ndarray, targets: np.ndarray, steps: int, batch_size: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Integrated gradients (midpoint Riemann sum) from each baseline to its input; attributions per input
    (reduced by the view) and each input's completeness gap."""
    n, shape = len(view.x), view.x.shape[1:]
    alphas = ((np.arange(steps, dtype=np.float64) + 0.5) / steps).astype(np.float32)
    deltas = view.x - view.baseline
    # The (n * steps) interpolation points, flat and input-major, made chunk by chunk to bound memory.
    grad_sums = np.zeros((n, *shape), dtype=np.float64)
    for flat in _chunks(n * steps, batch_size):
        rows, cols = np.divmod(flat, steps)
        points = view.baseline[rows] + alphas[cols].reshape(-1, *[1] * len(shape)) * deltas[rows]
        grads = gradients(view.forward, points, targets[rows], rows)
        present, first = np.unique(rows, return_index=True)
        grad_sums[present] += np.add.reduceat(grads.astype(np.float64), first, axis=0)
    raw = (deltas * (grad_sums / steps)).astype(np.float32)
    attributions = [view.reduce(raw[i], i) for i in range(n)]
    base_out = np.asarray(view.forward(tf.constant(view.baseline), np.arange(n)))
    difference = predictions[np.arange(n), targets] - base_out[np.arange(n), targets]
    return attributions, relative_gaps(totals(attributions), difference)


def smooth(
    view: View, targets: np.ndarray, samples: int, noise: float, seed: int, batch_size: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """SmoothGrad: the gradient averaged over ``samples`` copies of each input with Gaussian noise of
    ``noise`` times the input's value range, times (input - baseline); attributions per input and each
    input's relative standard error (the Monte Carlo error of the average against its size)."""
    n, shape = len(view.x), view.x.shape[1:]
    flat_x = view.x.reshape(n, -1)
    sigma = noise * np.maximum(flat_x.max(axis=1) - flat_x.min(axis=1), 1e-6)
    rng = np.random.default_rng(seed)
    deltas = view.x - view.baseline
    first = np.zeros((n, *shape), dtype=np.float64)
    second = np.zeros((n, *shape), dtype=np.float64)
    for flat in _chunks(n * samples, batch_size):
        rows = flat // samples
        scale = sigma[rows].reshape(-1, *[1] * len(shape)).astype(np.float32)
        points = view.x[rows] + scale * rng.standard_normal((len(rows), *shape)).astype(np.float32)
        terms = gradients(view.forward, points, targets[rows], rows).astype(np.float64) * deltas[rows]
        present, starts = np.unique(rows, return_index=True)
        first[present] += np.add.reduceat(terms, starts, axis=0)
        second[present] += np.add.reduceat(terms**2, starts, axis=0)
    mean = first / samples
    attributions = [view.reduce(mean[i].astype(np.float32), i) for i in range(n)]
    variance = np.maximum(second / samples - mean**2, 0.0)
    stderr = np.sqrt(variance.reshape(n, -1).sum(axis=1) / samples)
    norms = np.linalg.norm(mean.reshape(n, -1), axis=1)
    return attributions, stderr / np.maximum(norms, 1e-12)
