"""The GPUs the autoscaler may place workers on: an inventory (NVML on a real host) less the operator's exclusions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from worker.gpu_check import GpuInfo, nvml_gpus


class InventoryUnavailable(RuntimeError):
    """The GPUs could not be listed (no NVML library, no driver); the message says why."""


class GpuInventory(Protocol):
    """What the autoscaler reads about the host's GPUs (NVML here; a fixed list in tests)."""

    def gpus(self) -> list[GpuInfo]:
        """Every GPU of the host, by index; raises ``InventoryUnavailable`` when they cannot be listed."""
        ...


class NvmlInventory:
    """The host's GPUs as NVML lists them (``nvidia-ml-py``; NVML comes with the NVIDIA driver)."""

    def __init__(self, discover: Callable[[], tuple[list[GpuInfo], str | None]] = nvml_gpus) -> None:
        self.discover = discover

    def gpus(self) -> list[GpuInfo]:
        """The GPUs NVML lists; raises ``InventoryUnavailable`` when it cannot list them."""
        found, why = self.discover()
        if why is not None:
            raise InventoryUnavailable(why)
        return sorted(found, key=lambda gpu: gpu.index)


def is_excluded(gpu: GpuInfo, excluded: Iterable[str]) -> bool:
    """Whether the operator excluded ``gpu``, named by its index (``"1"``) or its UUID (``"GPU-..."``)."""
    names = {name.strip().lower() for name in excluded if name.strip()}
    return str(gpu.index) in names or gpu.uuid.lower() in names


def usable_gpus(gpus: Iterable[GpuInfo], excluded: Iterable[str]) -> list[GpuInfo]:
    """The GPUs left once the excluded ones are taken out, by index."""
    names = list(excluded)
    return sorted((gpu for gpu in gpus if not is_excluded(gpu, names)), key=lambda gpu: gpu.index)


def unknown_exclusions(gpus: Iterable[GpuInfo], excluded: Iterable[str]) -> list[str]:
    """Excluded names that match no GPU of the inventory (a typo the operator should hear about)."""
    known = {name for gpu in gpus for name in (str(gpu.index), gpu.uuid.lower())}
    return [name for name in excluded if name.strip() and name.strip().lower() not in known]
