"""``vae``: a variational autoencoder for images or tabular rows, a registered Keras model class."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ml.builders import register
from ml.specs import VaeParams


@keras.saving.register_keras_serializable(package="tensorq")
class VariationalAutoencoder(keras.Model):
    """Normalize, flatten, Dense encoder to a Gaussian latent, Dense decoder, un-normalize.

    Calling the model reconstructs its input from the latent mean (deterministic, in the input's own
    scale). Training minimises reconstruction loss (summed squared error in normalised units) plus
    ``beta`` times the KL divergence to a standard normal prior, and logs both separately.
    """

    def __init__(
        self,
        data_shape: tuple[int, ...] | list[int],
        latent_dim: int = 8,
        hidden: list[int] | tuple[int, ...] = (128, 64),
        beta: float = 1.0,
        activation: str = "relu",
        **kwargs: Any,
    ) -> None:
        data_shape = tuple(int(d) for d in data_shape)
        hidden = [int(w) for w in hidden]
        size = int(np.prod(data_shape))
        axis = None if len(data_shape) == 3 else -1  # images: one mean and variance; rows: per feature
        encoder_in = keras.Input((size,), name="normalized")
        h = encoder_in
        for j, width in enumerate(hidden):
            h = keras.layers.Dense(width, activation=activation, name=f"encode_{j}")(h)
        z_mean = keras.layers.Dense(latent_dim, name="z_mean")(h)
        z_log_var = keras.layers.Dense(latent_dim, kernel_initializer="zeros", name="z_log_var")(h)
        encoder = keras.Model(encoder_in, [z_mean, z_log_var], name="encoder")
        decoder_in = keras.Input((latent_dim,), name="z")
        h = decoder_in
        for j, width in enumerate(reversed(hidden)):
            h = keras.layers.Dense(width, activation=activation, name=f"decode_{j}")(h)
        decoder = keras.Model(decoder_in, keras.layers.Dense(size, name="reconstruction")(h), name="decoder")
        inputs = keras.Input(data_shape, name="data")
        flat = keras.layers.Flatten(name="flatten")(keras.layers.Normalization(axis=axis, name="normalize")(inputs))
        mean, _ = encoder(flat)
        restored = keras.layers.Reshape(data_shape, name="unflatten")(decoder(mean))
        outputs = keras.layers.Normalization(axis=axis, invert=True, name="denormalize")(restored)
        super().__init__(inputs, outputs, **kwargs)
        self.data_shape = list(data_shape)
        self.latent_dim = int(latent_dim)
        self.hidden_sizes = hidden
        self.beta = float(beta)
        self.activation_name = activation
        self.seed_generator = keras.random.SeedGenerator()
        self.trackers = [keras.metrics.Mean(name=n) for n in ("reconstruction_loss", "kl_loss")]

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments."""
        return {
            "data_shape": list(self.data_shape),
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden_sizes),
            "beta": self.beta,
            "activation": self.activation_name,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VariationalAutoencoder:
        """Rebuild from ``get_config``."""
        return cls(**config)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        """Reconstruction and KL loss, each averaged over the epoch (the total is made from them)."""
        return list(self.trackers)

    def encode(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """The latent mean and log-variance of each row of ``x`` (raw inputs)."""
        flat = self.get_layer("flatten")(self.get_layer("normalize")(x))
        mean, log_var = self.get_layer("encoder")(flat, training=False)
        return np.asarray(mean), np.asarray(log_var)

    def decode(self, z: Any) -> np.ndarray:
        """Rows in the input's shape and scale decoded from latent points ``z``."""
        restored = self.get_layer("unflatten")(self.get_layer("decoder")(z, training=False))
        return np.asarray(self.get_layer("denormalize")(restored))

    def _loss_terms(self, x: Any, training: bool) -> tuple[Any, Any]:
        flat = self.get_layer("flatten")(self.get_layer("normalize")(x))
        mean, log_var = self.get_layer("encoder")(flat, training=training)
        z = mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        restored = self.get_layer("decoder")(z, training=training)
        reconstruction = ops.mean(ops.sum(ops.square(flat - restored), axis=-1))
        kl = ops.mean(-0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1))
        return reconstruction, kl

    def _track(self, reconstruction: Any, kl: Any) -> dict[str, Any]:
        for tracker, value in zip(self.trackers, (reconstruction, kl), strict=True):
            tracker.update_state(value)
        mean_reconstruction, mean_kl = (tracker.result() for tracker in self.trackers)
        return {
            "loss": mean_reconstruction + self.beta * mean_kl,
            "reconstruction_loss": mean_reconstruction,
            "kl_loss": mean_kl,
        }

    def train_step(self, data: Any) -> dict[str, Any]:
        """One optimisation step on a batch (targets, if any, are ignored)."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            reconstruction, kl = self._loss_terms(x, True)
            loss = reconstruction + self.beta * kl
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        return self._track(reconstruction, kl)

    def test_step(self, data: Any) -> dict[str, Any]:
        """The losses on a batch, without updates."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(*self._loss_terms(x, False))


@register("vae")
def build(input_shape: tuple[int, ...], num_classes: int, params: VaeParams) -> keras.Model:
    """A VariationalAutoencoder over rows shaped ``input_shape`` (``num_classes`` is not used).

    Images (H, W, C) are normalised with one mean and variance, tabular rows per feature; both are
    flattened into Dense layers ``hidden`` (mirrored in the decoder) around a ``latent_dim`` Gaussian.
    Params (``latent_dim``, ``hidden`` widths, ``beta`` the KL weight, ``activation``), their ranges and
    defaults: ``ml.specs.VaeParams``.
    """
    return VariationalAutoencoder(
        data_shape=tuple(input_shape),
        latent_dim=params.latent_dim,
        hidden=list(params.hidden),
        beta=params.beta,
        activation=params.activation,
        name="vae",
    )
