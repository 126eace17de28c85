"""docker-compose.yml checked statically: services, GPU pinning, no exposed stores (tests/deploy/ runs it)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_whole_system_is_there() -> None:
    services = _compose()["services"]
    assert {"redis", "postgres", "migrate", "api", "worker-cpu", "autoscaler", "flower"} <= set(services)
    assert any(name.startswith("worker-gpu") for name in services)


def test_a_cpu_host_starts_without_gpu_or_monitoring_services() -> None:
    for name, service in _compose()["services"].items():
        if name.startswith("worker-gpu"):
            assert service["profiles"] == ["gpu"]
        elif name == "flower":
            assert service["profiles"] == ["monitoring"]
        else:
            assert "profiles" not in service, name


def test_only_the_autoscaler_sees_the_docker_socket() -> None:
    for name, service in _compose()["services"].items():
        mounts = [str(v) for v in service.get("volumes", [])]
        assert any("docker.sock" in m for m in mounts) == (name == "autoscaler"), name


def test_base_images_and_api_port_come_from_the_environment() -> None:
    services = _compose()["services"]
    assert services["redis"]["image"].startswith("${TENSORQ_REDIS_IMAGE:-")
    assert services["postgres"]["image"].startswith("${TENSORQ_POSTGRES_IMAGE:-")
    assert services["api"]["ports"] == ["${TENSORQ_API_PORT:-8000}:8000"]
    assert services["api"]["build"]["args"]["PYTHON_IMAGE"].startswith("${TENSORQ_PYTHON_IMAGE:-")


def test_gpu_workers_reserve_exactly_the_gpu_they_pin() -> None:
    for name, service in _compose()["services"].items():
        if not name.startswith("worker-gpu"):
            continue
        command = service["command"]
        gpu = command[command.index("--gpu") + 1]
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "device_ids": [gpu], "capabilities": ["gpu"]}]


def test_cpu_worker_hides_gpus_and_takes_every_queue() -> None:
    command = _compose()["services"]["worker-cpu"]["command"]
    assert command[command.index("--gpu") + 1] == "none"
    assert set(command[command.index("--queues") + 1].split(",")) == {"train", "predict", "explain"}


def test_only_the_api_publishes_a_port_and_stores_need_passwords() -> None:
    compose = _compose()
    exposed = {name for name, service in compose["services"].items() if service.get("ports")}
    assert exposed == {"api", "flower"}  # flower only under its profile, behind basic auth
    assert "--basic-auth" in " ".join(compose["services"]["flower"]["command"])
    assert "--requirepass" in compose["services"]["redis"]["command"]
    assert "noeviction" in compose["services"]["redis"]["command"]
    assert "appendonly yes" in compose["services"]["redis"]["command"]


def test_every_service_dependency_exists_and_migrations_run_first() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    for name in ("api", "worker-cpu", "autoscaler"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_dockerfile_targets_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "AS api" in text
    assert "AS worker-cpu" in text
    assert "AS worker-gpu" in text
    assert "ARG PYTHON_IMAGE=" in text
    assert "USER tensorq" in text
    assert "HEALTHCHECK" in text
    for service in _compose()["services"].values():
        if "build" in service:
            assert f"AS {service['build']['target']}" in text


def _s3_compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.s3.yml").read_text())


def test_the_s3_variant_shares_no_volume_between_the_api_and_the_workers() -> None:
    services = _s3_compose()["services"]
    for name in ("api", "worker-cpu", "migrate"):
        assert "volumes" not in services[name], name
        env = services[name]["environment"]
        assert env["TENSORQ_ARTIFACT_URL"].startswith("${TENSORQ_ARTIFACT_URL:-s3://")
        assert "TENSORQ_ARTIFACT_DIR" not in env
    mounted = {str(v).split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert mounted == {"redis-data", "postgres-data", "objects"}  # each store's own disk, nothing shared
    assert services["objectstore"]["volumes"] == ["objects:/objects"]
    assert "ports" not in services["objectstore"]
