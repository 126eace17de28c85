"""LIME through the ``lime`` library: a weighted linear model fitted to the model's answers on perturbed copies."""

from __future__ import annotations

import keras
import numpy as np

from ml.explainers.units import Units, score

LIME_DEFAULT = 1000
KERNEL_WIDTH = 25.0  # lime's text default, on cosine distances times 100


def _kernel(distances: np.ndarray) -> np.ndarray:
    return np.sqrt(np.exp(-(distances**2) / KERNEL_WIDTH**2))


def lime_values(
    model: keras.Model, units: Units, segments: np.ndarray, target: int, nsamples: int, seed: int
) -> tuple[np.ndarray, float]:
    """LIME for one input: ``nsamples`` random on/off masks over the segments (the first all on), the
    model's answers on them, and ``lime.lime_base.LimeBase`` (ridge, every segment kept) weighted by a
    cosine-distance kernel; the weight of each unit's segment and the fit's weighted R^2."""
    from lime.lime_base import LimeBase
    from sklearn.metrics import pairwise_distances

    count = int(segments.max()) + 1
    rng = np.random.RandomState(seed)
    data = rng.randint(0, 2, size=(nsamples, count))
    data[0, :] = 1
    keep = data[:, segments].astype(bool)
    labels = score(model, units.compose(keep))
    distances = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
    base = LimeBase(_kernel, random_state=np.random.RandomState(seed))
    _, weights, r2, _ = base.explain_instance_with_data(
        data, labels, distances, int(target), num_features=count, feature_selection="none"
    )
    per_segment = np.zeros(count, dtype=np.float64)
    for index, weight in weights:
        per_segment[int(index)] = weight
    return per_segment[segments], float(r2)


def lime_text_values(
    model: keras.Model, words: list[str], target: int, nsamples: int, seed: int
) -> tuple[np.ndarray, float]:
    """``lime.lime_text.LimeTextExplainer`` on the model's words (left out when switched off): the weight of
    each word and the fit's weighted R^2."""
    from lime.lime_text import LimeTextExplainer

    explainer = LimeTextExplainer(
        kernel_width=KERNEL_WIDTH, bow=False, split_expression=r"\s+", mask_string="", random_state=seed
    )

    def classify(texts: list[str]) -> np.ndarray:
        return score(model, np.asarray([" ".join(t.split()) for t in texts], dtype=object))

    result = explainer.explain_instance(
        " ".join(words), classify, labels=(int(target),), num_features=len(words), num_samples=nsamples
    )
    per_word = np.zeros(len(words), dtype=np.float64)
    for index, weight in result.local_exp[int(target)]:
        per_word[int(index)] = weight
    return per_word, float(result.score)
