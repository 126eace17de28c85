"""Model size budgets: parameter counts estimated from a train spec or a ``.keras`` config, before anything
is built (importing this module does not import TensorFlow; the API checks train specs with it at submit).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from tensorq.errors import OutOfRange

# A classifier's head is counted as if it had this many classes (the count is known only once data is read).
ASSUMED_CLASSES = 10
# Weights of one recurrent cell per unit of its input and state: LSTM has 4 gates, GRU 3.
GATES = {"lstm": 4, "gru": 3}


def _dense(inputs: int, widths: list[int]) -> tuple[int, int]:
    """Parameters of a Dense stack on ``inputs`` features, and the last width."""
    total = 0
    for width in widths:
        total += inputs * width + width
        inputs = width
    return total, inputs


def train_params(architecture: str, params: dict[str, Any], feature_shape: tuple[int, ...]) -> int:
    """Estimated trainable parameters of ``architecture`` with ``params`` (already checked by ``ml.specs``) on
    examples shaped ``feature_shape`` (``()`` for text); 0 when the size depends on the data (recommender)."""
    features = math.prod(feature_shape) if feature_shape else 1
    if architecture == "mlp":
        body, last = _dense(features, list(params.get("hidden", [64, 32])))
        return body + last * ASSUMED_CLASSES + ASSUMED_CLASSES
    if architecture == "cnn":
        return _cnn_params(params, feature_shape)
    if architecture == "vae":
        hidden = list(params.get("hidden", [128, 64]))
        latent = int(params.get("latent_dim", 8))
        encoder, last = _dense(features, hidden)
        decoder, _ = _dense(latent, [*reversed(hidden), features])
        return encoder + last * 2 * latent + 2 * latent + decoder
    if architecture == "rnn":
        return _rnn_params(params, feature_shape)
    return 0


def _cnn_params(params: dict[str, Any], shape: tuple[int, ...]) -> int:
    filters = list(params.get("filters", [32, 64, 64]))
    kernel = int(params.get("kernel_size", 3))
    height, width, channels = (tuple(shape) + (1, 1, 1))[:3]
    size, total = min(height, width), 0
    for i, count in enumerate(filters):
        total += kernel * kernel * channels * count + count
        channels = count
        if i < len(filters) - 1 and size // 2 >= 2:
            height, width, size = height // 2, width // 2, size // 2
    dense = int(params.get("dense", 64))
    total += height * width * channels * dense + dense
    return total + dense * ASSUMED_CLASSES + ASSUMED_CLASSES


def _rnn_params(params: dict[str, Any], shape: tuple[int, ...]) -> int:
    units, layers = int(params.get("units", 64)), int(params.get("layers", 1))
    directions = 2 if params.get("bidirectional") else 1
    gates = GATES.get(str(params.get("cell", "lstm")), 4)
    total = 0
    if not shape:  # text: an embedding of the vocabulary
        inputs = int(params.get("embedding_dim", 64))
        total += int(params.get("max_tokens", 20_000)) * inputs
    else:
        inputs = shape[1] if len(shape) > 1 else 1
    for _ in range(layers):
        total += directions * gates * (units * (inputs + units) + 2 * units)
        inputs = units * directions
    dense = int(params.get("dense", 0))
    if dense:
        total += inputs * dense + dense
        inputs = dense
    return total + inputs * ASSUMED_CLASSES + ASSUMED_CLASSES


def _layers(node: Any) -> Iterator[dict[str, Any]]:
    """Every serialised layer (``{"class_name", "config"}``) in a Keras config, in order, without recursion."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str) and isinstance(item.get("config"), dict):
                yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _int(value: Any) -> int:
    """A config number as a non-negative int (anything else counts as 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 1
    return max(int(value), 0)


def _dims(value: Any) -> int:
    if isinstance(value, list | tuple):
        return math.prod(_int(v) for v in value if v is not None) if value else 1
    return _int(value)


def config_params(config: dict[str, Any]) -> int:
    """Estimated parameters of a ``.keras`` config: each Dense, convolution, Embedding and recurrent layer's
    weights from its declared sizes, its input width taken from the layer before (or the model's input)."""
    total, width = 0, 1
    for layer in _layers(config):
        kind, cfg = layer["class_name"], layer["config"]
        if kind == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape") or [None, 1]
            width = _int(shape[-1]) if isinstance(shape, list) and shape and shape[-1] is not None else 1
        elif kind == "Dense":
            units = _int(cfg.get("units"))
            total += width * units + units
            width = units
        elif kind in ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "SeparableConv2D", "DepthwiseConv2D"):
            count = _int(cfg.get("filters", width))
            total += _dims(cfg.get("kernel_size", 1)) * width * count + count
            width = count
        elif kind == "Embedding":
            width = _int(cfg.get("output_dim"))
            total += _int(cfg.get("input_dim")) * width
        elif kind in ("LSTM", "GRU", "SimpleRNN"):
            units = _int(cfg.get("units"))
            total += GATES.get(kind.lower(), 1) * (units * (width + units) + 2 * units)
            width = units
    return total


def check_params(estimate: int, limit: int, what: str) -> None:
    """Raise OutOfRange (422 ``model_too_large``) when ``estimate`` parameters exceed ``limit``."""
    if estimate > limit:
        raise OutOfRange(
            f"{what} would have about {estimate:,} parameters; the limit is {limit:,}",
            code="model_too_large",
            details={"estimated_params": estimate, "limit": limit, "setting": "max_model_params"},
        )
