"""Model size and memory budgets, estimated from a train spec or a ``.keras`` config before anything is built
(importing this module does not import TensorFlow; the API checks train specs with it at submit, the import
job checks an uploaded model's config with it before Keras builds the model).

An estimate counts, per sample, the values each layer outputs (what training keeps for the backward pass,
plus the per-step states a recurrent layer keeps), and the weights. A training job needs its weights, their
gradients and the optimizer's slots, and twice its activations per sample (kept values and their gradients)
times the batch size; inference needs the weights and, at most, two consecutive layers' outputs per row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ml.catalog import KERAS_LAYERS
from ml.layer_sizes import GATES, SIZES, Call, cell_weights, number
from ml.specs import (
    AudioCnnParams,
    CnnParams,
    MlpParams,
    PolicyParams,
    RecommenderParams,
    RnnParams,
    VaeParams,
    architecture_params,
)
from tensorq.core.errors import InvalidRequest, OutOfRange

# A classifier's head is counted as if it had this many classes (the count is known only once data is read).
ASSUMED_CLASSES = 10
# Bytes of one value (float32).
BYTES = 4
# Values the optimizer keeps per weight (Adam: two moments).
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}
# Rows per forward pass of a predict job (ml.inference.predict's batch).
PREDICT_BATCH = 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class Estimate:
    """A model on paper: its weights, the values its layers output per sample, and the largest pair of
    consecutive layers' outputs (what a forward pass holds at once)."""

    params: int
    outputs: int
    internal: int = 0
    peak: int = 0

    @property
    def activations(self) -> int:
        """Values kept per sample for the backward pass: layer outputs and recurrent states."""
        return self.outputs + self.internal

    def train_bytes(self, batch_size: int, optimizer: str = "adam") -> int:
        """Memory of a training step: weights, gradients, optimizer slots; activations and their gradients."""
        slots = OPTIMIZER_SLOTS.get(optimizer, 2)
        return BYTES * (self.params * (2 + slots) + 2 * batch_size * self.activations)

    def inference_bytes(self, batch_size: int = PREDICT_BATCH) -> int:
        """Memory of a forward pass over ``batch_size`` rows: the weights and two consecutive layers' outputs."""
        return BYTES * (self.params + batch_size * max(self.peak, 1))


class _Tally:
    """Adds up layer outputs (and weights) in order, remembering the largest consecutive pair."""

    def __init__(self) -> None:
        self.params = self.outputs = self.internal = self.peak = 0
        self._last = 0

    def layer(self, size: int, params: int = 0) -> None:
        self.params += params
        self.outputs += size
        self.peak = max(self.peak, self._last + size)
        self._last = size

    def estimate(self) -> Estimate:
        return Estimate(self.params, self.outputs, self.internal, self.peak)


def _dense(tally: _Tally, inputs: int, widths: list[int], dropout: bool = False) -> int:
    """Dense layers of ``widths`` on ``inputs`` features (each followed by a Dropout when ``dropout``)."""
    for width in widths:
        tally.layer(width, inputs * width + width)
        if dropout:
            tally.layer(width)
        inputs = width
    return inputs


def train_estimate(architecture: str, params: Any, feature_shape: tuple[int, ...]) -> Estimate:
    """The model ``architecture`` builds with ``params`` (checked by ``ml.specs``) on examples shaped
    ``feature_shape`` (``()`` for text); the recommender's size depends on its data and counts as small."""
    typed = architecture_params(architecture, params)
    shape = tuple(int(d) for d in feature_shape)
    features = math.prod(shape) if shape else 1
    tally = _Tally()
    tally.layer(features)  # the input
    if isinstance(typed, MlpParams):
        tally.layer(features)  # Normalization
        if len(shape) > 1:
            tally.layer(features)  # Flatten
        last = _dense(tally, features, list(typed.hidden), dropout=bool(typed.dropout))
        _dense(tally, last, [ASSUMED_CLASSES])
    elif isinstance(typed, CnnParams):
        _cnn(tally, typed, shape)
    elif isinstance(typed, VaeParams):
        _vae(tally, typed, features)
    elif isinstance(typed, RnnParams):
        _rnn(tally, typed, shape)
    elif isinstance(typed, RecommenderParams):
        tally.layer(4 * typed.factors + 2)
    elif isinstance(typed, AudioCnnParams):
        _audio_cnn(tally, typed)
    elif isinstance(typed, PolicyParams):  # the policy, then the critic trained beside it
        _dense(tally, _dense(tally, features, list(typed.hidden)), [ASSUMED_CLASSES])
        _dense(tally, _dense(tally, features, list(typed.hidden)), [1])
    return tally.estimate()


