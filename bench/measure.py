"""Timers, percentiles, medians and a small thread pool that drives concurrent clients."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples`` by linear interpolation; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median of the finite ``values``; NaN when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN when either is missing or the baseline is zero."""
    if not (math.isfinite(value) and math.isfinite(baseline)) or baseline == 0:
        return math.nan
    return value / baseline


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds and this process's CPU seconds (all threads) of one measured call."""

    wall_s: float
    cpu_s: float


class Stopwatch:
    """Started at creation; ``read()`` gives the wall-clock and CPU seconds since."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def read(self) -> Timing:
        """The time since the stopwatch started."""
        return Timing(time.perf_counter() - self._wall, time.process_time() - self._cpu)


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took on the monotonic clock."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def samples(fn: Callable[[], object], count: int, warmup: int = 0) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``count`` times; the seconds each timed run took."""
    for _ in range(warmup):
        fn()
    return [timed(fn) for _ in range(count)]


def concurrent_rate(make_worker: Callable[[], Callable[[], object]], clients: int, total: int) -> float:
    """Calls per second when ``clients`` threads share ``total`` calls; each thread calls its own ``make_worker()``.

    The first error in any thread is raised after all threads stop.
    """
    lock = threading.Lock()
    remaining = [total]
    errors: list[BaseException] = []
    workers = [make_worker() for _ in range(clients)]

    def loop(call: Callable[[], object]) -> None:
        while not errors:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return total / elapsed


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _cpu_of(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and every live descendant (``/proc``)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += _cpu_of(current)
        pending += _children(current)
    return total


class CpuMeter:
    """CPU seconds each named process tree, and this process, used between ``start`` and ``stop``."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {**{name: tree_cpu_seconds(pid) for name, pid in self.roots.items()}, "bench": time.process_time()}

    def __enter__(self) -> CpuMeter:
        self._before = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        after = self._read()
        self.used = {name: after[name] - self._before[name] for name in after}
