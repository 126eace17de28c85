"""The predict modes of a variational autoencoder: encode, reconstruct, sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.architectures.vae import VariationalAutoencoder
from ml.catalog import PREDICT_MODES
from tensorq.core.errors import InvalidRequest, OutOfRange

MAX_SAMPLES = 10_000


def _vae(model: Any) -> VariationalAutoencoder:
    if not isinstance(model, VariationalAutoencoder):
        raise InvalidRequest("encode, reconstruct and sample are modes of a vae model")
    return model


def run(model: Any, mode: str, x: np.ndarray | None = None, n: int | None = None, seed: int | None = None) -> dict:
    """``encode`` (``{"mean", "log_var"}`` per row), ``reconstruct`` (``{"outputs"}``) or ``sample``
    (``{"outputs"}``: ``n`` new rows decoded from standard normal latent points drawn with ``seed``)."""
    vae = _vae(model)
    if mode not in PREDICT_MODES:
        raise InvalidRequest(f"unknown mode '{mode}'; known: {', '.join(PREDICT_MODES)}")
    if mode == "sample":
        if x is not None:
            raise InvalidRequest("sample takes no inputs, only n (and seed)")
        count = 1 if n is None else n
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SAMPLES:
            raise OutOfRange(f"n must be an integer in 1..{MAX_SAMPLES}", details={"field": "n"})
        z = np.random.default_rng(seed).standard_normal((count, vae.latent_dim)).astype(np.float32)
        return {"outputs": vae.decode(z)}
    if x is None:
        raise InvalidRequest(f"{mode} needs inputs")
    if mode == "encode":
        mean, log_var = vae.encode(x)
        return {"mean": mean, "log_var": log_var}
    return {"outputs": np.asarray(vae(x, training=False))}
