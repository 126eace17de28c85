"""GPU workers autoscaled on the real Docker engine, with a GPU inventory we own (no GPU on these hosts).

The workers are tiny containers (a shell that sleeps and exits on SIGTERM, imported from this host's own
binaries: no registry) copied from a template container the way compose's GPU service is copied. The loop reads
a real database (SQLite and Postgres) for the backlog and who is busy.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from db.backlog import backlog_by_type
from db.database import Database
from db.drains import Drains
from db.jobs import NewJob
from db.session import make_engine, make_session_factory
from tensorq.core.settings import Settings
from tests.deploy.conftest import REQUIRE
from worker.autoscale.gpu_replicas import GPU_UUID, DockerGpuReplicas
from worker.autoscale.gpus import InventoryUnavailable, usable_gpus
from worker.autoscale.loop import Autoscaler, queue_loads
from worker.autoscale.main import gpu_autoscaler
from worker.autoscale.metrics import AutoscaleMetrics
from worker.autoscale.replicas import NUMBER, PROJECT, SERVICE
from worker.gpu_check import GpuInfo

SERVICE_NAME = "worker-gpu0"
IMAGE = "tensorq-test/gpu-sleeper"
# Sleeps until SIGTERM, then exits at once (a worker that hands nothing back); the flags are what a GPU
# worker's command carries, so their rewriting shows in the container.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done", "--gpu", "0", "--name", "gpu0"]
GPUS = [GpuInfo(n, "Fake H100", f"GPU-{n:08d}-aaaa-bbbb-cccc-{secrets.token_hex(6)}", 81559) for n in range(4)]


class FakeInventory:
    """The host's GPUs as a list we own; ``broken`` makes a read fail like NVML without a driver."""

    def __init__(self, gpus: list[GpuInfo]) -> None:
        self.listed = list(gpus)
        self.broken = False

    def gpus(self) -> list[GpuInfo]:
        if self.broken:
            raise InventoryUnavailable("NVML could not start: no NVIDIA driver on this host")
        return list(self.listed)


def _sleeper_tar() -> bytes:
    """A root file system holding /bin/sh, /bin/sleep and the C library they load."""
    files = ["/bin/sh", "/bin/sleep", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in files:
            path = Path(name).resolve()
            if not path.exists():
                why = f"this host has no {name} to make the test image from"
                pytest.fail(why) if REQUIRE else pytest.skip(why)
            info = tar.gettarinfo(str(path), arcname=name.lstrip("/"))
            info.mode = 0o755
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(docker_engine: None) -> Iterator[Any]:
    """A Docker SDK client on the engine, with the sleeper image imported (a few MB, once per module)."""
    import docker

    sdk = docker.from_env()
    sdk.api.import_image_from_data(_sleeper_tar(), repository=IMAGE, tag="1")
    yield sdk
    sdk.close()


@pytest.fixture
def project(client: Any) -> Iterator[str]:
    """A compose-like project of its own: a network and a template container of the GPU service (never
    started, as `docker compose create` leaves it); every container of the project is removed after."""
    name = f"tensorq-gpu-test-{secrets.token_hex(3)}"
    network = client.networks.create(name, labels={PROJECT: name})
    client.containers.create(
        f"{IMAGE}:1",
        SLEEPER,
        name=f"{name}-{SERVICE_NAME}-1",
        labels={PROJECT: name, SERVICE: SERVICE_NAME, NUMBER: "1"},
        environment={"TENSORQ_GPU": "0", "TENSORQ_QUEUE_PREFIX": "gpu-test"},
        network=name,
        stop_signal="SIGTERM",
    )
    try:
        yield name
    finally:
        for container in client.containers.list(all=True, filters={"label": f"{PROJECT}={name}"}):
            container.remove(force=True)
        network.remove()


def _settings(**values: object) -> Settings:
    return Settings(**{"autoscale_gpu_service": SERVICE_NAME, "autoscale_cooldown_s": 60, **values})  # type: ignore[arg-type]


def _scaler(
    client: Any,
    project: str,
    db: Database,
    inventory: FakeInventory,
    now: list[float],
    settings: Settings | None = None,
    metrics: AutoscaleMetrics | None = None,
) -> Autoscaler:
    """The GPU autoscaler as `tensorq autoscale` builds it, on the fake inventory and a clock we move."""
    scaler = gpu_autoscaler(
        settings or _settings(),
        client,
        project,
        lambda: queue_loads(backlog_by_type(db.factory)),
        db.drains,
        inventory,
        metrics,
        device_requests=False,  # no NVIDIA runtime here: pinned through the environment only
    )
    scaler.clock = lambda: now[0]
    return scaler


def _workers(client: Any, project: str) -> dict[str, Any]:
    """The project's GPU worker containers that run, by the GPU UUID on their label."""
    labels = [f"{PROJECT}={project}", GPU_UUID]
    running = client.containers.list(filters={"label": labels}, ignore_removed=True)
    assert len({c.labels[GPU_UUID] for c in running}) == len(running), "two workers on one GPU"
    return {c.labels[GPU_UUID]: c for c in running}


def _env(container: Any) -> dict[str, str]:
    container.reload()
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])


