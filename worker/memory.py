"""A memory ceiling per job: the pool child's address space is capped while a job runs, so an allocation
beyond it fails inside the job (``resource_exhausted``) instead of taking the worker or the host down;
Celery's ``worker_max_memory_per_child`` then replaces a child left bloated."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tensorq.core.errors import TensorQError
from worker.gpu import visible_devices

# Exception class names that mean an allocation was refused (TensorFlow's is raised without importing it here).
EXHAUSTION_NAMES = frozenset({"ResourceExhaustedError", "_ArrayMemoryError"})


class ResourceExhausted(TensorQError):
    """The job asked for more memory than the worker's per-job ceiling."""

    code = "resource_exhausted"


def exhausted(exc: BaseException) -> ResourceExhausted | None:
    """``exc`` as ResourceExhausted when it is a refused allocation, else None."""
    if isinstance(exc, MemoryError) or type(exc).__name__ in EXHAUSTION_NAMES:
        return ResourceExhausted(
            "the job needed more memory than the worker allows one job (TENSORQ_JOB_MEMORY_MB); "
            "use a smaller model, batch or input",
            details={"error": type(exc).__name__},
        )
    return None


def _address_space_bytes() -> int:
    """This process's current virtual size (``/proc/self/statm``, in pages)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[0])
    return pages * resource.getpagesize()


def ceiling_applies(gpu: str) -> bool:
    """Whether a worker pinned by ``gpu`` runs on the CPU only: CUDA maps far more address space than it
    uses, so GPU workers rely on ``worker_max_memory_per_child`` and TensorFlow's memory growth instead."""
    devices = visible_devices(gpu)
    return devices == "-1" or (devices is None and not Path("/dev/nvidiactl").exists())


@contextmanager
def job_memory_ceiling(headroom_mb: int) -> Iterator[None]:
    """Cap the address space at its current size plus ``headroom_mb`` while the block runs (0: no cap)."""
    if headroom_mb <= 0:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = _address_space_bytes() + headroom_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
