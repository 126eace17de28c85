"""Checks shared by the API (before a job is queued, or when a file is uploaded) and the TensorFlow core
(when a job runs): numbers in their range, inline inputs shaped as a batch for a model, and the lines of
a ``.jsonl`` text dataset. It imports numpy (and ``tensorq``'s ground) only, never TensorFlow."""

from __future__ import annotations

import json
import numbers
from typing import Any

import numpy as np

from tensorq.core import bounded_json
from tensorq.core.errors import InvalidRequest, OutOfRange

Shape = list[int | None]
# Models compute in float32: a larger magnitude would become infinity inside the worker.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (and not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(field: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; anything else is an OutOfRange naming the field."""
    if not is_int(value) or not low <= value <= high:
        raise OutOfRange(f"{field} must be an integer in {low}..{high}", details={"field": field})
    return int(value)


def check_float(field: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``; anything else is an OutOfRange naming the field."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise OutOfRange(f"{field} must be a number in [{low}, {high}]", details={"field": field})
    return float(value)


def _fits(got: list[int], want: Shape) -> bool:
    return len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want, strict=True))


def input_layout(got: list[int], want: Shape) -> tuple[bool, bool] | None:
    """How an array shaped ``got`` becomes a batch for a model taking ``want`` per example: whether to add a
    batch axis (a single example) and a channel axis ((H, W) for (H, W, 1)); None when it cannot."""
    channel = bool(want) and want[-1] == 1
    if got and _fits(got[1:], want):
        return False, False
    if got and channel and _fits([*got[1:], 1], want):
        return False, True
    if _fits(got, want):
        return True, False
    if channel and _fits([*got, 1], want):
        return True, True
    return None


def shape_mismatch(got: list[int], want: Shape) -> InvalidRequest:
    """The error for inputs that cannot be a batch for the model."""
    return InvalidRequest(
        f"input shape {got} does not match the model's input shape {want}",
        details={"expected_shape": ["batch", *want], "got_shape": got},
    )


def batch_shape(inputs: list[Any], input_shape: Shape) -> tuple[int, ...]:
    """The shape of ``inputs`` as a batch for a model taking ``input_shape``; InvalidRequest when it cannot be
    one (what the API checks before queueing; ``ml.inference.coerce_inputs`` makes the batch itself)."""
    try:
        array = np.asarray(inputs, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(
            "inputs must be a rectangular array of numbers", details={"expected_shape": ["batch", *input_shape]}
        ) from exc
    if not np.all(np.isfinite(array)):
        raise InvalidRequest("inputs contain NaN or infinite values")
    if array.size and np.abs(array).max() > FLOAT32_MAX:
        raise OutOfRange(f"inputs must lie within float32's range (|x| <= {FLOAT32_MAX:.4g})")
    got = list(array.shape)
    layout = input_layout(got, input_shape)
    if layout is None:
        raise shape_mismatch(got, input_shape)
    return (1, *got) if layout[0] else tuple(got)


def text_row(raw: bytes, number: int, max_line: int, require_label: bool = True) -> tuple[str, Any] | None:
    """The ``text`` and ``label`` of line ``number`` of a ``.jsonl`` text dataset (None for a blank line):
    a JSON object with a string ``text`` and an integer or string ``label``, at most ``max_line`` bytes."""
    if len(raw) > max_line:
        raise InvalidRequest(f"line {number} is longer than {max_line} bytes", details={"line": number})
    if not raw.strip():
        return None
    try:
        row = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise InvalidRequest(f"line {number} is nested too deeply", code="too_deep", details={"line": number}) from None
    except ValueError as exc:
        raise InvalidRequest(f"line {number} is not JSON: {exc}", details={"line": number}) from None
    bounded_json.check(row, what=f"line {number}")  # no deep nesting, no NUL characters
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise InvalidRequest(f"line {number} needs a string 'text'", details={"line": number})
    label = row.get("label")
    if require_label and (isinstance(label, bool) or not isinstance(label, int | str)):
        raise InvalidRequest(f"line {number} needs an integer or string 'label'", details={"line": number})
    return row["text"], label
