"""``audio_cnn``: raw clips in, log-mel spectrograms made inside the model (``tf.signal``), a Conv2D stack."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ml.builders import register
from ml.specs import AudioCnnParams
from tensorq.core.errors import InvalidRequest

SPECTROGRAM = "spectrogram"  # the name of the model's LogMelSpectrogram layer (explanations start after it)
LOG_FLOOR = 1e-6


@keras.saving.register_keras_serializable(package="tensorq")
class LogMelSpectrogram(keras.layers.Layer):
    """(batch, samples) waveforms to (batch, frames, n_mels) log-mel energies, each clip standardised (its
    own mean and deviation), so loudness does not matter and silence is all zeros."""

    def __init__(self, sample_rate: int, frame_length: int, frame_step: int, n_mels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.n_mels = int(n_mels)
        self.fft_length = 1 << max(0, (self.frame_length - 1).bit_length())
        self.mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=self.n_mels,
            num_spectrogram_bins=self.fft_length // 2 + 1,
            sample_rate=self.sample_rate,
            lower_edge_hertz=20.0,
            upper_edge_hertz=self.sample_rate / 2.0,
        )

    def call(self, waveforms: tf.Tensor) -> tf.Tensor:
        """The standardised log-mel spectrogram of each waveform."""
        stft = tf.signal.stft(
            tf.cast(waveforms, tf.float32), self.frame_length, self.frame_step, self.fft_length, pad_end=False
        )
        mel = tf.tensordot(tf.abs(stft), self.mel_matrix, 1)
        log_mel = tf.math.log(mel + LOG_FLOOR)
        mean = tf.reduce_mean(log_mel, axis=[1, 2], keepdims=True)
        std = tf.math.reduce_std(log_mel, axis=[1, 2], keepdims=True)
        return (log_mel - mean) / (std + 1e-3)

    def frames(self, samples: int) -> int:
        """How many frames a clip of ``samples`` makes."""
        return 1 + (samples - self.frame_length) // self.frame_step

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        """(batch, frames, n_mels)."""
        samples = input_shape[1]
        return (input_shape[0], None if samples is None else self.frames(int(samples)), self.n_mels)

    def get_config(self) -> dict[str, Any]:
        """The layer's arguments (the mel matrix is remade from them)."""
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "n_mels": self.n_mels,
        }


@register("audio_cnn")
def build(input_shape: tuple[int, ...], num_classes: int, params: AudioCnnParams) -> keras.Model:
    """Clip (samples at ``params.sample_rate``), LogMelSpectrogram named "spectrogram", Conv2D stack over
    (frames, mels) with 2x2 max-pools while both sides stay at least 2, Flatten, Dropout, Dense, softmax.
    Params, their ranges and defaults: ``ml.specs.AudioCnnParams``.
    """
    if len(input_shape) != 1:
        raise InvalidRequest(
            f"audio_cnn needs clips of samples (one axis), not {list(input_shape)}",
            details={"input_shape": list(input_shape)},
        )
    rate = params.sample_rate
    frame = max(8, round(rate * params.frame_ms / 1000))
    hop = max(1, round(rate * params.hop_ms / 1000))
    if input_shape[0] < frame:
        raise InvalidRequest("the clip window is shorter than one frame", details={"samples": input_shape[0]})
    inputs = keras.Input(shape=input_shape, name="audio")
    spectrogram = LogMelSpectrogram(rate, frame, hop, params.n_mels, name=SPECTROGRAM)
    x = spectrogram(inputs)
    frames = spectrogram.frames(int(input_shape[0]))
    x = keras.layers.Reshape((frames, params.n_mels, 1), name="channel")(x)
    size = min(frames, params.n_mels)
    for i, count in enumerate(params.filters):
        x = keras.layers.Conv2D(count, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        if size // 2 >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
            size //= 2
    x = keras.layers.Flatten(name="flatten")(x)
    if params.dropout:
        x = keras.layers.Dropout(params.dropout, name="dropout")(x)
    x = keras.layers.Dense(params.dense, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="audio_cnn")
