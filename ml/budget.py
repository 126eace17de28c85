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

from ml.specs import CnnParams, MlpParams, RecommenderParams, RnnParams, VaeParams, architecture_params
from tensorq.errors import OutOfRange

# A classifier's head is counted as if it had this many classes (the count is known only once data is read).
ASSUMED_CLASSES = 10
# Weights of one recurrent cell per unit of its input and state: LSTM has 4 gates, GRU 3.
GATES = {"lstm": 4, "gru": 3, "simplernn": 1}
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
    return tally.estimate()


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
        weights = directions * _cell_weights(gates, inputs, p.units, p.cell == "gru")
        inputs = p.units * directions
        tally.layer(inputs * (steps if i < p.layers - 1 else 1), weights)
        tally.internal += steps * inputs * (gates + 1)  # per step: the gates' values and the cell state
    if p.dense:
        inputs = _dense(tally, inputs, [p.dense])
    _dense(tally, inputs, [ASSUMED_CLASSES])


def _cell_weights(gates: int, inputs: int, units: int, two_biases: bool) -> int:
    """Weights of one recurrent cell: input and recurrent kernels, one bias per gate (two for a GRU's reset_after)."""
    return gates * (units * (inputs + units) + units * (2 if two_biases else 1))


def train_params(architecture: str, params: Any, feature_shape: tuple[int, ...]) -> int:
    """Estimated trainable parameters of ``architecture`` with ``params`` on examples shaped ``feature_shape``."""
    return train_estimate(architecture, params, feature_shape).params


# ---------------------------------------------------------------- .keras configs


def _is_layer(item: dict[str, Any]) -> bool:
    module = item.get("module")
    return "build_config" in item or (isinstance(module, str) and module.startswith("keras.layers"))


