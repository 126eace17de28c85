"""Synthetic but learnable data: 28x28 digit images made from scikit-learn's 8x8 digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SIDE = 28
TINY_ROW = [5.1, 3.5, 1.4, 0.2]  # one iris flower: the input of the "no-op-sized" predict jobs


def digit_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 images (N, 28, 28): digits upsampled 3x, shifted up to 4 pixels and noised; int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits.images), count)
    small = digits.images[pick] / 16.0
    big = small.repeat(3, axis=1).repeat(3, axis=2)
    side = big.shape[1]
    canvas = np.zeros((count, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    shifts = rng.integers(0, IMAGE_SIDE - side + 1, size=(count, 2))
    for i, (dy, dx) in enumerate(shifts):
        canvas[i, dy : dy + side, dx : dx + side] = big[i]
    canvas += rng.normal(0.0, 0.15, canvas.shape).astype(np.float32)
    images = np.clip(canvas * 255.0, 0, 255).astype(np.uint8)
    return images, digits.target[pick].astype(np.int64)


def save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """Write ``x`` and ``y`` as an uncompressed ``.npz`` (the upload format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, x=x, y=y)
    return path
