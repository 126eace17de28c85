"""docker-compose.yml checked statically (no Docker engine here): services, GPU pinning, no exposed stores."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_whole_system_is_there() -> None:
    services = _compose()["services"]
    assert {"redis", "postgres", "migrate", "api", "worker-cpu"} <= set(services)
    assert any(name.startswith("worker-gpu") for name in services)


def test_gpu_workers_reserve_exactly_the_gpu_they_pin() -> None:
    for name, service in _compose()["services"].items():
        if not name.startswith("worker-gpu"):
            continue
        command = service["command"]
        gpu = command[command.index("--gpu") + 1]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "device_ids": [gpu], "capabilities": ["gpu"]}]


def test_cpu_worker_hides_gpus_and_takes_short_queues() -> None:
    command = _compose()["services"]["worker-cpu"]["command"]
    assert command[command.index("--gpu") + 1] == "none"
    assert "train" not in command[command.index("--queues") + 1].split(",")


def test_only_the_api_publishes_a_port_and_stores_need_passwords() -> None:
    compose = _compose()
    exposed = {name for name, service in compose["services"].items() if service.get("ports")}
    assert exposed == {"api"}
    assert "--requirepass" in compose["services"]["redis"]["command"]
    assert "noeviction" in compose["services"]["redis"]["command"]
    assert "appendonly yes" in compose["services"]["redis"]["command"]


def test_every_service_dependency_exists_and_migrations_run_first() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    for name in ("api", "worker-cpu"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_dockerfile_targets_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "AS api" in text and "AS worker" in text
    for service in _compose()["services"].values():
        if "build" in service:
            assert f"AS {service['build']['target']}" in text
