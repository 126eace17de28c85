"""What every explanation method returns, and the checks they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.validation import is_int
from tensorq.core.errors import InvalidRequest, OutOfRange

# Gaps are relative to |f(x)[t] - f(reference)[t]|, a difference of probabilities; below this floor that
# difference is float32 noise (an input the reference already scores alike), not a scale to divide by.
GAP_FLOOR = 1e-3


@dataclass
class Explanation:
    """Attributions (one array per input for text, else one array of the inputs' shape), the explained
    classes, the model's predictions, and the method's own quality figure, overall and per input."""

    attributions: np.ndarray | list[np.ndarray]
    targets: list[int]
    predictions: np.ndarray
    method: str
    quality: dict[str, float]
    per_input_quality: list[float]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def per_input_gap(self) -> list[float]:
        """The per-input quality figures (a gap for integrated gradients and SHAP)."""
        return self.per_input_quality


def baseline_row(x: np.ndarray, baseline: str | np.ndarray) -> np.ndarray:
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


def background_rows(x: np.ndarray, baseline: str | np.ndarray, background: np.ndarray | None) -> np.ndarray:
    """Reference rows for SHAP: the given background, else the baseline as one row."""
    if background is None:
        return baseline_row(x, baseline)[None]
    rows = np.asarray(background, dtype=np.float32)
    if rows.ndim != x.ndim or rows.shape[1:] != x.shape[1:] or len(rows) == 0:
        raise InvalidRequest(
            "background rows must have the inputs' shape",
            details={"expected_shape": ["rows", *x.shape[1:]], "got_shape": list(rows.shape)},
        )
    if not np.all(np.isfinite(rows)):
        raise InvalidRequest("background contains NaN or infinite values")
    return rows


def choose_targets(predictions: np.ndarray, target: int | list[int] | None) -> np.ndarray:
    """One class per input: the given one(s), or the predicted class."""
    n, classes = predictions.shape
    if target is None:
        return predictions.argmax(axis=1).astype(np.int64)
    chosen = [target] * n if is_int(target) else target
    if not isinstance(chosen, list | tuple | np.ndarray) or len(chosen) != n or not all(is_int(t) for t in chosen):
        raise InvalidRequest("target must be a class index or one class index per input", details={"classes": classes})
    result = np.asarray(chosen, dtype=np.int64)
    if result.min() < 0 or result.max() >= classes:
        message = f"target must be a class index below {classes}"
        raise OutOfRange(message, details={"field": "target", "classes": classes})
    return result


def relative_gaps(sums: np.ndarray, difference: np.ndarray) -> np.ndarray:
    """``|sums - difference|`` relative to ``max(|difference|, GAP_FLOOR)``, per input."""
    sums = np.asarray(sums, dtype=np.float64)
    difference = np.asarray(difference, dtype=np.float64)
    return np.abs(sums - difference) / np.maximum(np.abs(difference), GAP_FLOOR)


def totals(attributions: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """The sum of each input's attributions."""
    return np.asarray([np.sum(a, dtype=np.float64) for a in attributions])
