"""What gradient methods differentiate: the inputs themselves, or a text model's token embeddings."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml.inference import predict
from tensorq.core.errors import InvalidRequest

Forward = Callable[[tf.Tensor, np.ndarray], tf.Tensor]


@dataclass
class View:
    """Points ``x`` (n, ...) with per-input ``baseline``, ``forward(points, rows)`` giving class probabilities
    (``rows`` says which input each point belongs to), and ``reduce`` mapping attributions in this space to
    what is reported for input ``i`` (the identity, or a sum over embedding dimensions per token)."""

    x: np.ndarray
    baseline: np.ndarray
    forward: Forward
    reduce: Callable[[np.ndarray, int], np.ndarray]


def numeric(model: keras.Model, x: np.ndarray, base: np.ndarray) -> View:
    """The inputs as they are, from one baseline shared by all."""
    return View(
        x=np.asarray(x, dtype=np.float32),
        baseline=np.broadcast_to(base, x.shape).astype(np.float32),
        forward=lambda points, rows: model(points, training=False),
        reduce=lambda attributions, i: attributions,
    )


def text_layers(model: keras.Model) -> tuple[Any, Any, list[Any]]:
    """The model's TextVectorization, the Embedding after it, and the layers after that (in order)."""
    layers = list(model.layers)
    vectorize = next((layer for layer in layers if isinstance(layer, keras.layers.TextVectorization)), None)
    embedding = next((layer for layer in layers if isinstance(layer, keras.layers.Embedding)), None)
    if vectorize is None or embedding is None or layers.index(embedding) < layers.index(vectorize):
        raise InvalidRequest(
            "gradient methods on text need a TextVectorization then an Embedding layer; "
            "use occlusion, kernel_shap or lime for this model"
        )
    return vectorize, embedding, layers[layers.index(embedding) + 1 :]


def _takes_mask(layer: Any) -> bool:
    try:
        return "mask" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def token_ids(model: keras.Model, texts: np.ndarray) -> np.ndarray:
    """The ids the model's TextVectorization gives each text, (n, sequence length); 0 is padding."""
    vectorize, _, _ = text_layers(model)
    return np.asarray(vectorize(tf.constant(np.asarray(texts, dtype=object).astype(str))))


def text(model: keras.Model, texts: np.ndarray) -> tuple[View, list[int]]:
    """Token embeddings with a baseline of zero vectors for the words, and how many words each text has.

    The layers after the embedding are run in order (with the padding mask passed to those that take one,
    when the embedding masks padding); that must reproduce the model's own output (it is checked): a model
    whose graph is not a chain after its embedding is refused.
    """
    _, embedding, after = text_layers(model)
    ids = token_ids(model, texts)
    mask = ids != 0
    points = np.asarray(embedding(ids), dtype=np.float32)
    masked = bool(getattr(embedding, "mask_zero", False))  # the model passes the padding mask on only then

    def forward(batch: tf.Tensor, rows: np.ndarray) -> tf.Tensor:
        h, m = batch, tf.constant(mask[rows])
        for layer in after:
            if masked and len(h.shape) == 3 and _takes_mask(layer):
                h = layer(h, mask=m, training=False)
            else:
                h = layer(h, training=False)
        return h

    own = predict(model, texts)
    if not np.allclose(np.asarray(forward(tf.constant(points), np.arange(len(texts)))), own, atol=1e-4):
        raise InvalidRequest("this text model is not a chain after its embedding; use occlusion, kernel_shap or lime")
    counts = [int(c) for c in mask.sum(axis=1)]
    view = View(
        x=points,
        baseline=np.where(mask[..., None], 0.0, points).astype(np.float32),  # padding stays as it is
        forward=forward,
        reduce=lambda attributions, i: attributions[: counts[i]].sum(axis=-1),
    )
    return view, counts
