"""Graph-mode custom gradients that outlive their graph: TensorFlow keeps each one forever, so a block drops its own.

Tracing a Keras train step under the default distribution strategy wraps the optimizer's gradient all-reduce in
a ``tf.custom_gradient``, and graph mode registers that gradient under a fresh ``CustomGradient-<uid>`` name in
TensorFlow's process-wide gradient registry. Nothing ever removes it, and its closure holds the traced train step
(every op and tensor of the graph), so each training leaks its graphs after its model is gone: about 7 MiB per
tiny iris MLP in a worker process, growing without bound (tensorflow/tensorflow#80895, #97697). An entry is only
read while the graph that registered it is being differentiated, during its trace; once the block that traced
it has finished, dropping the entry frees the graph and changes no result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tensorflow.python.framework import ops

PREFIX = "CustomGradient-"


def _entries() -> dict[str, Any]:
    """TensorFlow's gradient registry (name -> entry); empty when this TensorFlow has none where expected."""
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else {}


def custom_gradients() -> int:
    """How many graph-mode custom gradients this process's registry holds."""
    return sum(1 for name in list(_entries()) if name.startswith(PREFIX))


@contextmanager
def dropping_custom_gradients() -> Iterator[None]:
    """Run the block, then drop the custom gradients it registered (it must have finished tracing its graphs).

    The registry is process-wide: a graph another thread is tracing meanwhile would lose its entries too. A
    worker process runs one job at a time, so the block (one training) is the only one tracing."""
    before = set(_entries())
    try:
        yield
    finally:
        entries = _entries()
        for name in [n for n in list(entries) if n.startswith(PREFIX) and n not in before]:
            entries.pop(name, None)
