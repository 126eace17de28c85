"""TensorFlow's import in a worker's pool child: lean (without Keras' optional extras) and in the background.

A pool child registers and starts claiming while TensorFlow loads in a thread (``start_loading``); a claimed
job waits for the load (``wait_until_loaded``) under its lease before its handler runs, so no two threads
ever import TensorFlow's modules at once. Keras imports pandas, matplotlib and scikit-learn (and TensorFlow's
legacy layers SciPy) when they are installed, only for inputs and helpers TensorQ never hands it (DataFrames,
its scikit-learn wrappers, image galleries): a third of TensorFlow's import. ``lean_import`` keeps them out of
that import; TensorQ's own code imports them later, normally, where it needs them.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

log = logging.getLogger(__name__)
# Imported by Keras (and TensorFlow's legacy layers) only when installed, for nothing a TensorQ job uses.
KERAS_EXTRAS = ("pandas", "matplotlib", "sklearn", "scipy")
_loaded = threading.Event()
_loaded.set()  # no load in progress: a process that never starts one (tests, the API) never waits


class _Refuse(importlib.abc.MetaPathFinder):
    """A finder that answers ``ModuleNotFoundError`` for the packages it names, as if they were not installed."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@contextlib.contextmanager
def refused(names: Sequence[str]) -> Iterator[None]:
    """Within the block, importing a package of ``names`` not yet imported fails as if it were not installed."""
    finder = _Refuse([name for name in names if name not in sys.modules])
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def lean_import(extras: bool = False) -> ModuleType:
    """Import TensorFlow (and Keras with it), without ``KERAS_EXTRAS`` unless ``extras``; the module."""
    with contextlib.nullcontext() if extras else refused(KERAS_EXTRAS):
        import tensorflow as tf
    return tf


def start_loading(load: Callable[[], None]) -> threading.Thread:
    """Run ``load`` (TensorFlow's import and set-up) in a thread; jobs wait for it in ``wait_until_loaded``."""
    _loaded.clear()

    def _run() -> None:
        started = time.monotonic()
        try:
            load()
        except Exception:  # noqa: BLE001 - the job's own import then fails it with the real error
            log.exception("loading TensorFlow failed after %.1fs", time.monotonic() - started)
        finally:
            _loaded.set()

    thread = threading.Thread(target=_run, name="tensorflow-load", daemon=True)
    thread.start()
    return thread


def wait_until_loaded(check: Callable[[], None], every_s: float = 1.0) -> float:
    """Block until TensorFlow's load (if one runs) has ended, calling ``check`` (which may raise: a cancel, a
    timeout) every ``every_s``; the seconds waited."""
    started = time.monotonic()
    if not _loaded.is_set():
        log.info("waiting for TensorFlow to load")
        while not _loaded.wait(every_s):
            check()
        log.info("TensorFlow loaded after %.1fs of this job's wait", time.monotonic() - started)
    return time.monotonic() - started
