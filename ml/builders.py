"""Model builders registered by name; an unknown name lists the known ones.

A builder is ``fn(input_shape, num_classes, params) -> keras.Model``. Classifiers start with an
``Input`` and a preprocessing layer left unadapted (``Normalization``, ``TextVectorization``; the
training code adapts it to the training rows) and end in softmax probabilities; what the other tasks
get and return is in ``ml.tasks``. The recommender's builder is ``fn(users, items, global_mean, params)``:
it is made from the interactions' ids, not from a shape. The built-in builders live in
``ml.architectures`` and are imported on first use, so importing this module does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ml import validation
from ml.catalog import ARCHITECTURES
from tensorq.errors import InvalidRequest, OutOfRange

Builder = Callable[..., Any]
_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register a builder (usually ``fn(input_shape, num_classes, params) -> keras.Model``) under ``name``."""

    def decorate(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return decorate


def known() -> list[str]:
    """The architecture names on offer: the built-in ones, then any registered at run time."""
    return [*ARCHITECTURES, *(name for name in _BUILDERS if name not in ARCHITECTURES)]


def get(name: str) -> Builder:
    """The builder registered as ``name``; an unknown name is an InvalidRequest listing the known ones."""
    if name not in _BUILDERS and name in ARCHITECTURES:
        importlib.import_module(f"ml.architectures.{name}")
    if name not in _BUILDERS:
        names = known()
        raise InvalidRequest(f"unknown architecture '{name}'; known: {', '.join(names)}", details={"known": names})
    return _BUILDERS[name]


def check_params(params: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``params``; unknown keys are an InvalidRequest naming the allowed ones."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be an object")
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidRequest(
            f"unknown params {unknown}; allowed: {sorted(defaults)}",
            details={"unknown": unknown, "allowed": sorted(defaults)},
        )
    return {**defaults, **params}


def _out_of_range(name: str, message: str) -> OutOfRange:
    return OutOfRange(f"params.{name} {message}", details={"field": f"params.{name}"})


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """Param ``name`` as an int in ``[low, high]``; anything else is an OutOfRange naming ``params.<name>``."""
    return validation.check_int(f"params.{name}", value, low, high)


def check_float(name: str, value: Any, low: float, high: float) -> float:
    """Param ``name`` as a float in ``[low, high]``; anything else is an OutOfRange naming ``params.<name>``."""
    return validation.check_float(f"params.{name}", value, low, high)


def check_int_list(name: str, value: Any, low: int, high: int, max_len: int = 32) -> list[int]:
    """``value`` as a non-empty list of ints in ``[low, high]``; anything else is an OutOfRange."""
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= max_len:
        raise _out_of_range(name, f"must be a list of 1 to {max_len} integers")
    return [check_int(name, item, low, high) for item in value]


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; anything else is an OutOfRange listing them."""
    if value not in choices:
        raise OutOfRange(
            f"params.{name} must be one of {', '.join(choices)}",
            details={"field": f"params.{name}", "allowed": list(choices)},
        )
    return str(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is true or false; anything else is an OutOfRange naming the param."""
    if not isinstance(value, bool):
        raise _out_of_range(name, "must be true or false")
    return value
