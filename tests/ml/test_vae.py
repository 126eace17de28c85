"""``vae``: reconstruction and KL logged apart, held-out reconstruction against the mean image, predict modes."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ml import builders, generative
from ml.architectures.vae import VariationalAutoencoder
from ml.datasets import Dataset, load_builtin, split
from ml.inference import load_model
from ml.tasks.autoencode import reconstruction_error
from ml.training import TrainConfig, train
from tensorq.core.errors import InvalidRequest, OutOfRange
from tests.ml.conftest import Trained


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A vae trained on digits (16 epochs), and 20% of the digits it never saw."""
    rest, held_out = split(load_builtin("digits"), 0.2, seed=7)
    config = TrainConfig("vae", {"latent_dim": 8}, epochs=16, batch_size=32, seed=5, test_split=0.15)
    outcome = train(config, rest, tmp_path_factory.mktemp("vae"))
    return Trained(load_model(outcome.model_path), outcome, held_out)


def test_vae_reconstructs_held_out_digits_at_most_half_as_badly_as_the_mean(trained_vae: Trained) -> None:
    rest, held_out = split(load_builtin("digits"), 0.2, seed=7)  # the fixture's split: rows it trained on, and not
    error = reconstruction_error(trained_vae.model, held_out.x)
    mean_image = float(np.mean((held_out.x - rest.x.mean(axis=0)) ** 2))  # always answering the mean image
    metrics = trained_vae.outcome.metrics
    print(
        f"\nvae/digits: held-out reconstruction MSE {error:.3f}, mean image {mean_image:.3f} "
        f"(ratio {error / mean_image:.3f}); test split {metrics['test_reconstruction_error']:.3f} "
        f"vs {metrics['test_baseline_error']:.3f}"
    )
    assert error <= 0.5 * mean_image
    assert metrics["test_reconstruction_error"] <= 0.5 * metrics["test_baseline_error"]


def test_training_reports_reconstruction_and_kl_separately(trained_vae: Trained) -> None:
    history = trained_vae.outcome.history
    assert set(history) == {
        "loss",
        "reconstruction_loss",
        "kl_loss",
        "val_loss",
        "val_reconstruction_loss",
        "val_kl_loss",
    }
    assert all(len(v) == 16 for v in history.values())
    np.testing.assert_allclose(
        np.array(history["loss"]), np.array(history["reconstruction_loss"]) + np.array(history["kl_loss"]), rtol=1e-4
    )
    assert history["reconstruction_loss"][-1] < history["reconstruction_loss"][0]
    metrics = trained_vae.outcome.metrics
    assert {"test_loss", "test_reconstruction_loss", "test_kl_loss", "test_reconstruction_error"} <= set(metrics)
    signature = trained_vae.outcome.signature
    assert signature["task"] == "autoencode"
    assert signature["latent_dim"] == 8
    assert signature["input_shape"] == [8, 8, 1]


def test_predict_modes(trained_vae: Trained) -> None:
    model, x = trained_vae.model, trained_vae.held_out.x[:5]
    assert isinstance(model, VariationalAutoencoder)
    encoded = generative.run(model, "encode", x)
    assert encoded["mean"].shape == (5, 8)
    assert encoded["log_var"].shape == (5, 8)
    reconstructed = generative.run(model, "reconstruct", x)["outputs"]
    assert reconstructed.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(reconstructed, model.decode(encoded["mean"]), rtol=1e-5, atol=1e-4)
    samples = generative.run(model, "sample", n=7, seed=3)["outputs"]
    assert samples.shape == (7, 8, 8, 1)
    assert np.all(np.isfinite(samples))
    np.testing.assert_array_equal(samples, generative.run(model, "sample", n=7, seed=3)["outputs"])
    assert 0 <= samples.mean() <= 16  # in the pixels' own scale, not normalised units
    with pytest.raises(OutOfRange):
        generative.run(model, "sample", n=0)
    with pytest.raises(InvalidRequest):
        generative.run(model, "encode")
    with pytest.raises(InvalidRequest, match="vae"):
        generative.run(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), "sample", n=1)


def test_vae_saves_and_loads_safely(trained_vae: Trained) -> None:
    again = keras.models.load_model(trained_vae.outcome.model_path, safe_mode=True, compile=False)
    x = trained_vae.held_out.x[:4]
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(trained_vae.model(x)), rtol=1e-6, atol=1e-5)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in again.layers)


def test_tabular_vae_same_seed_same_history(tmp_path: Path) -> None:
    ds = load_builtin("wine")
    config = TrainConfig("vae", {"latent_dim": 2, "hidden": [16]}, epochs=3, batch_size=16, seed=8)
    first = train(config, ds, tmp_path / "a").history
    second = train(config, ds, tmp_path / "b").history
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=0, atol=1e-6)


def test_vae_refuses_text_class_weights_and_bad_params(tmp_path: Path) -> None:
    texts = Dataset(np.asarray(["a", "b"], dtype=object), np.array([0, 1]), "text")
    with pytest.raises(InvalidRequest, match="numeric"):
        train(TrainConfig("vae", {}, epochs=1), texts, tmp_path)
    with pytest.raises(InvalidRequest, match="class_weight"):
        train(TrainConfig("vae", {}, epochs=1, class_weight="balanced"), load_builtin("iris"), tmp_path)
    with pytest.raises(OutOfRange):
        train(
            TrainConfig("vae", {}, epochs=1, early_stopping={"monitor": "val_accuracy"}), load_builtin("iris"), tmp_path
        )
    with pytest.raises(OutOfRange) as caught:
        builders.get("vae")((4,), 0, {"latent_dim": 0})
    assert caught.value.details["field"] == "params.latent_dim"


def test_early_stopping_can_watch_the_reconstruction_loss(tmp_path: Path) -> None:
    stopping = {"patience": 1, "monitor": "val_reconstruction_loss", "min_delta": 1e9}
    config = TrainConfig("vae", {"hidden": [8]}, epochs=10, seed=2, early_stopping=stopping)
    assert train(config, load_builtin("iris"), tmp_path).epochs_run == 2