def _audio_cnn(tally: _Tally, p: AudioCnnParams) -> None:
    """The spectrogram, then the Conv2D stack over (frames, mels) as ``ml.architectures.audio_cnn``."""
    frame = max(8, round(p.sample_rate * p.frame_ms / 1000))
    hop = max(1, round(p.sample_rate * p.hop_ms / 1000))
    frames = max(1, 1 + (p.clip_samples - frame) // hop)
    height, width, channels = frames, p.n_mels, 1
    tally.layer(height * width)  # the log-mel spectrogram
    tally.layer(height * width)  # Reshape to one channel
    size = min(height, width)
    for count in p.filters:
        tally.layer(height * width * count, 9 * channels * count + count)
        channels = count
        if size // 2 >= 2:
            height, width, size = height // 2, width // 2, size // 2
            tally.layer(height * width * channels)  # MaxPooling2D
    flat = height * width * channels
    tally.layer(flat)  # Flatten
    if p.dropout:
        tally.layer(flat)
    last = _dense(tally, flat, [p.dense])
    _dense(tally, last, [ASSUMED_CLASSES])


def _cnn(tally: _Tally, p: CnnParams, shape: tuple[int, ...]) -> None:
    height, width, channels = (shape + (1, 1, 1))[:3]
    tally.layer(height * width * channels)  # Normalization
    size = min(height, width)
    for i, count in enumerate(p.filters):
        tally.layer(height * width * count, p.kernel_size**2 * channels * count + count)
        channels = count
        if i < len(p.filters) - 1 and size // 2 >= 2:
            height, width, size = height // 2, width // 2, size // 2
            tally.layer(height * width * channels)  # MaxPooling2D
    flat = height * width * channels
    tally.layer(flat)  # Flatten
    last = _dense(tally, flat, [p.dense], dropout=bool(p.dropout))
    _dense(tally, last, [ASSUMED_CLASSES])


def _vae(tally: _Tally, p: VaeParams, features: int) -> None:
    tally.layer(features)  # Normalization
    tally.layer(features)  # Flatten
    last = _dense(tally, features, list(p.hidden))
    _dense(tally, last, [p.latent_dim])  # z_mean
    _dense(tally, last, [p.latent_dim])  # z_log_var
    last = _dense(tally, p.latent_dim, [*reversed(p.hidden), features])
    tally.layer(features)  # Reshape
    tally.layer(features)  # the inverse Normalization


def _rnn(tally: _Tally, p: RnnParams, shape: tuple[int, ...]) -> None:
    if not shape:  # text: vectorised to sequence_length tokens, embedded
        steps, inputs = p.sequence_length, p.embedding_dim
        tally.layer(steps)
        tally.layer(steps * inputs, p.max_tokens * inputs)
    else:
        steps, inputs = shape[0], shape[1] if len(shape) > 1 else 1
        if len(shape) == 3:
            tally.layer(steps * inputs)  # Reshape
        tally.layer(steps * inputs)  # Normalization
    directions, gates = (2 if p.bidirectional else 1), GATES[p.cell]
    for i in range(p.layers):
        weights = directions * cell_weights(gates, inputs, p.units, p.cell == "gru")
        inputs = p.units * directions
        tally.layer(inputs * (steps if i < p.layers - 1 else 1), weights)
        tally.internal += steps * inputs * (gates + 1)  # per step: the gates' values and the cell state
    if p.dense:
        inputs = _dense(tally, inputs, [p.dense])
    _dense(tally, inputs, [ASSUMED_CLASSES])


def train_params(architecture: str, params: Any, feature_shape: tuple[int, ...]) -> int:
    """Estimated trainable parameters of ``architecture`` with ``params`` on examples shaped ``feature_shape``."""
    return train_estimate(architecture, params, feature_shape).params


# ---------------------------------------------------------------- .keras configs


def _layers(config: Any) -> Iterator[dict[str, Any]]:
    """Every layer of a Keras model config (``{"class_name", "config"}``), in order, a nested model's layers in
    its place (a model is what has a ``layers`` list); the object itself when it has none (TensorQ's VAE)."""
    stack = [config]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        cfg = item.get("config")
        inner = cfg.get("layers") if isinstance(cfg, dict) else None
        if isinstance(inner, list):
            stack.extend(reversed(inner))
        elif isinstance(item.get("class_name"), str) and isinstance(cfg, dict):
            yield item


def _inbound(layer: dict[str, Any]) -> list[str]:
    """The names of the layers whose outputs a functional model's layer is called on, in order."""
    names: list[str] = []
    stack = [layer.get("inbound_nodes")]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            tensor = item.get("config") if item.get("class_name") == "__keras_tensor__" else None
            history = tensor.get("keras_history") if isinstance(tensor, dict) else None
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
            else:
                stack.extend(reversed(list(item.values())))
    return names


def _shape(value: Any) -> tuple[int, ...] | None:
    """A declared shape without its batch axis (None when it is not a flat list)."""
    if not isinstance(value, list | tuple) or not value or any(isinstance(v, list | tuple | dict) for v in value):
        return None
    return tuple(number(v) for v in value[1:])


def _declared_width(layer: dict[str, Any]) -> int:
    """The last input dimension a layer's ``build_config`` declares (Keras builds its weights with it)."""
    build = layer.get("build_config")
    shape = _shape(build.get("input_shape")) if isinstance(build, dict) else None
    return shape[-1] if shape else 0


def _refuse_unknown(layers: list[dict[str, Any]]) -> None:
    """InvalidRequest ``unsupported_layer`` naming the layer classes that cannot be sized before they are built."""
    unknown = sorted({layer["class_name"] for layer in layers} - set(SIZES) - {"InputLayer"})
    if unknown:
        raise InvalidRequest(
            f"the model uses layers whose size cannot be estimated before they are built: {', '.join(unknown[:20])}",
            code="unsupported_layer",
            details={"layers": unknown[:20], "supported": sorted(KERAS_LAYERS)},
        )


def config_estimate(config: dict[str, Any]) -> Estimate:
    """A ``.keras`` config on paper: each layer's weights and output (``ml.layer_sizes``) from the outputs of the
    layers it is called on (in a functional model) or of the layer before, and its declared sizes; a layer that
    cannot be sized is refused (InvalidRequest ``unsupported_layer``)."""
    layers = list(_layers(config))
    _refuse_unknown(layers)
    tally, shape = _Tally(), (1,)
    outputs: dict[str, tuple[int, ...]] = {}
    for layer in layers:
        kind, cfg = layer["class_name"], layer["config"]
        if kind == "InputLayer":
            shape = _shape(cfg.get("batch_shape") or cfg.get("batch_input_shape")) or (1,)
            tally.layer(math.prod(shape))
        else:
            shapes = tuple(outputs.get(name, shape) for name in _inbound(layer)) or (shape,)
            width = max(shapes[0][-1] if shapes[0] else 1, _declared_width(layer))
            weights, shape, internal = SIZES[kind](cfg, Call(shapes[0], width, shapes))
            tally.internal += internal
            tally.layer(math.prod(shape) if shape else 1, weights)
        name = layer.get("name") or cfg.get("name")
        if isinstance(name, str):
            outputs[name] = shape
    return tally.estimate()


def config_params(config: dict[str, Any]) -> int:
    """Estimated parameters of a ``.keras`` config."""
    return config_estimate(config).params


# ---------------------------------------------------------------- the checks


def check_params(estimate: int, limit: int, what: str) -> None:
    """Raise OutOfRange (422 ``model_too_large``) when ``estimate`` parameters exceed ``limit``."""
    if estimate > limit:
        raise OutOfRange(
            f"{what} would have about {estimate:,} parameters; the limit is {limit:,}",
            code="model_too_large",
            details={"estimated_params": estimate, "limit": limit, "setting": "max_model_params"},
        )


def check_memory(needed_bytes: int, limit_mb: int, what: str) -> None:
    """Raise OutOfRange (422 ``memory_budget_exceeded``) when ``needed_bytes`` exceed ``limit_mb`` (0: no limit)."""
    if limit_mb and needed_bytes > limit_mb * MB:
        needed_mb = math.ceil(needed_bytes / MB)
        raise OutOfRange(
            f"{what} would need about {needed_mb:,} MB of memory; the limit is {limit_mb:,} MB",
            code="memory_budget_exceeded",
            details={"estimated_mb": needed_mb, "limit_mb": limit_mb, "setting": "max_job_memory_mb"},
        )
