"""Recommender answers: ratings of (user, item) pairs and a user's top-k items; unseen ids are InvalidRequest."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ml.architectures.recommender import MatrixFactorization
from tensorq.core.errors import InvalidRequest, OutOfRange

MAX_PAIRS = 1_000_000
MAX_K = 1000


def layer_of(model: Any) -> MatrixFactorization:
    """The model's MatrixFactorization layer; a model without one is not a recommender (InvalidRequest)."""
    for layer in getattr(model, "layers", []):
        if isinstance(layer, MatrixFactorization):
            return layer
    raise InvalidRequest("this is not a recommender model")


def _id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest("user and item ids are strings or integers")
    return str(value)


def _known(layer: MatrixFactorization, users: list[str], items: list[str]) -> None:
    known_users, known_items = set(layer.users), set(layer.items)
    unknown_users = sorted({u for u in users if u not in known_users})
    unknown_items = sorted({i for i in items if i not in known_items})
    if unknown_users or unknown_items:
        parts = [
            f"users {unknown_users[:10]}" if unknown_users else "",
            f"items {unknown_items[:10]}" if unknown_items else "",
        ]
        raise InvalidRequest(
            f"the model was not trained on {' and '.join(p for p in parts if p)}; it can only rate ids it has seen",
            code="unknown_ids",
            details={"unknown_users": unknown_users[:100], "unknown_items": unknown_items[:100]},
        )


def pairs_of(inputs: Any) -> np.ndarray:
    """``[[user, item], ...]`` (or one pair) as an (N, 2) array of string ids."""
    rows = inputs if isinstance(inputs, list | tuple) else None
    if rows and not isinstance(rows[0], list | tuple):
        rows = [rows]
    if not rows or not all(isinstance(r, list | tuple) and len(r) == 2 for r in rows):
        raise InvalidRequest("recommender inputs are [user, item] pairs", details={"expected_shape": ["batch", 2]})
    if len(rows) > MAX_PAIRS:
        raise OutOfRange(f"at most {MAX_PAIRS} pairs", details={"field": "inputs"})
    return np.asarray([[_id(u), _id(i)] for u, i in rows], dtype=object).reshape(-1, 2)


def _score(model: Any, pairs: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    out = [
        np.asarray(model(tf.constant(pairs[s : s + batch_size].astype(str)), training=False))
        for s in range(0, len(pairs), batch_size)
    ]
    return np.concatenate(out).astype(np.float32)


def rate(model: Any, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
    """The pairs and their predicted ratings; any id the model never saw is an InvalidRequest naming it."""
    layer = layer_of(model)
    pairs = pairs_of(inputs)
    _known(layer, list(pairs[:, 0]), list(pairs[:, 1]))
    return pairs, _score(model, pairs)


def top_k(model: Any, user: Any, k: int = 10) -> tuple[list[str], np.ndarray]:
    """The ``k`` items with the highest predicted rating for ``user``, best first, with their ratings."""
    layer = layer_of(model)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise OutOfRange(f"k must be an integer in 1..{MAX_K}", details={"field": "k"})
    user_id = _id(user)
    _known(layer, [user_id], [])
    items = np.asarray(layer.items, dtype=object)
    scores = _score(model, np.stack([np.full(len(items), user_id, dtype=object), items], axis=1))
    order = np.argsort(-scores, kind="stable")[:k]
    return [str(i) for i in items[order]], scores[order]
