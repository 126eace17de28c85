"""Model builders registered by name; an unknown name lists the known ones."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ml.catalog import ARCHITECTURES
from tensorq.errors import InvalidRequest, OutOfRange

Builder = Callable[[tuple[int, ...], int, dict[str, Any]], Any]
_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register ``fn(input_shape, num_classes, params) -> keras.Model`` under ``name``."""

    def decorate(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return decorate


def known() -> list[str]:
    """The architecture names on offer."""
    return list(ARCHITECTURES)


def get(name: str) -> Builder:
    """The builder registered as ``name``."""
    if name not in ARCHITECTURES:
        raise InvalidRequest(f"unknown architecture '{name}'; known: {', '.join(known())}", details={"known": known()})
    if name not in _BUILDERS:
        importlib.import_module(f"ml.architectures.{name}")
    return _BUILDERS[name]


def check_params(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``params``; unknown keys are a 400 naming the allowed ones."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidRequest(
            f"unknown params {unknown}; allowed: {sorted(defaults)}", details={"allowed": sorted(defaults)}
        )
    return {**defaults, **params}


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise OutOfRange when ``value`` is outside ``[low, high]``."""
    if not low <= value <= high:
        raise OutOfRange(f"params.{name} must be between {low} and {high}", details={"field": f"params.{name}"})
