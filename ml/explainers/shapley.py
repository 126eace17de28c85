"""SHAP values through the ``shap`` library: Kernel SHAP (model-agnostic) and Gradient SHAP (expected gradients)."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from ml.explainers.common import relative_gaps
from ml.explainers.units import Units, score

MAX_NSAMPLES = 100_000
GRADIENT_SHAP_DEFAULT = 200


def kernel_values(
    model: keras.Model, x: np.ndarray, background: np.ndarray, targets: np.ndarray, nsamples: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel SHAP of each input for its target class: per input, ``shap.KernelExplainer`` on that class's
    probability over the flattened features against the ``background`` rows, every feature kept
    (``l1_reg=False``), numpy's global generator seeded with ``seed`` first (so an input's values do not depend
    on the other inputs); values of the inputs' shape and each input's expected value (E[f(background)][t])."""
    import shap

    shape = x.shape[1:]
    flat_background = background.reshape(len(background), -1)
    explainers: dict[int, Any] = {}
    values = np.zeros(x.shape, dtype=np.float32)
    expected = np.zeros(len(x), dtype=np.float64)
    for i, target in enumerate(int(t) for t in targets):
        if target not in explainers:

            def f(rows: np.ndarray, t: int = target) -> np.ndarray:
                return score(model, np.asarray(rows, dtype=np.float32).reshape((-1, *shape)))[:, t]

            explainers[target] = shap.KernelExplainer(f, flat_background)
        explainer = explainers[target]
        np.random.seed(seed)
        phi = explainer.shap_values(
            x[i : i + 1].reshape(1, -1), nsamples="auto" if nsamples is None else nsamples, l1_reg=False, silent=True
        )
        values[i] = np.asarray(phi).reshape(shape)
        expected[i] = float(np.asarray(explainer.expected_value).reshape(-1)[0])
    return values, expected


def kernel_on_units(
    model: keras.Model, units: Units, target: int, nsamples: int | None, seed: int
) -> tuple[np.ndarray, float, float]:
    """Kernel SHAP over units switched on and off (text: words kept or left out), for one input and class:
    the values, the expected value (everything off) and the additivity gap."""
    import shap

    def f(keep: np.ndarray) -> np.ndarray:
        return score(model, units.compose(np.asarray(keep) > 0.5))[:, target]

    explainer = shap.KernelExplainer(f, np.zeros((1, units.count)))
    np.random.seed(seed)
    values = np.asarray(
        explainer.shap_values(
            np.ones((1, units.count)), nsamples="auto" if nsamples is None else nsamples, l1_reg=False, silent=True
        )
    ).reshape(units.count)
    full = float(f(np.ones((1, units.count)))[0])
    base = float(np.asarray(explainer.expected_value).reshape(-1)[0])
    gap = float(relative_gaps(np.array([values.sum()]), np.array([full - base]))[0])
    return values, base, gap


def gradient_values(
    model: keras.Model, x: np.ndarray, background: np.ndarray, targets: np.ndarray, nsamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``shap.GradientExplainer`` (expected gradients) with the explained class of each input, seeded by
    ``seed``; values of the inputs' shape and the expected value of each input's class."""
    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that shap passes its single input as a list
        explainer = shap.GradientExplainer(model, background)
        values: Any = explainer.shap_values(
            x, nsamples=nsamples, ranked_outputs=targets[:, None], output_rank_order="custom", rseed=seed
        )
    values = values[0] if isinstance(values, tuple) else values
    values = np.asarray(values[0] if isinstance(values, list) else values)
    if values.shape != x.shape:
        values = values.reshape(*x.shape, -1)[..., 0]
    expected = score(model, background).mean(axis=0)[targets]
    return values.astype(np.float32), expected
