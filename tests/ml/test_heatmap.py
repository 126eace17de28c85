"""Heatmaps are PNG files of the input with a diverging overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.heatmap import save_heatmap
from tensorq.errors import InvalidRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("image_shape", "title"), [((8, 8, 1), "class 3"), ((8, 8), None), ((5, 6, 3), "rgb"), ((30,), None)]
)
def test_heatmap_is_a_png(tmp_path: Path, image_shape: tuple[int, ...], title: str | None) -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 16, image_shape).astype(np.float32)
    attributions = rng.normal(size=image_shape).astype(np.float32)
    path = save_heatmap(image, attributions, tmp_path / "out" / "heatmap.png", title=title)
    assert path == tmp_path / "out" / "heatmap.png"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 100 and png.size[1] > 100


def test_all_zero_attributions_still_draw(tmp_path: Path) -> None:
    path = save_heatmap(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), tmp_path / "zero.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_mismatched_shapes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        save_heatmap(np.zeros((8, 8)), np.zeros((4, 4)), tmp_path / "bad.png")
