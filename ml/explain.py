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
from ml.explainers import gradients, numeric, occlusion, shapley, surrogate, units, views
from ml.explainers.common import Explanation, choose_targets
from ml.explainers.numeric import MAX_STEPS, MAX_WINDOW, QUALITY, predictions_of, result
from ml.explainers.table import explain_table
from ml.inference import takes_strings
from ml.validation import check_float, check_int
from tensorq.core.errors import InvalidRequest, OutOfRange

__all__ = ["MAX_STEPS", "QUALITY", "Explanation", "explain", "integrated_gradients", "rows_of"]
OPTIONS = ("samples", "noise", "window", "stride", "nsamples", "background", "seed")


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
    if takes_strings(model):
        steps = check_int("steps", steps, 1, MAX_STEPS)
        batch_size = check_int("batch_size", batch_size, 1, 2**31)
        return _text_gradients(model, x, "integrated_gradients", target, steps=steps, batch_size=batch_size)
    return numeric.integrated_gradients(model, x, target, steps, baseline, batch_size)


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
    if takes_strings(model):
        samples = check_int("samples", samples, 1, gradients.MAX_SAMPLES)
        noise = check_float("noise", noise, 0.0, 1.0)
        return _text_gradients(model, x, "smoothgrad", target, samples=samples, noise=noise, seed=seed)
    return numeric.smoothgrad(model, x, target, samples, noise, baseline, seed, batch_size)


def _text_gradients(model: keras.Model, texts: Any, method: str, target: Any, **options: Any) -> Explanation:
    texts = np.asarray(texts, dtype=object).reshape(-1)
    view, counts = views.text(model, texts)
    predictions = predictions_of(model, texts)
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
    return result(method, [a.astype(np.float32) for a in attributions], targets, predictions, quality, tokens=words)


def _text_perturbation(
    model: keras.Model, texts: Any, method: str, target: Any, options: dict[str, Any]
) -> Explanation:
    texts = np.asarray(texts, dtype=object).reshape(-1)
    predictions = predictions_of(model, texts)
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
            window, stride = numeric.window((len(words),), options.get("window"), options.get("stride"))
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
    return result(method, attributions, targets, predictions, quality, **extras)


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
    options = _checked(method, options)
    if encoder_of(model) is not None:
        for name in ("window", "stride"):
            if name in options:
                options[name] = check_int(name, options[name], 1, MAX_WINDOW)
        return explain_table(model, x, method, target, check_int("steps", steps, 1, MAX_STEPS), baseline, options)
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
    return numeric.perturbation(model, x, method, target, baseline, options)


def _checked(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The method checked against the known ones and the options given (None dropped) against theirs, with
    ``seed`` (default 0) and ``nsamples`` in range."""
    if method not in EXPLAIN_METHODS:
        known = list(EXPLAIN_METHODS)
        raise InvalidRequest(f"unknown method '{method}'; known: {', '.join(known)}", details={"known": known})
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidRequest(f"unknown explain options {unknown}")
    options["seed"] = check_int("seed", options.get("seed", 0), 0, 2**31 - 1)
    if "nsamples" in options:
        options["nsamples"] = check_int("nsamples", options["nsamples"], 1, shapley.MAX_NSAMPLES)
    return options
