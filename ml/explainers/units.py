"""What perturbation methods switch on and off: features, image patches, or a text's tokens."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml.inference import predict

# What Keras's TextVectorization strips with "strip_punctuation" (the same pattern as the layer's).
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_STANDARDIZE = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
_SPLIT = ("whitespace", "character")


@dataclass
class Units:
    """One input as ``count`` units; ``compose(keep)`` turns (k, count) 0/1 keep-masks into k model inputs,
    each unit either kept or replaced (by the baseline; for text, removed)."""

    count: int
    compose: Callable[[np.ndarray], Any]


def score(model: keras.Model, inputs: Any, batch_size: int = 4096) -> np.ndarray:
    """Class probabilities for perturbed inputs, in batched direct calls."""
    return predict(model, inputs, batch_size=batch_size)


def numeric_units(x: np.ndarray, base: np.ndarray) -> Units:
    """Each feature (or pixel, all channels together) a unit, replaced by the baseline when switched off."""
    plane = x.shape[:2] if x.ndim == 3 else (x.size,)
    count = int(np.prod(plane))

    def compose(keep: np.ndarray) -> np.ndarray:
        mask = keep.astype(bool).reshape((len(keep), *plane, *([1] if x.ndim == 3 else [])))
        if x.ndim != 3:
            mask = mask.reshape((len(keep), *x.shape))
        return np.where(mask, x[None], base[None]).astype(np.float32)

    return Units(count, compose)


def windows(shape: tuple[int, ...], window: int, stride: int) -> list[np.ndarray]:
    """Unit masks of every window: ``window`` square patches every ``stride`` pixels for images (H, W, C),
    runs of ``window`` features (in flat order) otherwise; the last window of each axis reaches the edge."""
    plane = shape[:2] if len(shape) == 3 else (int(np.prod(shape)),)

    def starts(size: int) -> list[int]:
        w = min(window, size)
        points = list(range(0, size - w + 1, stride))
        if points[-1] + w < size:
            points.append(size - w)
        return points

    masks = []
    if len(plane) == 2:
        for r in starts(plane[0]):
            for c in starts(plane[1]):
                mask = np.zeros(plane, dtype=bool)
                mask[r : r + window, c : c + window] = True
                masks.append(mask.ravel())
    else:
        for s in starts(plane[0]):
            mask = np.zeros(plane, dtype=bool)
            mask[s : s + window] = True
            masks.append(mask)
    return masks


def default_window(shape: tuple[int, ...]) -> int:
    """One unit per pixel or feature up to 16 pixels a side; about 8 patches a side for larger images."""
    if len(shape) == 3 and min(shape[:2]) > 16:
        return max(1, math.ceil(min(shape[:2]) / 8))
    return 1


def patches(shape: tuple[int, ...], window: int) -> np.ndarray:
    """The patch id of each unit when the input is tiled by ``window`` (images) or runs of features."""
    if len(shape) == 3:
        rows, cols = np.meshgrid(np.arange(shape[0]) // window, np.arange(shape[1]) // window, indexing="ij")
        per_row = math.ceil(shape[1] / window)
        return (rows * per_row + cols).ravel()
    return np.arange(int(np.prod(shape))) // window


def spread(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per-unit values laid out in the input's shape (the same value on every channel of a pixel)."""
    if len(shape) == 3:
        return np.repeat(values.reshape(*shape[:2], 1), shape[2], axis=2).astype(np.float32)
    return values.reshape(shape).astype(np.float32)


def tokens(model: keras.Model, text: str) -> list[str]:
    """The words the model sees in ``text``: its TextVectorization's standardisation, split and n-grams (read
    from the layer's public config), cut to its sequence length; for other string models, or a layer with
    its own callables, the lower-cased text without punctuation split on whitespace."""
    vectorize = next((la for la in model.layers if isinstance(la, keras.layers.TextVectorization)), None)
    config = vectorize.get_config() if vectorize is not None else {}
    standardize, split, ngrams = config.get("standardize"), config.get("split"), config.get("ngrams")
    if vectorize is None or standardize not in _STANDARDIZE or split not in _SPLIT:
        return _PUNCTUATION.sub("", text.lower()).split()
    inputs = tf.constant([text])
    if standardize in ("lower", "lower_and_strip_punctuation"):
        inputs = tf.strings.lower(inputs)
    if standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
        inputs = tf.strings.regex_replace(inputs, _PUNCTUATION.pattern, "")
    if split == "whitespace":
        inputs = tf.strings.split(inputs)
    elif split == "character":
        inputs = tf.strings.unicode_split(inputs, "UTF-8")
    if ngrams is not None:  # an int n means every width up to n, as the layer reads it
        widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else tuple(ngrams)
        inputs = tf.strings.ngrams(inputs, ngram_width=widths, separator=" ")
    words = [w.decode("utf-8") for w in inputs.to_list()[0]]
    length = config.get("output_sequence_length")
    return words[:length] if length else words


def text_units(words: list[str]) -> Units:
    """Each word a unit; a switched-off word is left out of the text."""

    def compose(keep: np.ndarray) -> np.ndarray:
        kept = [" ".join(w for w, k in zip(words, row, strict=True) if k) for row in keep.astype(bool)]
        return np.asarray(kept, dtype=object)

    return Units(len(words), compose)