def _submit(db: Database, job_type: str, n: int) -> list[str]:
    tenant_id = db.keys.ensure_tenant("acme")
    return [db.jobs.submit(NewJob(tenant_id, job_type, {"n": i})).job.id for i in range(n)]


def _finish(db: Database, job_ids: list[str]) -> None:
    for job_id in job_ids:
        claim = db.jobs.claim(job_id, "elsewhere:1")
        assert claim is not None
        db.jobs.finish(job_id, claim.lease_token, {})


def _wait_gone(client: Any, project: str, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_workers(client, project)) != count:
        assert time.monotonic() < deadline, f"still {len(_workers(client, project))} workers, waiting for {count}"
        time.sleep(0.2)


def test_one_pinned_worker_per_usable_gpu_and_none_after_a_restart(client: Any, project: str, db: Database) -> None:
    """Four GPUs, GPU 1 excluded by index and GPU 3 by UUID: five queued jobs start workers on GPUs 0 and 2
    only, each pinned to its GPU; a second autoscaler (a restart) finds them by label and starts no other."""
    inventory = FakeInventory(GPUS)
    settings = _settings(autoscale_excluded_gpus=["1", GPUS[3].uuid.upper()])
    now = [0.0]
    _submit(db, "train", 5)
    scaler = _scaler(client, project, db, inventory, now, settings)
    decision = scaler.step()
    assert decision is not None
    assert decision.target == 2  # capped at the usable GPUs
    workers = _workers(client, project)
    assert set(workers) == {GPUS[0].uuid, GPUS[2].uuid}
    for gpu in (GPUS[0], GPUS[2]):
        container = workers[gpu.uuid]
        env = _env(container)
        assert env["NVIDIA_VISIBLE_DEVICES"] == gpu.uuid
        assert env["CUDA_VISIBLE_DEVICES"] == env["TENSORQ_GPU"] == str(gpu.index)
        assert env["TENSORQ_QUEUE_PREFIX"] == "gpu-test"  # the template's environment is kept
        command = container.attrs["Config"]["Cmd"]
        assert command[command.index("--gpu") + 1] == str(gpu.index)
        assert command[command.index("--name") + 1] == f"tensorq-gpu{gpu.index}"
        assert container.labels[SERVICE] == SERVICE_NAME
    now[0] = 5.0
    scaler.step()
    restarted = _scaler(client, project, db, inventory, now, settings)
    assert restarted.step() is not None
    assert {uuid: c.id for uuid, c in _workers(client, project).items()} == {u: c.id for u, c in workers.items()}
    # The container name is the GPU's lock: a second worker of a held GPU is refused by Docker itself.
    replicas = restarted.replicas
    assert isinstance(replicas, DockerGpuReplicas)
    assert replicas.create(GPUS[0]) is None
    with pytest.raises(ValueError, match="excluded"):
        replicas.create(GPUS[1])
    assert len(_workers(client, project)) == 2


