"""Data the tests make themselves: sentiment texts that hang on a few words, and low-rank ratings."""

from __future__ import annotations

import numpy as np

POSITIVE = ("excellent", "wonderful", "superb")
NEGATIVE = ("awful", "dreadful", "terrible")
FILLER = tuple(
    "the a movie film plot actor actress scene story was is it this and of very quite really show "
    "cast music ending director we saw last night with friends".split()
)


def sentiment(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` texts of 5 to 12 neutral words with one sentiment word put in at random; label 1 when positive."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for k in range(n):
        label = k % 2
        words = list(rng.choice(FILLER, size=int(rng.integers(5, 13))))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)


def low_rank_ratings(users: int, items: int, rank: int, count: int, seed: int, noise: float = 0.25) -> tuple:
    """(user, item, rating) rows of a rank-``rank`` matrix plus biases and noise, each pair drawn at most once."""
    rng = np.random.default_rng(seed)
    p = rng.normal(scale=0.8, size=(users, rank))
    q = rng.normal(scale=0.8, size=(items, rank))
    user_bias = rng.normal(scale=0.3, size=users)
    item_bias = rng.normal(scale=0.3, size=items)
    flat = rng.choice(users * items, size=count, replace=False)
    u, i = np.divmod(flat, items)
    ratings = 3.0 + user_bias[u] + item_bias[i] + (p[u] * q[i]).sum(axis=1) + rng.normal(scale=noise, size=count)
    return [f"u{x}" for x in u], [f"i{x}" for x in i], ratings.astype(np.float32)
