"""GPU workers as replicas: at most one container per GPU, pinned to it, on the GPUs the operator left usable.

A GPU worker is a copy of the GPU service's compose container (its image, environment, volumes and networks)
named after its GPU's UUID: Docker refuses a second container of one name, so no two workers ever share a GPU,
not across autoscaler restarts, not between two autoscalers. Workers are found again by their labels.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from worker.autoscale.gpus import GpuInventory, is_excluded, usable_gpus
from worker.autoscale.replicas import AUTOSCALED, NUMBER, PROJECT, SERVICE, Replica, create_copy
from worker.gpu_check import GpuInfo

log = logging.getLogger(__name__)
GPU_UUID = "io.tensorq.gpu-uuid"
GPU_INDEX = "io.tensorq.gpu-index"
LIVE = ("running", "restarting")


def pinned_environment(env: list[str] | None, gpu: GpuInfo, device_request: bool) -> list[str]:
    """The template's environment pinned to ``gpu``: with a device request the container sees only that GPU
    (index 0 inside); without one, CUDA is told the host's index."""
    inside = "0" if device_request else str(gpu.index)
    pins = {"NVIDIA_VISIBLE_DEVICES": gpu.uuid, "CUDA_VISIBLE_DEVICES": inside, "TENSORQ_GPU": inside}
    kept = [item for item in env or [] if item.split("=", 1)[0] not in pins]
    return [*kept, *(f"{key}={value}" for key, value in pins.items())]


def pinned_command(command: list[str] | None, gpu: GpuInfo, device_request: bool) -> list[str] | None:
    """The template's command with its ``--gpu`` (and ``--name``) values for ``gpu``; other arguments kept."""
    if command is None:
        return None
    values = {"--gpu": "0" if device_request else str(gpu.index), "--name": f"tensorq-gpu{gpu.index}"}
    pinned = list(command)
    for flag, value in values.items():
        if flag in pinned[:-1]:
            pinned[pinned.index(flag) + 1] = value
    return pinned


def device_requests_for(gpu: GpuInfo) -> list[Any]:
    """Docker's device request for exactly ``gpu`` (by UUID: indexes may change across reboots)."""
    from docker.types import DeviceRequest

    return [DeviceRequest(driver="nvidia", device_ids=[gpu.uuid], capabilities=[["gpu"]])]


