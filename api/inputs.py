"""Checks inline inputs against a model's signature before a job is queued."""

from __future__ import annotations

from typing import Any

import numpy as np

from tensorq.errors import InvalidRequest, OutOfRange

# Models compute in float32: a larger magnitude would become infinity inside the worker.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def batch_shape(inputs: list[Any], input_shape: list[int | None]) -> tuple[int, ...]:
    """The shape of ``inputs`` as a batch for a model taking ``input_shape``; 400 when it cannot be one."""
    try:
        array = np.asarray(inputs, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(
            "inputs must be a rectangular array of numbers",
            details={"expected_shape": ["batch", *input_shape]},
        ) from exc
    if not np.all(np.isfinite(array)):
        raise InvalidRequest("inputs contain NaN or infinite values")
    if array.size and np.abs(array).max() > FLOAT32_MAX:
        raise OutOfRange(f"inputs must lie within float32's range (|x| <= {FLOAT32_MAX:.4g})")
    want = [d for d in input_shape]
    got = list(array.shape)
    if _matches(got[1:], want) or _matches(got[1:], want[:-1]) and want[-1] == 1:
        return tuple(got)
    if _matches(got, want) or _matches(got, want[:-1]) and want and want[-1] == 1:
        return (1, *got)
    raise InvalidRequest(
        f"input shape {got} does not match the model's input shape {want}",
        details={"expected_shape": ["batch", *want], "got_shape": got},
    )


def _matches(got: list[int], want: list[int | None]) -> bool:
    return len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want, strict=True))
