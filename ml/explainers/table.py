"""Explanations of a model that takes a table's cells (a ``TabularEncoder`` first): one attribution per
original column.

- Gradient methods (``integrated_gradients``, ``smoothgrad``, ``gradient_shap``) cannot differentiate a
  string lookup: they run on the model after its encoder, on the encoded numbers (the reference row encoded
  the same way), and each column's attribution is the sum over its encoded numbers (its standardised value
  and missing indicator, or its one-hot slots). Sums keep completeness: the column attributions of
  integrated gradients add up to f(x) - f(reference) as the encoded ones do.
- Perturbation methods (``occlusion``, ``kernel_shap``, ``lime``) switch whole columns off: a switched-off
  cell takes the reference row's cell.

The reference row: ``"zeros"`` (the default) is every cell missing, which the model imputes (the training
mean of a numeric column, the missing slot of a categorical one); ``"mean"`` is the inputs' mean of each
numeric column and most frequent value of each categorical one; a list is a row of cells.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import keras
import numpy as np

from ml.encoding import encode, encoder_of, head_of
from ml.explainers import numeric, occlusion, shapley, surrogate, units
from ml.explainers.common import Explanation, choose_targets
from ml.tabular import number, row_cells
from tensorq.core.errors import InvalidRequest

GRADIENT_METHODS = ("integrated_gradients", "smoothgrad", "gradient_shap")


def reference_row(model: keras.Model, x: np.ndarray, baseline: Any) -> np.ndarray:
    """The reference row of cells for ``baseline`` ("zeros", "mean" or a row of cells)."""
    columns = encoder_of(model).columns  # type: ignore[union-attr]
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.asarray([""] * len(columns), dtype=object)
        if baseline != "mean":
            raise InvalidRequest("baseline must be 'zeros', 'mean' or a row of cells")
        row = []
        for j, c in enumerate(columns):
            cells = [str(v) for v in x[:, j] if str(v)]
            if c["type"] == "numeric":
                values = [n for n in (number(v) for v in cells) if n is not None]
                row.append(repr(float(np.mean(values))) if values else "")
            else:
                row.append(Counter(cells).most_common(1)[0][0] if cells else "")
        return np.asarray(row, dtype=object)
    return np.asarray(row_cells([list(np.asarray(baseline, dtype=object).reshape(-1))], columns)[0], dtype=object)


def _per_column(model: keras.Model, attributions: np.ndarray) -> np.ndarray:
    """Encoded attributions (n, width) summed per column (n, columns)."""
    spans = encoder_of(model).positions()  # type: ignore[union-attr]
    return np.stack([attributions[:, span].sum(axis=1) for span in spans], axis=1).astype(np.float32)


def _gradient(
    model: keras.Model, x: np.ndarray, method: str, target: Any, steps: int, ref: np.ndarray, options: dict[str, Any]
) -> Explanation:
    head = head_of(model)
    encoded, base = encode(model, x), encode(model, ref[None])[0]
    if method == "integrated_gradients":
        result = numeric.integrated_gradients(head, encoded, target=target, steps=steps, baseline=base)
    elif method == "smoothgrad":
        result = numeric.smoothgrad(
            head, encoded, target, options.get("samples", 32), options.get("noise", 0.15), base, options["seed"]
        )
    else:
        background = options.get("background")
        background = encode(model, background) if background is not None else None
        given = {"background": background, "nsamples": options.get("nsamples"), "seed": options["seed"]}
        result = numeric.gradient_shap(head, encoded, target, base, given)
    result.attributions = _per_column(model, np.asarray(result.attributions))
    return result


def _units(x: np.ndarray, ref: np.ndarray) -> units.Units:
    """Each column a unit; a switched-off column takes the reference row's cell."""

    def compose(keep: np.ndarray) -> np.ndarray:
        return np.where(keep.astype(bool), x[None], ref[None]).astype(object)

    return units.Units(len(x), compose)


def explain_table(
    model: keras.Model, x: np.ndarray, method: str, target: Any, steps: int, baseline: Any, options: dict[str, Any]
) -> Explanation:
    """Attributions per column of rows of cells ``x`` (n, columns) for ``method``."""
    x = np.asarray(x, dtype=object)
    if x.ndim != 2 or len(x) == 0:
        raise InvalidRequest("x must be a non-empty batch of rows of cells")
    ref = reference_row(model, x, baseline)
    if method in GRADIENT_METHODS:
        return _gradient(model, x, method, target, steps, ref, options)
    if options.get("background") is not None:
        raise InvalidRequest(
            f"{method} on a table model switches columns to one reference row: give 'baseline', not 'background'"
        )
    predictions = units.score(model, x)
    targets = choose_targets(predictions, target)
    count = x.shape[1]
    window = units.default_window((count,)) if options.get("window") is None else int(options["window"])
    stride = window if options.get("stride") is None else int(options["stride"])
    empty = units.score(model, ref[None])[0]
    attributions, quality, expected = [], [], []
    for i in range(len(x)):
        parts, t = _units(x[i], ref), int(targets[i])
        if method == "occlusion":
            masks = units.windows((count,), min(window, count), stride)
            values, q = occlusion.occlude(model, parts, masks, t, float(predictions[i, t]), float(empty[t]))
        elif method == "kernel_shap":
            values, base, q = shapley.kernel_on_units(model, parts, t, options.get("nsamples"), options["seed"])
            expected.append(base)
        else:
            nsamples = options.get("nsamples") or surrogate.LIME_DEFAULT
            values, q = surrogate.lime_values(
                model, parts, units.patches((count,), window), t, nsamples, options["seed"]
            )
        attributions.append(np.asarray(values, dtype=np.float32))
        quality.append(float(q))
    worst = min(quality) if method == "lime" else max(quality)
    extras: dict[str, Any] = {"expected_values": expected} if expected else {}
    return Explanation(
        attributions=np.stack(attributions),
        targets=[int(t) for t in targets],
        predictions=predictions,
        method=method,
        quality={numeric.QUALITY[method]: float(worst)},
        per_input_quality=quality,
        extras=extras,
    )
