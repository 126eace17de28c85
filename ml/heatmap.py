"""Heatmaps: the input in grey with the attributions as a diverging overlay and a colour bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure


def save_heatmap(image: np.ndarray, attributions: np.ndarray, path: Path, title: str | None = None) -> Path:
    """Write a PNG of ``attributions`` over ``image`` (channels summed) to ``path``."""
    picture = np.asarray(image, dtype=np.float32)
    heat = np.asarray(attributions, dtype=np.float32)
    if picture.ndim == 3:
        picture = picture.mean(axis=-1)
    if heat.ndim == 3:
        heat = heat.sum(axis=-1)
    limit = float(np.abs(heat).max()) or 1.0
    figure = Figure(figsize=(4, 3.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(picture, cmap="gray", interpolation="nearest")
    overlay = axes.imshow(heat, cmap="bwr", norm=TwoSlopeNorm(0.0, -limit, limit), alpha=0.6, interpolation="nearest")
    figure.colorbar(overlay, ax=axes, label="attribution")
    axes.set_axis_off()
    if title:
        axes.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", bbox_inches="tight")
    return path
