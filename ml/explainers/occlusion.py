"""Occlusion: how much the explained class's probability drops when a window is replaced or removed."""

from __future__ import annotations

import keras
import numpy as np

from ml.explainers.common import relative_gaps
from ml.explainers.units import Units, score


def occlude(
    model: keras.Model, units: Units, window_masks: list[np.ndarray], target: int, full: float, empty: float
) -> tuple[np.ndarray, float]:
    """Per unit, the mean drop ``f(x)[t] - f(x with the window off)[t]`` over the windows covering it, and
    the additivity gap of those values against ``f(x)[t] - f(all off)[t]``."""
    masks = np.stack(window_masks)
    outputs = score(model, units.compose(~masks))[:, target]
    drops = (full - outputs)[:, None] * masks
    covered = masks.sum(axis=0)
    per_unit = np.where(covered > 0, drops.sum(axis=0) / np.maximum(covered, 1), 0.0)
    gap = relative_gaps(np.array([per_unit.sum()]), np.array([full - empty]))[0]
    return per_unit, float(gap)
