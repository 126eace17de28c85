"""Heatmaps: the input in grey with the attributions as a diverging overlay and a colour bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from tensorq.errors import InvalidRequest


def _plane(array: np.ndarray, reduce: str) -> np.ndarray:
    """A 2-D picture of an input or its attributions: channels averaged (inputs) or summed (attributions)."""
    plane = np.asarray(array, dtype=np.float32)
    if plane.ndim == 3:
        plane = plane.mean(axis=-1) if reduce == "mean" else plane.sum(axis=-1)
    if plane.ndim == 1:
        plane = plane[None, :]
    if plane.ndim != 2:
        raise InvalidRequest(f"a heatmap needs a 1-D, 2-D or 3-D input, not shaped {list(np.shape(array))}")
    return plane


def save_heatmap(image: np.ndarray, attributions: np.ndarray, path: Path, title: str | None = None) -> Path:
    """Write a PNG of ``attributions`` (bwr, symmetric around 0) over ``image`` (grey) to ``path``."""
    picture = _plane(image, "mean")
    heat = _plane(attributions, "sum")
    if picture.shape != heat.shape:
        raise InvalidRequest("the attributions do not have the image's shape")
    finite = heat[np.isfinite(heat)]
    limit = float(np.abs(finite).max()) if finite.size else 0.0
    limit = limit if limit > 0 else 1.0
    figure = Figure(figsize=(4, 3.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(picture, cmap="gray", interpolation="nearest")
    overlay = axes.imshow(heat, cmap="bwr", norm=TwoSlopeNorm(0.0, -limit, limit), alpha=0.6, interpolation="nearest")
    figure.colorbar(overlay, ax=axes, label="attribution")
    axes.set_axis_off()
    if title:
        axes.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", bbox_inches="tight")
    return path
