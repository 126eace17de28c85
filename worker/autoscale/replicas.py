"""Replicas of one compose service, counted, added and stopped through the Docker Engine API."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
AUTOSCALED = "io.tensorq.autoscaled"


@dataclass(frozen=True)
class Replica:
    """One running replica: its id, its host name (what its workers register as ``host``) and its number."""

    id: str
    host: str
    number: int


class Replicas(Protocol):
    """What the autoscaler needs from a replica set (Docker here; a fake in the loop's tests)."""

    def members(self) -> list[Replica]:
        """Replicas running now (those being stopped excluded), oldest first."""
        ...

    def start(self, count: int) -> None:
        """Start ``count`` more replicas."""
        ...

    def stop(self, replica: Replica) -> None:
        """Stop ``replica`` (in the background: it is no member from now on)."""
        ...


def own_compose_project(client: Any) -> str:
    """The compose project of the container this process runs in (its hostname is the container id)."""
    try:
        return client.containers.get(socket.gethostname()).labels[PROJECT]
    except Exception as exc:  # noqa: BLE001 - docker.errors.* or a missing label: say what to set instead
        raise RuntimeError(
            "cannot tell the compose project from this container; set TENSORQ_AUTOSCALE_PROJECT"
        ) from exc


def reserves_gpus(attrs: dict[str, Any]) -> bool:
    """Whether a container (``docker inspect`` attributes) reserves GPUs: such workers are one per GPU."""
    requests = (attrs.get("HostConfig") or {}).get("DeviceRequests") or []
    return any("gpu" in cap for request in requests for caps in (request.get("Capabilities") or []) for cap in caps)


def create_copy(
    api: Any,
    attrs: dict[str, Any],
    service: str,
    *,
    name: str,
    labels: dict[str, str],
    environment: list[str] | None = None,
    command: list[str] | None = None,
    device_requests: list[Any] | None = None,
) -> str:
    """Create (not start) a copy of the container ``attrs`` (``docker inspect``) named ``name``; its id.

    The copy has the template's image, command, environment, mounts, restart policy, stop signal and grace,
    health check and networks (with ``service`` as an alias), with ``labels`` and, when given, ``environment``,
    ``command`` and ``device_requests`` instead of the template's. Docker refuses a second container of the same
    name (409 Conflict): a name per slot makes the slot single.
    """
    config, host = attrs["Config"], attrs["HostConfig"]
    networks = attrs["NetworkSettings"]["Networks"]
    first = next(iter(networks))
    host_config = api.create_host_config(
        binds=host.get("Binds") or None,
        mounts=host.get("Mounts") or None,
        restart_policy=host.get("RestartPolicy") or None,
        network_mode=first,
        init=host.get("Init"),
        device_requests=device_requests,
    )
    networking = api.create_networking_config(
        {first: api.create_endpoint_config(aliases=[service, *(networks[first].get("Aliases") or [])])}
    )
    created = api.create_container(
        image=config["Image"],
        command=command if command is not None else config.get("Cmd"),
        entrypoint=config.get("Entrypoint"),
        environment=environment if environment is not None else config.get("Env"),
        labels=labels,
        user=config.get("User") or None,
        working_dir=config.get("WorkingDir") or None,
        stop_signal=config.get("StopSignal"),
        stop_timeout=config.get("StopTimeout"),
        healthcheck=config.get("Healthcheck"),
        host_config=host_config,
        networking_config=networking,
        name=name,
    )
    for other in list(networks)[1:]:
        api.connect_container_to_network(created["Id"], other)
    return str(created["Id"])


class DockerReplicas:
    """Containers of ``service`` in compose project ``project``: new ones are copies of a running one.

    Copies carry compose's labels (with the next container number), so ``docker compose ps`` lists them and
    ``docker compose down`` removes them. Stopping sends the image's stop signal (SIGTERM) and waits the
    service's grace period: a worker hands its running job back before it exits (the autoscaler drains a
    replica first, so that happens only past ``autoscale_max_drain_s``). Compose's first container is kept
    stopped rather than removed: it is the template a scale from zero starts again.
    """

    def __init__(self, client: Any, project: str, service: str) -> None:
        self.client = client
        self.project = project
        self.service = service
        self._stopping: set[str] = set()
        self._lock = threading.Lock()

    def _running(self) -> list[Any]:
        filters = {"label": [f"{PROJECT}={self.project}", f"{SERVICE}={self.service}"], "status": "running"}
        containers = self.client.containers.list(filters=filters)
        with self._lock:
            return [c for c in containers if c.id not in self._stopping]

    def members(self) -> list[Replica]:
        """Running replicas, those being stopped excluded, oldest (lowest container number) first."""
        replicas = [
            Replica(c.id, (c.attrs.get("Config") or {}).get("Hostname") or c.id[:12], int(c.labels.get(NUMBER, "0")))
            for c in self._running()
        ]
        return sorted(replicas, key=lambda r: r.number)

    def start(self, count: int) -> None:
        """Start ``count`` copies of a running replica (a stopped one of the service serves when none runs)."""
        every = self.client.containers.list(
            all=True, filters={"label": [f"{PROJECT}={self.project}", f"{SERVICE}={self.service}"]}
        )
        with self._lock:
            stopped = [c for c in every if c.status in ("exited", "created") and c.id not in self._stopping]
        for container in stopped[:count]:
            container.start()  # a replica kept stopped after a scale to zero: the quickest way back
            log.info("started %s again", container.name)
        count -= min(count, len(stopped))
        if count <= 0:
            return
        templates = [c for c in every if c.status == "running"] or every
        if not templates:
            raise RuntimeError(f"no {self.service} container to copy; start one with docker compose up")
        next_number = max(int(c.labels.get(NUMBER, "0")) for c in every) + 1
        for number in range(next_number, next_number + count):
            self._start_copy(templates[0], number)

    def stop(self, replica: Replica) -> None:
        """Stop (and remove, unless it is the service's first container) ``replica`` in a background thread."""
        container = self.client.containers.get(replica.id)
        with self._lock:
            self._stopping.add(container.id)
        threading.Thread(target=self._stop, args=(container,), name=f"stop-{container.name}", daemon=True).start()

    def _start_copy(self, template: Any, number: int) -> None:
        attrs = self.client.api.inspect_container(template.id)
        if reserves_gpus(attrs):
            raise RuntimeError(f"{self.service} reserves a GPU: GPU workers go one per GPU (autoscale_gpu_service)")
        labels = {**(attrs["Config"].get("Labels") or {}), NUMBER: str(number), AUTOSCALED: "true"}
        name = f"{self.project}-{self.service}-{number}"
        self.client.api.start(create_copy(self.client.api, attrs, self.service, name=name, labels=labels))
        log.info("started %s", name)

    def _stop(self, container: Any) -> None:
        timeout = (container.attrs.get("Config") or {}).get("StopTimeout") or 60
        try:
            container.stop(timeout=int(timeout))
            if container.labels.get(NUMBER, "1") != "1":  # the first is kept stopped: the template after zero
                container.remove()
            log.info("stopped %s", container.name)
        except Exception:  # noqa: BLE001 - the container may be gone already; the next count tells the truth
            log.exception("stopping %s", container.name)
        finally:
            with self._lock:
                self._stopping.discard(container.id)