def container_gpus(attrs: dict[str, Any], gpus: list[GpuInfo]) -> list[GpuInfo]:
    """The GPUs a container (``docker inspect``) holds: its GPU label, else its device request's ids."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    if GPU_UUID in labels:
        names = {labels[GPU_UUID].lower()}
    else:
        requests = (attrs.get("HostConfig") or {}).get("DeviceRequests") or []
        names = {str(device).lower() for request in requests for device in (request.get("DeviceIDs") or [])}
    return [gpu for gpu in gpus if str(gpu.index) in names or gpu.uuid.lower() in names]


class DockerGpuReplicas:
    """One worker container per usable GPU of ``inventory``, copies of a container of compose ``service``.

    ``members`` reads the inventory and the containers; a read that fails raises, and the autoscaler then keeps
    every worker as it is. ``start`` uses the lowest free usable GPUs; ``stop`` stops a worker in the background
    (SIGTERM, the service's grace) and removes it, unless it is compose's own container (kept as the template).
    Containers on excluded GPUs are left alone: the autoscaler neither counts, starts nor stops them.
    """

    def __init__(
        self,
        client: Any,
        project: str,
        service: str,
        inventory: GpuInventory,
        excluded: list[str],
        *,
        device_requests: bool = True,
    ) -> None:
        self.client = client
        self.project = project
        self.service = service
        self.inventory = inventory
        self.excluded = list(excluded)
        self.device_requests = device_requests
        self._stopping: set[str] = set()
        self._lock = threading.Lock()

    def _containers(self, every: bool = False) -> list[Any]:
        filters: dict[str, Any] = {"label": [f"{PROJECT}={self.project}", f"{SERVICE}={self.service}"]}
        return list(self.client.containers.list(all=every, filters=filters, ignore_removed=True))

    def _held(self, gpus: list[GpuInfo]) -> dict[str, tuple[Any, GpuInfo]]:
        """Containers of the service that hold a GPU (live, or being stopped) by id, each with its GPU."""
        with self._lock:
            stopping = set(self._stopping)
        held = {}
        for container in self._containers(every=True):
            if container.status in LIVE or container.id in stopping:
                for gpu in container_gpus(container.attrs, gpus)[:1]:
                    held[container.id] = (container, gpu)
        return held

    def members(self) -> list[Replica]:
        """Workers on usable GPUs (those being stopped excluded), by GPU index; raises when a read fails."""
        gpus = self.inventory.gpus()
        usable = {gpu.uuid for gpu in usable_gpus(gpus, self.excluded)}
        with self._lock:
            stopping = set(self._stopping)
        replicas = [
            Replica(c.id, (c.attrs.get("Config") or {}).get("Hostname") or c.id[:12], gpu.index)
            for c, gpu in self._held(gpus).values()
            if gpu.uuid in usable and c.id not in stopping
        ]
        return sorted(replicas, key=lambda r: r.number)

    def free_gpus(self) -> list[GpuInfo]:
        """Usable GPUs that no live container of the service holds (nor one being stopped), by index."""
        gpus = self.inventory.gpus()
        taken = {gpu.uuid for _c, gpu in self._held(gpus).values()}
        return [gpu for gpu in usable_gpus(gpus, self.excluded) if gpu.uuid not in taken]

    def start(self, count: int) -> None:
        """Start workers on up to ``count`` free usable GPUs, lowest index first."""
        free = self.free_gpus()
        if len(free) < count:
            log.info("%d GPU workers asked for, %d GPUs free: starting %d", count, len(free), len(free))
        for gpu in free[:count]:
            container_id = self.create(gpu)
            if container_id is not None:
                self.client.api.start(container_id)
                log.info("started the worker of GPU %d (%s)", gpu.index, gpu.uuid)

    def name_for(self, gpu: GpuInfo) -> str:
        """The one container name a worker of ``gpu`` may have in this project."""
        return f"{self.project}-{self.service}-{gpu.uuid}"

    def create(self, gpu: GpuInfo) -> str | None:
        """Create (not start) the worker container of ``gpu``; None when another one holds the GPU's name."""
        import docker.errors

        if is_excluded(gpu, self.excluded):
            raise ValueError(f"GPU {gpu.index} is excluded (TENSORQ_AUTOSCALE_EXCLUDED_GPUS)")
        every = self._containers(every=True)
        templates = sorted(every, key=lambda c: AUTOSCALED in c.labels)  # compose's own container first
        if not templates:
            raise RuntimeError(
                f"no {self.service} container to copy; create one with docker compose --profile gpu create"
            )
        name = self.name_for(gpu)
        for container in every:
            if container.name == name and container.status not in LIVE:
                container.remove()  # exited (crashed, or stopped by hand): made again from the template
        attrs = self.client.api.inspect_container(templates[0].id)
        labels = {
            **(attrs["Config"].get("Labels") or {}),
            NUMBER: str(100 + gpu.index),
            AUTOSCALED: "true",
            GPU_UUID: gpu.uuid,
            GPU_INDEX: str(gpu.index),
        }
        try:
            return create_copy(
                self.client.api,
                attrs,
                self.service,
                name=name,
                labels=labels,
                environment=pinned_environment(attrs["Config"].get("Env"), gpu, self.device_requests),
                command=pinned_command(attrs["Config"].get("Cmd"), gpu, self.device_requests),
                device_requests=device_requests_for(gpu) if self.device_requests else None,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # the GPU's name is taken: another worker holds it already
                log.warning("GPU %d already has a worker (%s): not starting another", gpu.index, name)
                return None
            raise

    def stop(self, replica: Replica) -> None:
        """Stop ``replica`` in the background (and remove it, unless it is compose's own container)."""
        container = self.client.containers.get(replica.id)
        with self._lock:
            self._stopping.add(container.id)
        threading.Thread(target=self._stop, args=(container,), name=f"stop-{container.name}", daemon=True).start()

    def _stop(self, container: Any) -> None:
        timeout = (container.attrs.get("Config") or {}).get("StopTimeout") or 60
        try:
            container.stop(timeout=int(timeout))
            if container.labels.get(AUTOSCALED) == "true":
                container.remove()
            log.info("stopped %s", container.name)
        except Exception:  # noqa: BLE001 - the container may be gone already; the next read tells the truth
            log.exception("stopping %s", container.name)
        finally:
            with self._lock:
                self._stopping.discard(container.id)