def test_idle_gpu_workers_drain_and_stop_after_the_cooldown_then_come_back(
    client: Any, project: str, db: Database
) -> None:
    inventory = FakeInventory(GPUS[:2])
    now = [0.0]
    scaler = _scaler(client, project, db, inventory, now)
    jobs = _submit(db, "train", 2)
    scaler.step()
    assert set(_workers(client, project)) == {GPUS[0].uuid, GPUS[1].uuid}
    _finish(db, jobs)
    now[0] = 10.0
    assert scaler.step().target == 2  # type: ignore[union-attr] - idle, cooling down
    now[0] = 59.0
    scaler.step()
    assert len(_workers(client, project)) == 2
    now[0] = 71.0
    assert scaler.step().target == 0  # type: ignore[union-attr] - marked to drain; stopped at a later step
    hosts = sorted(c.attrs["Config"]["Hostname"] for c in _workers(client, project).values())
    assert sorted(db.drains.marked(SERVICE_NAME)) == hosts  # idle: each stops at the next step
    now[0] = 72.0
    scaler.step()
    assert db.drains.marked(SERVICE_NAME) == {}
    _wait_gone(client, project, 0)
    # The template (compose's own container) is never removed; one new job starts one worker, on GPU 0.
    assert client.containers.get(f"{project}-{SERVICE_NAME}-1").status == "created"
    _submit(db, "predict", 1)
    now[0] = 80.0
    scaler.step()
    assert set(_workers(client, project)) == {GPUS[0].uuid}


def test_a_device_request_pins_the_worker_to_its_gpu_by_uuid(client: Any, project: str) -> None:
    """With device requests (a host with the NVIDIA runtime) the container sees only its GPU, as index 0.
    Created, never started: this engine has no NVIDIA runtime to start it with."""
    replicas = DockerGpuReplicas(client, project, SERVICE_NAME, FakeInventory(GPUS), [])
    container = client.containers.get(replicas.create(GPUS[2]))
    [request] = container.attrs["HostConfig"]["DeviceRequests"]
    assert request["Driver"] == "nvidia"
    assert request["DeviceIDs"] == [GPUS[2].uuid]
    assert request["Capabilities"] == [["gpu"]]
    env = _env(container)
    assert env["CUDA_VISIBLE_DEVICES"] == env["TENSORQ_GPU"] == "0"
    assert env["NVIDIA_VISIBLE_DEVICES"] == GPUS[2].uuid
    command = container.attrs["Config"]["Cmd"]
    assert command[command.index("--gpu") + 1] == "0"
    assert container.name == replicas.name_for(GPUS[2])


