"""fsspec (the S3 artifact store) inside gevent's API worker.

fsspec runs every S3 call as a coroutine on an asyncio loop of its own thread, and the calling thread waits for
it on a ``threading.Event``. After ``monkey.patch_all`` that thread and that event would be greenlets and gevent
primitives of the one hub thread: the call fails ("Calling sync() from within a running loop") or blocks the hub
for good. ``keep_fsspec_off_the_hub`` gives fsspec a loop of its own in a real thread (with the unpatched
selector, lock and thread start), and runs each of its blocking calls in gevent's pool of real threads, so a
greenlet waiting for S3 lets the others (the long-polls among them) go on. A call made from a real thread
already (gevent's pool, or pyarrow's I/O threads reading a Parquet file through an fsspec file) blocks that
thread as fsspec would: handing it to the hub's pool from there waited on a hub of that thread's own, for good.
The loop's default executor runs in real threads too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import threading
from collections.abc import Callable
from typing import Any


class _NativeEvent:
    """``threading.Event`` on an unpatched lock: set by fsspec's loop thread, waited on by a pool thread."""

    def __init__(self, allocate_lock: Any) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        """Wake the waiter (once)."""
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        """Whether it was set."""
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` seconds passed; whether it was set."""
        if self._set:
            return True
        got = self._lock.acquire(True, -1 if timeout is None else timeout)
        if got:
            self._lock.release()
        return bool(got)


class _NativeFuture(concurrent.futures.Future):
    """A future whose condition is on an unpatched lock: completed in a real thread, awaited by the loop."""

    def __init__(self, allocate_lock: Any) -> None:
        super().__init__()
        self._condition = threading.Condition(allocate_lock())


class _NativeExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (``asyncio.to_thread``: aiobotocore builds its SSL contexts there): each call
    in a real thread of its own. The stock executor's threads would be greenlets of a hub nobody runs."""

    def __init__(self, start_new_thread: Any, allocate_lock: Any) -> None:
        super().__init__(max_workers=1)
        self._start = start_new_thread
        self._allocate_lock = allocate_lock

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """Run ``fn`` in a new real thread."""
        future = _NativeFuture(self._allocate_lock)

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                future.set_exception(exc)

        self._start(run, ())
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to stop: each call's thread ends with it."""


def keep_fsspec_off_the_hub() -> None:
    """After ``monkey.patch_all``: fsspec's loop in a real thread and its blocking calls in gevent's thread pool."""
    import fsspec.asyn
    import gevent
    from gevent.monkey import get_original

    start_new_thread, allocate_lock, get_ident = get_original(
        "_thread", ["start_new_thread", "allocate_lock", "get_ident"]
    )
    hub_thread = get_ident()
    epoll_selector = get_original("selectors", "EpollSelector")

    class _Threading:
        """The part of ``threading`` that ``fsspec.asyn`` uses, unpatched."""

        Lock = staticmethod(allocate_lock)

        @staticmethod
        def Event() -> _NativeEvent:  # noqa: N802 - the name fsspec calls
            return _NativeEvent(allocate_lock)

    loop = asyncio.SelectorEventLoop(epoll_selector())
    loop.set_default_executor(_NativeExecutor(start_new_thread, allocate_lock))
    start_new_thread(loop.run_forever, ())
    fsspec.asyn.threading = _Threading
    fsspec.asyn._lock = allocate_lock()
    fsspec.asyn.loop[0] = loop
    fsspec.asyn.iothread[0] = object()  # only tested for None: the loop above runs in its own thread
    direct = fsspec.asyn.sync

    def pooled(loop: Any, func: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        if get_ident() != hub_thread:  # a real thread: it may block
            return direct(loop, func, *args, timeout=timeout, **kwargs)
        return gevent.get_hub().threadpool.apply(direct, (loop, func, *args), {"timeout": timeout, **kwargs})

    fsspec.asyn.sync = pooled
    for name in ("s3fs.core",):  # modules that imported ``sync`` by name
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "sync", None) is direct:
            module.sync = pooled  # type: ignore[attr-defined]
