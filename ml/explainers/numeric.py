"""Explanations of a model of numbers (any input but text and table cells): the gradient methods
(``integrated_gradients``, ``smoothgrad``) and the perturbation methods (``occlusion``, ``kernel_shap``,
``gradient_shap``, ``lime``) on arrays, each result with its method's quality figure (``QUALITY``).

``ml.explain`` chooses among them by name (and explains text its own way); ``ml.explainers.table`` runs the
gradient methods on a table model's encoded numbers.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ml.explainers import gradients, occlusion, shapley, surrogate, units, views
from ml.explainers.common import (
    Explanation,
    background_rows,
    baseline_row,
    choose_targets,
    relative_gaps,
    totals,
)
from ml.validation import check_float, check_int
from tensorq.core.errors import InvalidRequest

MAX_STEPS = gradients.MAX_STEPS
MAX_WINDOW = 4096
QUALITY = {
    "integrated_gradients": "completeness_gap",
    "smoothgrad": "relative_stderr",
    "occlusion": "additivity_gap",
    "kernel_shap": "additivity_gap",
    "gradient_shap": "additivity_gap",
    "lime": "local_fit_r2",
}


def result(
    method: str, attributions: Any, targets: np.ndarray, predictions: np.ndarray, per_input: Any, **extras: Any
) -> Explanation:
    """The explanation of ``method``: its attributions, targets and predictions, its quality figure (the worst
    input's ``per_input`` figure) and its ``extras``."""
    per_input = [float(v) for v in per_input]
    worst = min(per_input) if method == "lime" else max(per_input)
    stacked = attributions if extras.get("tokens") is not None else np.stack(attributions).astype(np.float32)
    return Explanation(
        attributions=stacked,
        targets=[int(t) for t in targets],
        predictions=predictions,
        method=method,
        quality={QUALITY[method]: float(worst)},
        per_input_quality=per_input,
        extras=extras,
    )


def check_batch(x: np.ndarray) -> np.ndarray:
    """``x`` as a non-empty float32 batch; InvalidRequest otherwise."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise InvalidRequest("x must be a non-empty batch of inputs")
    return x


def predictions_of(model: keras.Model, x: Any) -> np.ndarray:
    """The classifier's class probabilities of ``x``; InvalidRequest for a model that is not a classifier."""
    predictions = units.score(model, x)
    if predictions.ndim != 2 or predictions.shape[1] < 2:
        raise InvalidRequest(
            "explanations are for classifiers: a model whose output is one probability per class",
            details={"output_shape": list(predictions.shape[1:])},
        )
    return predictions


def window(shape: tuple[int, ...], size: int | None, stride: int | None) -> tuple[int, int]:
    """The occlusion window and stride over inputs of ``shape`` (defaults: ``units.default_window``, no overlap)."""
    size = units.default_window(shape) if size is None else check_int("window", size, 1, MAX_WINDOW)
    stride = size if stride is None else check_int("stride", stride, 1, MAX_WINDOW)
    return size, stride


def integrated_gradients(
    model: keras.Model,
    x: np.ndarray,
    target: int | list[int] | None = None,
    steps: int = 64,
    baseline: str | np.ndarray = "zeros",
    batch_size: int = 4096,
) -> Explanation:
    """Integrated gradients of a model of numbers (see ``ml.explain.integrated_gradients``)."""
    steps = check_int("steps", steps, 1, MAX_STEPS)
    batch_size = check_int("batch_size", batch_size, 1, 2**31)
    x = check_batch(x)
    view = views.numeric(model, x, baseline_row(x, baseline))
    predictions = np.asarray(model(x, training=False))
    targets = choose_targets(predictions, target)
    attributions, gaps = gradients.integrated(view, predictions, targets, steps, batch_size)
    return result("integrated_gradients", attributions, targets, predictions, gaps)


def smoothgrad(
    model: keras.Model,
    x: np.ndarray,
    target: int | list[int] | None = None,
    samples: int = 32,
    noise: float = 0.15,
    baseline: str | np.ndarray = "zeros",
    seed: int = 0,
    batch_size: int = 4096,
) -> Explanation:
    """SmoothGrad of a model of numbers (see ``ml.explain.smoothgrad``)."""
    samples = check_int("samples", samples, 1, gradients.MAX_SAMPLES)
    noise = check_float("noise", noise, 0.0, 1.0)
    x = check_batch(x)
    view = views.numeric(model, x, baseline_row(x, baseline))
    predictions = np.asarray(model(x, training=False))
    targets = choose_targets(predictions, target)
    attributions, errors = gradients.smooth(view, targets, samples, noise, seed, batch_size)
    return result("smoothgrad", attributions, targets, predictions, errors)


def gradient_shap(
    model: keras.Model, x: np.ndarray, target: Any, baseline: Any, options: dict[str, Any]
) -> Explanation:
    """GradientSHAP against the background rows (``options``: ``background``, ``nsamples``, ``seed``)."""
    x = check_batch(x)
    baseline_row(x, baseline)  # checked as for every method, even when background rows are given
    predictions = predictions_of(model, x)
    targets = choose_targets(predictions, target)
    background = background_rows(x, baseline, options.get("background"))
    nsamples = options.get("nsamples") or shapley.GRADIENT_SHAP_DEFAULT
    values, expected = shapley.gradient_values(model, x, background, targets, nsamples, options["seed"])
    gaps = relative_gaps(totals(list(values)), predictions[np.arange(len(x)), targets] - expected)
    return result("gradient_shap", list(values), targets, predictions, gaps, expected_values=expected.tolist())


def perturbation(
    model: keras.Model, x: np.ndarray, method: str, target: Any, baseline: Any, options: dict[str, Any]
) -> Explanation:
    """``kernel_shap``, ``gradient_shap``, ``occlusion`` or ``lime`` on a batch of numbers (``options``:
    ``window``, ``stride``, ``nsamples``, ``background``, ``seed``)."""
    if method == "gradient_shap":
        return gradient_shap(model, x, target, baseline, options)
    x = check_batch(x)
    shape = tuple(x.shape[1:])
    base = baseline_row(x, baseline)
    predictions = predictions_of(model, x)
    targets = choose_targets(predictions, target)
    seed = options["seed"]
    if method == "kernel_shap":
        background = background_rows(x, baseline, options.get("background"))
        values, expected = shapley.kernel_values(model, x, background, targets, options.get("nsamples"), seed)
        gaps = relative_gaps(totals(list(values)), predictions[np.arange(len(x)), targets] - expected)
        return result(method, list(values), targets, predictions, gaps, expected_values=expected.tolist())
    size, stride = window(shape, options.get("window"), options.get("stride"))
    empty = units.score(model, base[None])[0]
    attributions, quality = [], []
    for i in range(len(x)):
        parts = units.numeric_units(x[i], base)
        if method == "occlusion":
            masks = units.windows(shape, size, stride)
            full = float(predictions[i, targets[i]])
            per_unit, gap = occlusion.occlude(model, parts, masks, targets[i], full, float(empty[targets[i]]))
            attributions.append(units.spread(per_unit, shape))
            quality.append(gap)
        else:
            nsamples = options.get("nsamples") or surrogate.LIME_DEFAULT
            per_unit, r2 = surrogate.lime_values(model, parts, units.patches(shape, size), targets[i], nsamples, seed)
            attributions.append(units.spread(per_unit, shape))
            quality.append(r2)
    return result(method, attributions, targets, predictions, quality)