def test_unreadable_gpus_docker_or_database_keep_the_workers_and_show_in_the_metrics(
    client: Any, project: str, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """min_workers 0, no cooldown, no backlog: a step that reads everything would stop every worker. Steps
    whose reads fail (NVML, then Docker, then the database) keep them all, log why, and show it in the metrics."""
    import docker

    inventory = FakeInventory(GPUS[:2])
    now = [0.0]
    metrics = AutoscaleMetrics("worker-cpu", ("train",))
    scaler = _scaler(client, project, db, inventory, now, _settings(autoscale_cooldown_s=0), metrics)
    jobs = _submit(db, "train", 2)
    scaler.step()
    running = {uuid: c.id for uuid, c in _workers(client, project).items()}
    assert len(running) == 2
    _finish(db, jobs)
    healthy_replicas, healthy_backlog, healthy_fleet = scaler.replicas, scaler.read_backlog, scaler.fleet
    dead_engine = make_engine("postgresql+psycopg://root@127.0.0.1:1/test?connect_timeout=2")
    dead_db = make_session_factory(dead_engine)
    faults = {
        "InventoryUnavailable": lambda: setattr(inventory, "broken", True),
        "ConnectionError": lambda: setattr(
            scaler,
            "replicas",
            DockerGpuReplicas(
                docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41"),
                project,
                SERVICE_NAME,
                inventory,
                [],
            ),
        ),
        "Unavailable": lambda: (
            setattr(scaler, "read_backlog", lambda: queue_loads(backlog_by_type(dead_db))),
            setattr(scaler, "fleet", Drains(dead_db)),
        ),
    }
    with caplog.at_level(logging.WARNING, logger="tensorq.autoscale"):
        for error, fault in faults.items():
            inventory.broken = False
            scaler.replicas, scaler.read_backlog, scaler.fleet = healthy_replicas, healthy_backlog, healthy_fleet
            fault()
            now[0] += 10.0
            assert scaler.step() is None, error
            assert {uuid: c.id for uuid, c in _workers(client, project).items()} == running, error
            text = generate_latest(metrics.registry).decode()
            assert f'tensorq_autoscale_reads_ok{{service="{SERVICE_NAME}"}} 0.0' in text, error
            line = f'tensorq_autoscale_read_errors_total{{error="{error}",service="{SERVICE_NAME}"}} 1.0'
            assert line in text, (error, [t for t in text.splitlines() if "read_errors_total" in t])
    dead_engine.dispose()
    assert sum("keeping the replicas as they are" in r.getMessage() for r in caplog.records) == 3
    assert db.drains.marked(SERVICE_NAME) == {}
    # Reads that work again: the same step now scales the idle workers down (the faults were what kept them).
    inventory.broken = False
    scaler.replicas, scaler.read_backlog, scaler.fleet = healthy_replicas, healthy_backlog, healthy_fleet
    now[0] += 10.0
    decision = scaler.step()
    assert decision is not None
    assert decision.target == 0
    assert len(db.drains.marked(SERVICE_NAME)) == 2
    assert f'tensorq_autoscale_reads_ok{{service="{SERVICE_NAME}"}} 1.0' in generate_latest(metrics.registry).decode()


def test_usable_gpus_drop_exclusions_by_index_or_uuid() -> None:
    assert [g.index for g in usable_gpus(GPUS, ["0", f" {GPUS[2].uuid.lower()} "])] == [1, 3]
    assert usable_gpus(GPUS, []) == GPUS


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI renders the compose files")
def test_the_compose_override_turns_gpu_autoscaling_on_with_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/compose.gpu.yml over docker-compose.yml, rendered by compose itself: the autoscaler's environment
    parses into settings naming a GPU service of the `gpu` profile, whose command carries the flags the copies
    rewrite, and the autoscaler sees the GPUs for NVML."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["docker", "compose", "-f", "docker-compose.yml", "-f", "deploy/compose.gpu.yml", "--profile", "gpu"]
        + ["config", "--format", "json"],
        cwd=root,
        env={**os.environ, "TENSORQ_DB_PASSWORD": "x", "TENSORQ_REDIS_PASSWORD": "y"},
        capture_output=True,
        text=True,
        check=True,
    )
    services = json.loads(done.stdout)["services"]
    autoscaler = services["autoscaler"]
    for key, value in autoscaler["environment"].items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.autoscale_excluded_gpus == []
    assert settings.autoscale_gpu_queues == ["train", "predict", "explain"]
    template = services[settings.autoscale_gpu_service]
    assert template["profiles"] == ["gpu"]
    assert "--gpu" in template["command"]
    assert "--name" in template["command"]
    assert set(settings.autoscale_gpu_queues) == set(
        template["command"][template["command"].index("--queues") + 1].split(",")
    )
    [devices] = autoscaler["deploy"]["resources"]["reservations"]["devices"]
    assert "utility" in devices["capabilities"]