def _layers(node: Any) -> Iterator[dict[str, Any]]:
    """Every serialised layer (``{"class_name", "config"}``) in a Keras config, in order, without recursion;
    a ``Bidirectional`` is yielded whole (its inner layers are not)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str) and isinstance(item.get("config"), dict):
                yield item
                if item["class_name"] == "Bidirectional":
                    continue
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _int(value: Any) -> int:
    """A config number as a non-negative int (anything else, ``None`` included, counts as 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 1
    return max(int(value), 0)


def _ints(value: Any, rank: int) -> tuple[int, ...]:
    """A size or a list of sizes as ``rank`` ints."""
    if isinstance(value, list | tuple):
        values = tuple(_int(v) for v in value)
        return (values + (1,) * rank)[:rank] if values else (1,) * rank
    return (_int(value),) * rank


def _shape(value: Any) -> tuple[int, ...] | None:
    """A declared shape without its batch axis (None when it is not a flat list)."""
    if not isinstance(value, list | tuple) or not value or any(isinstance(v, list | tuple | dict) for v in value):
        return None
    return tuple(_int(v) for v in value[1:])


def _declared_width(layer: dict[str, Any]) -> int:
    """The last input dimension a layer's ``build_config`` declares (Keras builds its weights with it)."""
    build = layer.get("build_config")
    shape = _shape(build.get("input_shape")) if isinstance(build, dict) else None
    return shape[-1] if shape else 0


def _conv(kind: str, cfg: dict[str, Any], shape: tuple[int, ...], width: int) -> tuple[int, tuple[int, ...]]:
    """Weights and output shape of a convolution (channels last)."""
    rank = 3 if "3D" in kind else 1 if "1D" in kind else 2
    spatial = (shape[:-1] + (1,) * rank)[:rank] if len(shape) > 1 else (1,) * rank
    kernel = _ints(cfg.get("kernel_size", 1), rank)
    strides = _ints(cfg.get("strides", 1), rank)
    if kind.startswith("DepthwiseConv"):
        count = width * _int(cfg.get("depth_multiplier", 1))
        weights = math.prod(kernel) * count + count
    else:
        count = _int(cfg.get("filters", width))
        weights = math.prod(kernel) * width * count + count
        if kind.startswith("SeparableConv"):
            weights = math.prod(kernel) * width + width * count + count
    if "Transpose" in kind:
        spatial = tuple(d * max(s, 1) for d, s in zip(spatial, strides, strict=True))
    else:
        spatial = _pooled(spatial, kernel, strides, cfg.get("padding"))
    return weights, (*spatial, count)


def _pooled(spatial: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...], padding: Any) -> tuple:
    if padding == "same":
        return tuple(math.ceil(d / max(s, 1)) for d, s in zip(spatial, strides, strict=True))
    return tuple(max((d - k) // max(s, 1) + 1, 1) for d, k, s in zip(spatial, window, strides, strict=True))


def _reshape(target: Any, size: int) -> tuple[int, ...]:
    dims = [v for v in target] if isinstance(target, list | tuple) else []
    known = math.prod(_int(v) for v in dims if v != -1) or 1
    return tuple(max(size // known, 1) if v == -1 else _int(v) for v in dims) or (size,)


def _recurrent(kind: str, cfg: dict[str, Any], shape: tuple[int, ...], width: int) -> tuple[int, tuple, int]:
    """Weights, output shape and per-sample internal values of an LSTM, GRU or SimpleRNN."""
    units, gates = _int(cfg.get("units")), GATES.get(kind.lower(), 1)
    steps = shape[0] if len(shape) > 1 else 1
    weights = _cell_weights(gates, width, units, kind == "GRU" and cfg.get("reset_after", True) is not False)
    out = (steps, units) if cfg.get("return_sequences") else (units,)
    return weights, out, steps * units * (gates + 1)


def _effect(layer: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, tuple[int, ...], int]:
    """Weights, output shape and internal per-sample values of one layer on input ``shape``."""
    kind, cfg = layer["class_name"], layer["config"]
    width = max(shape[-1] if shape else 1, _declared_width(layer))
    size = math.prod(shape) if shape else 1
    if kind == "Dense":
        units = _int(cfg.get("units"))
        return width * units + units, (*shape[:-1], units), 0
    if "Conv" in kind:
        weights, out = _conv(kind, cfg, shape, width)
        return weights, out, 0
    if kind.startswith(("MaxPooling", "AveragePooling")):
        rank = 3 if "3D" in kind else 1 if "1D" in kind else 2
        spatial = (shape[:-1] + (1,) * rank)[:rank]
        window = _ints(cfg.get("pool_size", 2), rank)
        strides = _ints(cfg.get("strides") or cfg.get("pool_size", 2), rank)
        return 0, (*_pooled(spatial, window, strides, cfg.get("padding")), width), 0
    if kind.startswith("Global"):
        return 0, (width,), 0
    if kind.startswith("UpSampling"):
        rank = len(shape) - 1
        factors = _ints(cfg.get("size", 2), rank)
        return 0, (*(d * f for d, f in zip(shape[:-1], factors, strict=True)), width), 0
    if kind in ("BatchNormalization", "LayerNormalization"):
        return width * (bool(cfg.get("scale", True)) + bool(cfg.get("center", True))), shape, 0
    if kind == "Flatten":
        return 0, (size,), 0
    if kind == "Reshape":
        return 0, _reshape(cfg.get("target_shape"), size), 0
    if kind == "Embedding":
        dim = _int(cfg.get("output_dim"))
        return _int(cfg.get("input_dim")) * dim, (*shape, dim), 0
    if kind in ("LSTM", "GRU", "SimpleRNN"):
        return _recurrent(kind, cfg, shape, width)
    if kind == "Bidirectional":
        inner = cfg.get("layer")
        if not isinstance(inner, dict) or inner.get("class_name") not in ("LSTM", "GRU", "SimpleRNN"):
            return 0, shape, 0
        weights, out, internal = _recurrent(inner["class_name"], inner.get("config") or {}, shape, width)
        if cfg.get("merge_mode", "concat") == "concat":
            out = (*out[:-1], 2 * out[-1])
        return 2 * weights, out, 2 * internal
    return 0, shape, 0


def config_estimate(config: dict[str, Any]) -> Estimate:
    """A ``.keras`` config on paper: each layer's weights and output from its declared sizes, its input taken
    from the layer before (or the model's input), in the config's order; other layers keep their input's shape."""
    tally, shape = _Tally(), (1,)
    for layer in _layers(config):
        if not _is_layer(layer):
            continue
        if layer["class_name"] == "InputLayer":
            cfg = layer["config"]
            shape = _shape(cfg.get("batch_shape") or cfg.get("batch_input_shape")) or (1,)
            tally.layer(math.prod(shape))
            continue
        weights, shape, internal = _effect(layer, shape)
        tally.internal += internal
        tally.layer(math.prod(shape) if shape else 1, weights)
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
