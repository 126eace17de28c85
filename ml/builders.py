"""Model builders registered by name; an unknown name lists the known ones.

A builder is ``fn(input_shape, num_classes, params) -> keras.Model``. Classifiers start with an
``Input`` and a preprocessing layer left unadapted (``Normalization``, ``TextVectorization``; the
training code adapts it to the training rows) and end in softmax probabilities; what the other tasks
get and return is in ``ml.tasks``. The recommender's builder is ``fn(users, items, global_mean, params)``:
it is made from the interactions' ids, not from a shape. The built-in builders live in
``ml.architectures`` and are imported on first use, so importing this module does not import TensorFlow.

``params`` (always the last argument) reaches a built-in builder as its typed params model from
``ml.specs`` (``CnnParams``, ...), validated and with its defaults: ``ml.specs`` is the one place that says
what is valid, and the builders repeat none of its checks. Builders registered at run time get ``params``
as given.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ml.catalog import ARCHITECTURES
from ml.specs import ARCHITECTURE_PARAMS, architecture_params
from tensorq.core.errors import InvalidRequest

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
    """The builder registered as ``name``, taking its params as a mapping or as its params model (validated
    by ``ml.specs`` before the builder runs); an unknown name is an InvalidRequest listing the known ones."""
    if name not in _BUILDERS and name in ARCHITECTURES:
        importlib.import_module(f"ml.architectures.{name}")
    if name not in _BUILDERS:
        names = known()
        raise InvalidRequest(f"unknown architecture '{name}'; known: {', '.join(names)}", details={"known": names})
    fn = _BUILDERS[name]
    if name not in ARCHITECTURE_PARAMS:
        return fn

    def build(*args: Any) -> Any:
        *inputs, params = args
        return fn(*inputs, architecture_params(name, params))

    build.__doc__ = fn.__doc__
    return build
