"""Explanations: attributions for a classifier's inputs by name, each with the method's own quality figure.

Methods (``ml.catalog.EXPLAIN_METHODS``) and their quality figure:

- ``integrated_gradients``: ``completeness_gap``, |sum of attributions - (f(x) - f(baseline))| relative to
  the difference, the worst input.
- ``smoothgrad``: ``relative_stderr``, the Monte Carlo standard error of the averaged gradient against its size.
- ``occlusion``: ``additivity_gap``, how far the window drops add up to f(x) - f(baseline).
- ``kernel_shap``, ``gradient_shap``: ``additivity_gap``, |sum of SHAP values - (f(x) - E[f(background)])|
  relative to the difference.
- ``lime``: ``local_fit_r2``, the weighted R^2 of LIME's linear fit, the worst input.

The predicted class is explained unless ``target`` names one. Text models (one string per row) are
explained per word: gradient methods in the embedding space, the others by leaving words out. Models of a
table's cells (categorical columns, missing values) are explained per column (``ml.explainers.table``).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ml.catalog import EXPLAIN_METHODS
from ml.encoding import encoder_of
from ml.explainers import gradients, occlusion, shapley, surrogate, units, views
from ml.explainers.common import (
    Explanation,
    background_rows,
    baseline_row,
    choose_targets,
    relative_gaps,
    totals,
)
from ml.explainers.table import explain_table
from ml.inference import takes_strings
from ml.validation import check_float, check_int
from tensorq.errors import InvalidRequest, OutOfRange

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


__all__ = ["Explanation", "explain", "integrated_gradients", "rows_of"]


def _result(
    method: str, attributions: Any, targets: np.ndarray, predictions: np.ndarray, per_input: Any, **extras: Any
) -> Explanation:
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


def rows_of(explanation: Explanation, start: int, stop: int) -> Explanation:
    """The explanation of rows ``start:stop`` as if explained alone (a ``ml.catalog.PER_ROW_METHODS`` method):
    their attributions, targets, predictions and per-row extras, and the quality figure of their worst row."""
    per_input = explanation.per_input_quality[start:stop]
    (name,) = explanation.quality
    worst = min(per_input) if explanation.method == "lime" else max(per_input)
    rows = len(explanation.targets)
    extras = {k: v[start:stop] if isinstance(v, list) and len(v) == rows else v for k, v in explanation.extras.items()}
    return Explanation(
        attributions=explanation.attributions[start:stop],
        targets=explanation.targets[start:stop],
        predictions=explanation.predictions[start:stop],
        method=explanation.method,
        quality={name: float(worst)},
        per_input_quality=per_input,
        extras=extras,
    )


def _check_batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise InvalidRequest("x must be a non-empty batch of inputs")
    return x


def _predictions(model: keras.Model, x: Any) -> np.ndarray:
    predictions = units.score(model, x)
    if predictions.ndim != 2 or predictions.shape[1] < 2:
        raise InvalidRequest(
            "explanations are for classifiers: a model whose output is one probability per class",
            details={"output_shape": list(predictions.shape[1:])},
        )
    return predictions


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
    steps = check_int("steps", steps, 1, MAX_STEPS)
    batch_size = check_int("batch_size", batch_size, 1, 2**31)
    if takes_strings(model):
        return _text_gradients(model, x, "integrated_gradients", target, steps=steps, batch_size=batch_size)
    x = _check_batch(x)
    view = views.numeric(model, x, baseline_row(x, baseline))
    predictions = np.asarray(model(x, training=False))
    targets = choose_targets(predictions, target)
    attributions, gaps = gradients.integrated(view, predictions, targets, steps, batch_size)
    return _result("integrated_gradients", attributions, targets, predictions, gaps)


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
    """SmoothGrad times (input - baseline): the gradient averaged over ``samples`` noisy copies of each input."""
    samples = check_int("samples", samples, 1, gradients.MAX_SAMPLES)
    noise = check_float("noise", noise, 0.0, 1.0)
    if takes_strings(model):
        return _text_gradients(model, x, "smoothgrad", target, samples=samples, noise=noise, seed=seed)
    x = _check_batch(x)
    view = views.numeric(model, x, baseline_row(x, baseline))
    predictions = np.asarray(model(x, training=False))
    targets = choose_targets(predictions, target)
    attributions, errors = gradients.smooth(view, targets, samples, noise, seed, batch_size)
    return _result("smoothgrad", attributions, targets, predictions, errors)


def _text_gradients(model: keras.Model, texts: Any, method: str, target: Any, **options: Any) -> Explanation:
    texts = np.asarray(texts, dtype=object).reshape(-1)
    view, counts = views.text(model, texts)
    predictions = _predictions(model, texts)
    targets = choose_targets(predictions, target)
    if method == "integrated_gradients":
        attributions, quality = gradients.integrated(
            view, predictions, targets, options["steps"], options.get("batch_size", 4096)
        )
    else:
        attributions, quality = gradients.smooth(
            view, targets, options["samples"], options["noise"], options["seed"], 4096
        )
    words = [units.tokens(model, str(t))[:c] for t, c in zip(texts, counts, strict=True)]
    return _result(method, [a.astype(np.float32) for a in attributions], targets, predictions, quality, tokens=words)


def _window(shape: tuple[int, ...], window: int | None, stride: int | None) -> tuple[int, int]:
    window = units.default_window(shape) if window is None else check_int("window", window, 1, MAX_WINDOW)
    stride = window if stride is None else check_int("stride", stride, 1, MAX_WINDOW)
    return window, stride


def _numeric_perturbation(
    model: keras.Model, x: np.ndarray, method: str, target: Any, baseline: Any, options: dict[str, Any]
) -> Explanation:
    x = _check_batch(x)
    shape = tuple(x.shape[1:])
    base = baseline_row(x, baseline)
    predictions = _predictions(model, x)
    targets = choose_targets(predictions, target)
    seed = options["seed"]
    if method == "kernel_shap":
        background = background_rows(x, baseline, options.get("background"))
        values, expected = shapley.kernel_values(model, x, background, targets, options.get("nsamples"), seed)
        gaps = relative_gaps(totals(list(values)), predictions[np.arange(len(x)), targets] - expected)
        return _result(method, list(values), targets, predictions, gaps, expected_values=expected.tolist())
    if method == "gradient_shap":
        background = background_rows(x, baseline, options.get("background"))
        nsamples = options.get("nsamples") or shapley.GRADIENT_SHAP_DEFAULT
        values, expected = shapley.gradient_values(model, x, background, targets, nsamples, seed)
        difference = predictions[np.arange(len(x)), targets] - expected
        gaps = relative_gaps(totals(list(values)), difference)
        return _result(method, list(values), targets, predictions, gaps, expected_values=expected.tolist())
    window, stride = _window(shape, options.get("window"), options.get("stride"))
    empty = units.score(model, base[None])[0]
    attributions, quality = [], []
    for i in range(len(x)):
        parts = units.numeric_units(x[i], base)
        if method == "occlusion":
            masks = units.windows(shape, window, stride)
            full = float(predictions[i, targets[i]])
            per_unit, gap = occlusion.occlude(model, parts, masks, targets[i], full, float(empty[targets[i]]))
            attributions.append(units.spread(per_unit, shape))
            quality.append(gap)
        else:
            nsamples = options.get("nsamples") or surrogate.LIME_DEFAULT
            per_unit, r2 = surrogate.lime_values(model, parts, units.patches(shape, window), targets[i], nsamples, seed)
            attributions.append(units.spread(per_unit, shape))
            quality.append(r2)
    return _result(method, attributions, targets, predictions, quality)


def _text_perturbation(
    model: keras.Model, texts: Any, method: str, target: Any, options: dict[str, Any]
) -> Explanation:
    texts = np.asarray(texts, dtype=object).reshape(-1)
    predictions = _predictions(model, texts)
    targets = choose_targets(predictions, target)
    seed = options["seed"]
    attributions, quality, words_of, expected = [], [], [], []
    for i, text in enumerate(texts):
        words = units.tokens(model, str(text))
        words_of.append(words)
        if not words:
            attributions.append(np.zeros(0, dtype=np.float32))
            quality.append(1.0 if method == "lime" else 0.0)
            continue
        parts = units.text_units(words)
        t = int(targets[i])
        if method == "occlusion":
            window, stride = _window((len(words),), options.get("window"), options.get("stride"))
            empty = float(units.score(model, np.asarray([""], dtype=object))[0, t])
            values, q = occlusion.occlude(
                model, parts, units.windows((len(words),), window, stride), t, float(predictions[i, t]), empty
            )
        elif method == "kernel_shap":
            values, base, q = shapley.kernel_on_units(model, parts, t, options.get("nsamples"), seed)
            expected.append(base)
        elif method == "lime":
            values, q = surrogate.lime_text_values(
                model, words, t, options.get("nsamples") or surrogate.LIME_DEFAULT, seed
            )
        else:
            raise InvalidRequest(
                f"{method} needs numeric inputs; for text use integrated_gradients, smoothgrad, occlusion, "
                "kernel_shap or lime"
            )
        attributions.append(np.asarray(values, dtype=np.float32))
        quality.append(q)
    extras: dict[str, Any] = {"tokens": words_of}
    if expected:
        extras["expected_values"] = expected
    return _result(method, attributions, targets, predictions, quality, **extras)


def explain(
    model: keras.Model,
    x: Any,
    method: str,
    target: int | list[int] | None = None,
    steps: int = 64,
    baseline: str | np.ndarray = "zeros",
    **options: Any,
) -> Explanation:
    """Run the named method; an unknown one is an InvalidRequest listing the known ones.

    ``options``: ``samples``, ``noise`` (smoothgrad); ``window``, ``stride`` (occlusion, and ``window`` for
    lime's patches); ``nsamples`` (kernel_shap, gradient_shap, lime); ``background`` rows (SHAP); ``seed``.
    """
    if method not in EXPLAIN_METHODS:
        known = list(EXPLAIN_METHODS)
        raise InvalidRequest(f"unknown method '{method}'; known: {', '.join(known)}", details={"known": known})
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - {"samples", "noise", "window", "stride", "nsamples", "background", "seed"})
    if unknown:
        raise InvalidRequest(f"unknown explain options {unknown}")
    options["seed"] = check_int("seed", options.get("seed", 0), 0, 2**31 - 1)
    if "nsamples" in options:
        options["nsamples"] = check_int("nsamples", options["nsamples"], 1, shapley.MAX_NSAMPLES)
    if encoder_of(model) is not None:
        if "window" in options:
            options["window"] = check_int("window", options["window"], 1, MAX_WINDOW)
        if "stride" in options:
            options["stride"] = check_int("stride", options["stride"], 1, MAX_WINDOW)
        steps = check_int("steps", steps, 1, MAX_STEPS)
        return explain_table(model, x, method, target, steps, baseline, options)
    if takes_strings(model) and not (isinstance(baseline, str) and baseline == "zeros"):
        raise OutOfRange(
            "text is explained against zero embeddings or left-out words; baseline must be 'zeros'",
            details={"field": "baseline"},
        )
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target=target, steps=steps, baseline=baseline)
    if method == "smoothgrad":
        return smoothgrad(
            model, x, target, options.get("samples", 32), options.get("noise", 0.15), baseline, options["seed"]
        )
    if takes_strings(model):  # its baseline is "zeros" (checked above): words left out
        return _text_perturbation(model, x, method, target, options)
    return _numeric_perturbation(model, x, method, target, baseline, options)
