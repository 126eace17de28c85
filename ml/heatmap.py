"""Heatmaps: the input in grey with the attributions as a diverging overlay and a colour bar.

The PNG is composed with numpy and Pillow (no matplotlib figure): the input scaled to grey, the attributions
through matplotlib's ``bwr`` lookup table, symmetric around 0, blended over it at ``ALPHA``, upscaled with
nearest neighbour, and a colour-bar strip underneath labelled with the range's ends and 0.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tensorq.core.errors import InvalidRequest

ALPHA = 0.6  # the overlay's opacity over the grey input
SHORT_SIDE = 280  # the picture's short side is scaled up to about this many pixels
LONG_SIDE = 1120  # and its long side to at most this many (a 1-D input is a strip of square cells)
MARGIN = 10
GAP = 8
BAR_HEIGHT = 14
TICK = 4
FONT_SIZE = 12
MIN_WIDTH = 240  # room for the colour bar's labels under a narrow picture
INK = (0, 0, 0)
PAPER = (255, 255, 255)
PNG_COMPRESSION = 1  # zlib level: fast; these pictures are flat blocks of colour and compress well anyway


def _plane(array: np.ndarray, reduce: str) -> np.ndarray:
    """A 2-D picture of an input or its attributions: channels averaged (inputs) or summed (attributions)."""
    plane = np.asarray(array, dtype=np.float32)
    if plane.ndim == 3:
        plane = plane.mean(axis=-1) if reduce == "mean" else plane.sum(axis=-1)
    if plane.ndim == 1:
        plane = plane[None, :]
    if plane.ndim != 2 or plane.size == 0:
        raise InvalidRequest(f"a heatmap needs a non-empty 1-D, 2-D or 3-D input, not shaped {list(np.shape(array))}")
    return plane


@cache
def _bwr() -> np.ndarray:
    """matplotlib's ``bwr`` colour map as a (256, 3) float32 table of 0..255 values."""
    from matplotlib import colormaps

    return (colormaps["bwr"](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.float32)


@cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font, at ``FONT_SIZE`` where FreeType is there."""
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (ImportError, OSError, TypeError):  # no FreeType (or an older Pillow): the fixed bitmap font
        return ImageFont.load_default()


def _grey(picture: np.ndarray) -> np.ndarray:
    """The input scaled from its own min..max to 0..255 (non-finite values as 0)."""
    picture = np.nan_to_num(picture, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(picture.min()), float(picture.max())
    if high <= low:
        return np.zeros(picture.shape, dtype=np.float32)
    return (picture - low) * np.float32(255.0 / (high - low))


def _limit(heat: np.ndarray) -> float:
    """The colour scale's half range: the largest finite |attribution| (1 when all are 0 or none is finite)."""
    finite = heat[np.isfinite(heat)]
    limit = float(np.abs(finite).max()) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def _colours(values: np.ndarray, limit: float) -> np.ndarray:
    """``values`` in [-limit, limit] through the ``bwr`` table, (..., 3) float32; infinities clip to the ends."""
    scaled = np.clip(np.nan_to_num(values, nan=0.0) / limit, -1.0, 1.0)
    return _bwr()[np.rint((scaled + 1.0) * 127.5).astype(np.intp)]


def _overlay(picture: np.ndarray, heat: np.ndarray, limit: float) -> np.ndarray:
    """The grey input with the coloured attributions blended over it, (H, W, 3) uint8; NaN leaves the input."""
    grey = _grey(picture)[..., None]
    blended = (1.0 - ALPHA) * grey + ALPHA * _colours(heat, limit)
    blended = np.where(np.isnan(heat)[..., None], grey, blended)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _scale(height: int, width: int) -> int:
    """The whole-number upscale: the short side to about ``SHORT_SIDE``, the long side within ``LONG_SIDE``."""
    scale = max(1, round(SHORT_SIDE / min(height, width)))
    return max(1, min(scale, LONG_SIDE // max(height, width)))


def _bar(width: int) -> Image.Image:
    """The colour-bar strip: ``bwr`` from -1 (left) to 1 (right) as the overlay shows it on white."""
    row = (1.0 - ALPHA) * 255.0 + ALPHA * _colours(np.linspace(-1.0, 1.0, width, dtype=np.float32), 1.0)
    strip = np.broadcast_to(np.rint(row).astype(np.uint8)[None], (BAR_HEIGHT, width, 3))
    return Image.fromarray(np.ascontiguousarray(strip), "RGB")


def _label(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def _text_height() -> int:
    box = _font().getbbox("0123456789-e+.class")
    return int(box[3]) + 2


def _picture(picture: np.ndarray, heat: np.ndarray, limit: float) -> Image.Image:
    """The blended input and attributions, upscaled with nearest neighbour."""
    height, width = picture.shape
    scale = _scale(height, width)
    blended = Image.fromarray(_overlay(picture, heat, limit), "RGB")
    return blended.resize((width * scale, height * scale), Image.Resampling.NEAREST)


def _compose(shown: Image.Image, limit: float, title: str | None) -> Image.Image:
    """The page: the title, the picture, then the colour bar with its ticks and labels."""
    line = _text_height()
    top = MARGIN + (line + GAP if title else 0)
    width = max(shown.width, MIN_WIDTH) + 2 * MARGIN
    bar_top = top + shown.height + GAP
    page = Image.new("RGB", (width, bar_top + BAR_HEIGHT + TICK + 2 * line + MARGIN), PAPER)
    page.paste(shown, ((width - shown.width) // 2, top))
    page.paste(_bar(width - 2 * MARGIN), (MARGIN, bar_top))
    draw = ImageDraw.Draw(page)
    if title:
        _text(draw, width // 2, MARGIN, title, 0.5)
    _annotate(draw, limit, bar_top, width - 2 * MARGIN, line)
    return page


def _text(draw: ImageDraw.ImageDraw, x: int, y: int, text: str, align: float) -> None:
    """``text`` with its top at ``y``, its left (0), middle (0.5) or right (1) end at ``x``."""
    draw.text((x - round(align * draw.textlength(text, font=_font())), y), text, fill=INK, font=_font())


def _annotate(draw: ImageDraw.ImageDraw, limit: float, bar_top: int, bar_width: int, line: int) -> None:
    """The colour bar's outline, its ticks at -limit, 0 and limit, their labels and a caption."""
    centre = MARGIN + bar_width // 2
    draw.rectangle((MARGIN, bar_top, MARGIN + bar_width - 1, bar_top + BAR_HEIGHT - 1), outline=INK)
    bottom = bar_top + BAR_HEIGHT
    for x, value, align in ((MARGIN, -limit, 0.0), (centre, 0.0, 0.5), (MARGIN + bar_width - 1, limit, 1.0)):
        draw.line((x, bottom, x, bottom + TICK - 1), fill=INK)
        _text(draw, x, bottom + TICK, _label(value), align)
    _text(draw, centre, bottom + TICK + line, "attribution", 0.5)


def save_heatmap(image: np.ndarray, attributions: np.ndarray, path: Path, title: str | None = None) -> Path:
    """Write a PNG of ``attributions`` (bwr, symmetric around 0) over ``image`` (grey) to ``path``."""
    picture = _plane(image, "mean")
    heat = _plane(attributions, "sum")
    if picture.shape != heat.shape:
        raise InvalidRequest("the attributions do not have the image's shape")
    limit = _limit(heat)
    page = _compose(_picture(picture, heat, limit), limit, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, format="PNG", compress_level=PNG_COMPRESSION)
    return path


def save_picture(image: np.ndarray, path: Path, title: str | None = None) -> Path:
    """Write a PNG of ``image`` alone in grey (its own min..max), upscaled as the heatmaps are, to ``path``."""
    picture = _plane(image, "mean")
    height, width = picture.shape
    scale = _scale(height, width)
    grey = np.clip(np.rint(_grey(picture)), 0, 255).astype(np.uint8)
    shown = Image.fromarray(grey, "L").convert("RGB").resize((width * scale, height * scale), Image.Resampling.NEAREST)
    line = _text_height()
    top = MARGIN + (line + GAP if title else 0)
    page = Image.new("RGB", (shown.width + 2 * MARGIN, top + shown.height + MARGIN), PAPER)
    page.paste(shown, (MARGIN, top))
    if title:
        _text(ImageDraw.Draw(page), page.width // 2, MARGIN, title, 0.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, format="PNG", compress_level=PNG_COMPRESSION)
    return path