def test_an_exclusion_that_matches_no_gpu_or_no_gpu_left_is_refused_at_start(client: Any, project: str) -> None:
    """A mistyped exclusion would leave the GPU it meant in use: the autoscaler refuses to start, naming it."""

    def build(inventory: FakeInventory, excluded: list[str]) -> Autoscaler:
        settings = _settings(autoscale_excluded_gpus=excluded)
        return gpu_autoscaler(settings, client, project, list, Drains(None), inventory)  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match=r"'GPU-8f3e'.*matches no GPU") as caught:
        build(FakeInventory(GPUS), ["GPU-8f3e"])
    assert GPUS[0].uuid in str(caught.value)  # the GPUs there are, to pick from
    with pytest.raises(RuntimeError, match="no GPU to autoscale workers on: 2 found, 2 excluded"):
        build(FakeInventory(GPUS[:2]), ["0", "1"])
    with pytest.raises(RuntimeError, match=r"GPU_QUEUES names 'trian': no such queue \(queues: train, predict"):
        gpu_autoscaler(
            _settings(autoscale_gpu_queues=["trian"]),
            client,
            project,
            list,  # type: ignore[arg-type]
            Drains(None),  # type: ignore[arg-type]
            FakeInventory(GPUS),
        )
    broken = FakeInventory(GPUS)
    broken.broken = True
    with pytest.raises(RuntimeError, match="cannot be listed: NVML could not start"):
        build(broken, [])


def test_cpu_replicas_on_an_unreachable_engine_keep_their_count(db: Database) -> None:
    """The CPU workers' replicas read through a Docker socket nobody answers on: the step changes nothing."""
    import docker

    from worker.autoscale.policy import Policy
    from worker.autoscale.replicas import DockerReplicas

    dead = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    metrics = AutoscaleMetrics("worker-cpu", ("train",))
    policy = Policy(min_workers=0, max_workers=4, jobs_per_worker=1, cooldown_s=0)
    backlog = lambda: queue_loads(backlog_by_type(db.factory))  # noqa: E731
    scaler = Autoscaler(
        policy, ("train",), backlog, DockerReplicas(dead, "p", "worker-cpu"), db.drains, metrics=metrics
    )
    assert scaler.step() is None
    text = generate_latest(metrics.registry).decode()
    assert 'tensorq_autoscale_read_errors_total{error="ConnectionError",service="worker-cpu"} 1.0' in text
    assert 'tensorq_autoscale_reads_ok{service="worker-cpu"} 0.0' in text


def test_cpu_replicas_copy_a_running_replica_on_the_real_engine(client: Any, project: str) -> None:
    """The CPU workers' copies (the same container copy as the GPU workers', without a pin): the stopped first
    container starts again first, then copies carry the next number, compose's labels and the network alias."""
    from worker.autoscale.replicas import AUTOSCALED, DockerReplicas

    replicas = DockerReplicas(client, project, SERVICE_NAME)
    replicas.start(1)
    assert [r.number for r in replicas.members()] == [1]  # compose's first container runs again
    replicas.start(1)
    members = replicas.members()
    assert len(members) == 2
    copy = client.containers.get(members[-1].id)
    assert copy.labels[NUMBER] == "2"
    assert copy.labels[AUTOSCALED] == "true"
    assert copy.labels[PROJECT] == project
    assert copy.attrs["Config"]["Cmd"] == SLEEPER
    assert SERVICE_NAME in copy.attrs["NetworkSettings"]["Networks"][project]["Aliases"]
    replicas.stop(members[-1])
    deadline = time.monotonic() + 30
    while len(client.containers.list(all=True, filters={"label": f"{PROJECT}={project}"})) != 1:
        assert time.monotonic() < deadline, "the copy was not removed"
        time.sleep(0.2)


def test_tensorq_autoscale_lists_the_gpus_through_nvml_before_it_scales(client: Any, tmp_path: Path) -> None:
    """`tensorq autoscale` with a GPU service reads NVML at start: here (no driver) it stops, saying why; on a
    GPU host the exclusion below matches no GPU and it stops too, naming it (it never starts scaling here)."""
    from worker.autoscale.main import run_autoscaler

    settings = _settings(
        database_url=f"sqlite:///{tmp_path}/t.db",
        autoscale_project="tensorq-gpu-test-none",
        autoscale_metrics_port=0,
        autoscale_excluded_gpus=["GPU-no-such-gpu"],
    )
    with pytest.raises(RuntimeError, match="GPUs cannot be listed|'GPU-no-such-gpu', which matches no GPU"):
        run_autoscaler(settings)
