"""What each layer an uploaded ``.keras`` may use weighs, read from its config before Keras builds it: one
function per layer class (``SIZES``), each giving the layer's weights, its output shape and the values it keeps
inside per sample, from the shapes it is called on. A layer class without one cannot be estimated and is
refused (``ml.catalog.KERAS_LAYERS`` is this table's list). Importing this module does not import TensorFlow.

Every count is an upper bound of what Keras builds (biases are counted whether used or not, normalisation
layers count their statistics too); shapes leave out the batch axis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from tensorq.core.errors import InvalidRequest

Shape = tuple[int, ...]
# Weights, output shape, values kept per sample inside the layer (a recurrent layer's per-step states).
Effect = tuple[int, Shape, int]
# Weights of one recurrent cell per unit of its input and state: LSTM has 4 gates, GRU 3.
GATES = {"lstm": 4, "gru": 3, "simplernn": 1}


@dataclass(frozen=True)
class Call:
    """What a layer is called on: its first input's shape, the width its weights are built for (the larger of
    that shape's last axis and the width its ``build_config`` declares), and every input's shape."""

    shape: Shape
    width: int
    shapes: tuple[Shape, ...]

    @property
    def size(self) -> int:
        """Values of the first input per sample."""
        return math.prod(self.shape) if self.shape else 1


def number(value: Any) -> int:
    """A config number as a non-negative int (anything else, ``None`` included, counts as 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 1
    return max(int(value), 0)


def numbers(value: Any, rank: int) -> Shape:
    """A size or a list of sizes as ``rank`` ints."""
    if isinstance(value, list | tuple):
        values = tuple(number(v) for v in value)
        return (values + (1,) * rank)[:rank] if values else (1,) * rank
    return (number(value),) * rank


def cell_weights(gates: int, inputs: int, units: int, two_biases: bool) -> int:
    """Weights of one recurrent cell: input and recurrent kernels, one bias per gate (two for a GRU's reset_after)."""
    return gates * (units * (inputs + units) + units * (2 if two_biases else 1))


def _refuse(kind: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"the model's {kind} layer cannot be sized before it is built: {why}",
        code="unsupported_layer",
        details={"layer": kind, "why": why},
    )


# ---------------------------------------------------------------- layers with weights


def _dense(cfg: dict[str, Any], call: Call) -> Effect:
    units = number(cfg.get("units"))
    return call.width * units + units, (*call.shape[:-1], units), 0


def _einsum_dense(cfg: dict[str, Any], call: Call) -> Effect:
    """``EinsumDense``: each kernel and bias axis takes its size from the input's axes or the declared output
    shape, as Keras builds them; an equation or shape that does not say them is refused."""
    equation = str(cfg.get("equation"))
    parts = re.fullmatch(r"([a-z.]+),([a-z]+)->([a-z.]+)", equation.replace(" ", ""))
    if parts is None:
        raise _refuse("EinsumDense", f"equation {equation[:80]!r} is not of the form 'ab,bc->ac'")
    given, kernel, wanted = parts.groups()
    bias = str(cfg.get("bias_axes") or "")
    full = (1, *call.shape)  # with the batch axis
    letters = given.replace("...", "")
    if len(letters) > len(full) or ("..." not in given and len(letters) != len(full)):
        raise _refuse("EinsumDense", f"equation {equation[:80]!r} does not match an input of rank {len(full)}")
    inputs = full[len(full) - len(letters) :] if given.startswith("...") else full[: len(letters)]
    sizes: dict[str, int | None] = dict(zip(letters, inputs, strict=True))
    out_letters = wanted.replace("...", "")
    named = out_letters if wanted.startswith("...") else out_letters[1:]  # the batch axis has no declared size
    declared = cfg.get("output_shape")
    declared = list(declared) if isinstance(declared, list | tuple) else [declared]
    if len(declared) != len(named):
        raise _refuse("EinsumDense", f"output_shape {str(declared)[:80]} does not match {wanted!r}")
    for axis, size in zip(named, declared, strict=True):
        sizes[axis] = sizes.get(axis) or (None if size is None else number(size))
    unsized = sorted({axis for axis in kernel + bias if not sizes.get(axis)})
    if unsized:
        raise _refuse("EinsumDense", f"no size for its axes {''.join(unsized)}")
    weights = math.prod(sizes[a] or 1 for a in kernel) + (math.prod(sizes[a] or 1 for a in bias) if bias else 0)
    elided = full[1 : len(full) - len(letters)] if given.startswith("...") and wanted.startswith("...") else ()
    return weights, (*elided, *(sizes.get(a) or 1 for a in named)), 0


def _conv(kind: str, cfg: dict[str, Any], call: Call) -> Effect:
    """A convolution, transposed, depthwise or separable (channels last)."""
    rank = 3 if "3D" in kind else 1 if "1D" in kind else 2
    spatial = (call.shape[:-1] + (1,) * rank)[:rank] if len(call.shape) > 1 else (1,) * rank
    kernel = math.prod(numbers(cfg.get("kernel_size", 1), rank))
    strides = numbers(cfg.get("strides", 1), rank)
    width, multiplier = call.width, number(cfg.get("depth_multiplier", 1))
    if kind.startswith("DepthwiseConv"):
        count = width * multiplier
        weights = kernel * count + count
    elif kind.startswith("SeparableConv"):
        count = number(cfg.get("filters", width))
        weights = kernel * width * multiplier + width * multiplier * count + count
    else:
        count = number(cfg.get("filters", width))
        weights = kernel * width * count + count
    if "Transpose" in kind:
        spatial = tuple(d * max(s, 1) + kernel for d, s in zip(spatial, strides, strict=True))
    else:
        spatial = pooled(spatial, numbers(cfg.get("kernel_size", 1), rank), strides, cfg.get("padding"))
    return weights, (*spatial, count), 0


def _embedding(cfg: dict[str, Any], call: Call) -> Effect:
    dim = number(cfg.get("output_dim"))
    return number(cfg.get("input_dim")) * dim, (*call.shape, dim), 0


def _batch_norm(cfg: dict[str, Any], call: Call) -> Effect:
    """Scale, offset and the moving mean and variance over the normalised axis."""
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    width = call.width if axis in (-1, len(call.shape)) else max(call.shape, default=1)
    return 4 * width, call.shape, 0


def _layer_norm(cfg: dict[str, Any], call: Call) -> Effect:
    """Scale and offset over the normalised axes (all of them when they are not simply the last)."""
    axis = cfg.get("axis", -1)
    if isinstance(axis, list | tuple) and len(axis) == 1:
        axis = axis[0]
    width = call.width if axis in (-1, len(call.shape)) else call.size
    return 2 * width, call.shape, 0


def _per_value(cfg: dict[str, Any], call: Call) -> Effect:
    """A layer with up to two values and a count per input value (``Normalization``'s mean and variance,
    ``PReLU``'s slopes)."""
    return 2 * max(call.size, call.width) + 1, call.shape, 0


def _recurrent(kind: str, cfg: dict[str, Any], call: Call) -> Effect:
    """An LSTM, GRU or SimpleRNN; internal: each step's gate values and cell state."""
    units, gates = number(cfg.get("units")), GATES[kind.lower()]
    steps = call.shape[0] if len(call.shape) > 1 else 1
    weights = cell_weights(gates, call.width, units, kind == "GRU" and cfg.get("reset_after", True) is not False)
    out = (steps, units) if cfg.get("return_sequences") else (units,)
    return weights, out, steps * units * (gates + 1)


def _bidirectional(cfg: dict[str, Any], call: Call) -> Effect:
    inner = cfg.get("layer")
    kind = inner.get("class_name") if isinstance(inner, dict) else None
    if kind not in ("LSTM", "GRU", "SimpleRNN"):
        raise _refuse("Bidirectional", "only LSTM, GRU and SimpleRNN layers may be wrapped")
    inner_cfg = inner.get("config") if isinstance(inner.get("config"), dict) else {}  # type: ignore[union-attr]
    weights, out, internal = _recurrent(str(kind), inner_cfg, call)
    if cfg.get("merge_mode", "concat") == "concat":
        out = (*out[:-1], 2 * out[-1])
    return 2 * weights, out, 2 * internal


# ---------------------------------------------------------------- layers without weights


def pooled(spatial: Shape, window: Shape, strides: Shape, padding: Any) -> Shape:
    """Spatial sizes after a window slides over them."""
    if padding == "same":
        return tuple(math.ceil(d / max(s, 1)) for d, s in zip(spatial, strides, strict=True))
    return tuple(max((d - k) // max(s, 1) + 1, 1) for d, k, s in zip(spatial, window, strides, strict=True))


def _pooling(kind: str, cfg: dict[str, Any], call: Call) -> Effect:
    rank = 3 if "3D" in kind else 1 if "1D" in kind else 2
    spatial = (call.shape[:-1] + (1,) * rank)[:rank]
    window = numbers(cfg.get("pool_size", 2), rank)
    strides = numbers(cfg.get("strides") or cfg.get("pool_size", 2), rank)
    return 0, (*pooled(spatial, window, strides, cfg.get("padding")), call.width), 0


def _global_pooling(cfg: dict[str, Any], call: Call) -> Effect:
    return 0, (call.width,), 0


def _upsampling(cfg: dict[str, Any], call: Call) -> Effect:
    factors = numbers(cfg.get("size", 2), max(len(call.shape) - 1, 0))
    return 0, (*(d * f for d, f in zip(call.shape[:-1], factors, strict=True)), call.width), 0


def _flatten(cfg: dict[str, Any], call: Call) -> Effect:
    return 0, (call.size,), 0


def _reshape(cfg: dict[str, Any], call: Call) -> Effect:
    target = cfg.get("target_shape")
    dims = list(target) if isinstance(target, list | tuple) else []
    known = math.prod(number(v) for v in dims if v != -1) or 1
    out = tuple(max(call.size // known, 1) if v == -1 else number(v) for v in dims) or (call.size,)
    return 0, out if math.prod(out) >= call.size else (call.size,), 0


def _permute(cfg: dict[str, Any], call: Call) -> Effect:
    dims = cfg.get("dims")
    if not isinstance(dims, list | tuple) or sorted(number(d) for d in dims) != list(range(1, len(call.shape) + 1)):
        return 0, call.shape, 0
    return 0, tuple(call.shape[number(d) - 1] for d in dims), 0


def _repeat(cfg: dict[str, Any], call: Call) -> Effect:
    return 0, (number(cfg.get("n")), *call.shape), 0


def _same(cfg: dict[str, Any], call: Call) -> Effect:
    return 0, call.shape, 0


def _concatenate(cfg: dict[str, Any], call: Call) -> Effect:
    """Inputs joined along an axis (the last, unless said): that axis adds up, the others are the largest."""
    rank = max(len(shape) for shape in call.shapes)
    shapes = [shape + (1,) * (rank - len(shape)) for shape in call.shapes]
    axis = cfg.get("axis", -1)
    axis = axis - 1 if isinstance(axis, int) and 0 < axis <= rank else axis  # Keras counts the batch axis
    axis = axis % rank if isinstance(axis, int) and not isinstance(axis, bool) and -rank <= axis < rank else -1
    axis %= rank
    return 0, tuple(sum(s[i] for s in shapes) if i == axis else max(s[i] for s in shapes) for i in range(rank)), 0


def _merge(cfg: dict[str, Any], call: Call) -> Effect:
    """Inputs combined value by value (broadcast): the largest of each axis."""
    rank = max(len(s) for s in call.shapes)
    shapes = [(1,) * (rank - len(s)) + s for s in call.shapes]
    return 0, tuple(max(s[i] for s in shapes) for i in range(rank)), 0


# ---------------------------------------------------------------- text and lookup layers


def _vocabulary(cfg: dict[str, Any]) -> int:
    """Tokens a vectoriser or lookup may output: ``max_tokens``, else its vocabulary's size (with its OOV and
    mask slots)."""
    vocabulary = cfg.get("vocabulary")
    listed = len(vocabulary) if isinstance(vocabulary, list) else 0
    size = number(cfg.get("max_tokens")) if cfg.get("max_tokens") is not None else listed
    return max(size, number(cfg.get("vocabulary_size")) if cfg.get("vocabulary_size") else 0) + 2


def _text_vectorization(cfg: dict[str, Any], call: Call) -> Effect:
    mode = cfg.get("output_mode", "int")
    if mode == "int":
        return 0, (number(cfg.get("output_sequence_length")),), 0
    tokens = _vocabulary(cfg)
    return tokens if mode == "tf_idf" else 0, (tokens,), 0


def _lookup(cfg: dict[str, Any], call: Call) -> Effect:
    mode = cfg.get("output_mode", "int")
    if mode == "int":
        return 0, call.shape, 0
    tokens = _vocabulary(cfg)
    shape = (*call.shape, tokens) if mode == "one_hot" and call.size > 1 else (tokens,)
    return tokens if mode == "tf_idf" else 0, shape, 0


# ---------------------------------------------------------------- TensorQ's own classes


def _matrix_factorization(cfg: dict[str, Any], call: Call) -> Effect:
    """User and item embeddings and biases over their vocabularies (each with an unknown slot)."""
    users, items = cfg.get("users"), cfg.get("items")
    ids = (len(users) if isinstance(users, list) else 0) + (len(items) if isinstance(items, list) else 0) + 2
    return ids * (number(cfg.get("factors")) + 1) + 1, (1,), 0


def _tabular_encoder(cfg: dict[str, Any], call: Call) -> Effect:
    """Numbers (with a missing indicator) and one-hot categories, per column."""
    columns = cfg.get("columns")
    width = 0
    for column in columns if isinstance(columns, list) else []:
        vocabulary = column.get("vocabulary") if isinstance(column, dict) else None
        width += len(vocabulary) + 1 if isinstance(vocabulary, list) else 2
    return 0, (max(width, 1),), 0


def _variational_autoencoder(cfg: dict[str, Any], call: Call) -> Effect:
    """Dense encoder and decoder around the latent mean and log-variance, between two normalisations (a mean,
    a variance and a count per feature each, at most); internal: their outputs."""
    data_shape = cfg.get("data_shape")
    features = math.prod(number(d) for d in data_shape) if isinstance(data_shape, list) and data_shape else 1
    hidden = [number(h) for h in cfg.get("hidden") or []] if isinstance(cfg.get("hidden"), list) else []
    latent = number(cfg.get("latent_dim"))
    sizes = [features, *hidden]
    weights = sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False)) + 2 * (sizes[-1] * latent + latent)
    back = [latent, *reversed(hidden), features]
    weights += sum(a * b + b for a, b in zip(back, back[1:], strict=False)) + 2 * (2 * features + 1)
    return (
        weights,
        tuple(number(d) for d in data_shape) if isinstance(data_shape, list) else (features,),
        sum(sizes + back),
    )


_CONVOLUTIONS = (
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
)  # fmt: skip
_POOLINGS = tuple(f"{op}Pooling{rank}D" for op in ("Max", "Average") for rank in (1, 2, 3))
_SHAPE_KEEPING = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
    "Identity", "Rescaling",
)  # fmt: skip

SIZES: dict[str, Callable[[dict[str, Any], Call], Effect]] = {
    "Dense": _dense,
    "EinsumDense": _einsum_dense,
    "Embedding": _embedding,
    **{kind: partial(_conv, kind) for kind in _CONVOLUTIONS},
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Normalization": _per_value,
    "PReLU": _per_value,
    **{kind: partial(_recurrent, kind) for kind in ("LSTM", "GRU", "SimpleRNN")},
    "Bidirectional": _bidirectional,
    **{kind: partial(_pooling, kind) for kind in _POOLINGS},
    **{f"Global{op}Pooling{rank}D": _global_pooling for op in ("Max", "Average") for rank in (1, 2, 3)},
    **{f"UpSampling{rank}D": _upsampling for rank in (1, 2, 3)},
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Permute": _permute,
    "RepeatVector": _repeat,
    **{kind: _same for kind in _SHAPE_KEEPING},
    "Concatenate": _concatenate,
    **{kind: _merge for kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")},
    "TextVectorization": _text_vectorization,
    "StringLookup": _lookup,
    "IntegerLookup": _lookup,
    "MatrixFactorization": _matrix_factorization,
    "TabularEncoder": _tabular_encoder,
    "VariationalAutoencoder": _variational_autoencoder,
}
