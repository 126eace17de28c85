"""Heatmaps are PNG files of the input with a diverging overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.heatmap import save_heatmap
from tensorq.core.errors import InvalidRequest

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
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert png.size[0] > 100
        assert png.size[1] > 100


def test_all_zero_attributions_still_draw(tmp_path: Path) -> None:
    path = save_heatmap(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), tmp_path / "zero.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_mismatched_shapes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        save_heatmap(np.zeros((8, 8)), np.zeros((4, 4)), tmp_path / "bad.png")


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB")).astype(np.int32)


def _rows_ordering(pixels: np.ndarray) -> tuple[int, int]:
    """How many pixel rows have their red left of their blue, and how many their blue left of their red."""
    red = pixels[..., 0] - pixels[..., 2] > 80
    blue = pixels[..., 2] - pixels[..., 0] > 80
    columns = np.arange(pixels.shape[1])
    both = red.any(axis=1) & blue.any(axis=1)
    red_x = (red * columns).sum(axis=1)[both] / red.sum(axis=1)[both]
    blue_x = (blue * columns).sum(axis=1)[both] / blue.sum(axis=1)[both]
    return int((red_x < blue_x).sum()), int((blue_x < red_x).sum())


def test_positive_is_red_negative_is_blue_and_the_bar_runs_blue_to_red(tmp_path: Path) -> None:
    image = np.zeros((28, 28, 1), dtype=np.float32)
    attributions = np.zeros((28, 28, 1), dtype=np.float32)
    attributions[:, :10] = 0.5  # positive on the left
    attributions[:, 18:] = -0.5  # negative on the right
    pixels = _pixels(save_heatmap(image, attributions, tmp_path / "sign.png", title="class 1"))
    picture_rows, bar_rows = _rows_ordering(pixels)
    assert picture_rows >= 250  # the picture: red left of blue, upscaled to about 280 pixels high
    assert bar_rows >= 10  # the colour bar: -limit (blue) on the left, +limit (red) on the right
    height, width = pixels.shape[:2]
    assert width >= 280
    assert height >= 280


def test_the_input_shows_in_grey_where_attributions_are_not_numbers(tmp_path: Path) -> None:
    image = np.zeros((8, 8), dtype=np.float32)
    image[:, 4:] = 16.0  # a black half and a white half
    attributions = np.full((8, 8), np.nan, dtype=np.float32)
    attributions[0, 0] = np.inf
    pixels = _pixels(save_heatmap(image, attributions, tmp_path / "grey.png"))
    black = (pixels == 0).all(axis=-1).sum()
    assert black >= 0.4 * (280 * 140)  # the black half of an 8x8 input upscaled to about 280 x 280
    neutral = (pixels.max(axis=-1) - pixels.min(axis=-1)) <= 2
    coloured = ~neutral
    assert coloured.sum() < 0.5 * neutral.sum()  # only the infinity's cell and the colour bar are coloured


def test_a_title_adds_a_line_above_the_picture(tmp_path: Path) -> None:
    image, attributions = np.ones((8, 8)), np.eye(8)
    plain = _pixels(save_heatmap(image, attributions, tmp_path / "plain.png"))
    titled = _pixels(save_heatmap(image, attributions, tmp_path / "titled.png", title="class 7"))
    assert titled.shape[0] > plain.shape[0]
    assert titled.shape[1] == plain.shape[1]
    assert (titled[:20] < 128).any()
    assert not (plain[:10] < 250).any()


@pytest.mark.parametrize("shape", [(2, 3, 4, 1), (), (0,), (4, 0, 1)])
def test_inputs_that_are_not_pictures_are_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidRequest):
        save_heatmap(np.zeros(shape), np.zeros(shape), tmp_path / "bad.png")
