"""Driving a real compose stack from tests: the engine, the offline images, compose commands and figures."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("TENSORQ_DEPLOY_CACHE", "/var/cache/tensorq-deploy"))


class EngineUnavailable(Exception):
    """No Docker engine answers here and none could be started (the reason is the message)."""


def ensure_engine() -> None:
    """Start (installing when missing, as root on Debian) a Docker engine with compose v2, or say why not."""
    if not Path("/var/run/docker.sock").exists() and os.geteuid() != 0:
        raise EngineUnavailable("no Docker socket and not root: cannot install or start dockerd")
    done = subprocess.run(["bash", str(ROOT / "deploy/engine.sh")], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise EngineUnavailable(f"deploy/engine.sh failed: {done.stderr.strip()[-800:]}")


def offline_environment() -> dict[str, str]:
    """The KEY=value lines of deploy/offline-images.sh (stand-in base images and the wheelhouse)."""
    done = subprocess.run(
        ["bash", str(ROOT / "deploy/offline-images.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"deploy/offline-images.sh failed:\n{done.stderr[-3000:]}")
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """One compose project built from this checkout, with its own passwords, port and figures."""

    project: str
    env: dict[str, str]
    figures: dict[str, object] = field(default_factory=dict)

    @classmethod
    def create(cls, overrides: dict[str, str]) -> Stack:
        """A stack named ``tensorq-test-<random>`` with fresh passwords and a free API port."""
        env = {
            **os.environ,
            **offline_environment(),
            "TENSORQ_DB_PASSWORD": secrets.token_urlsafe(12),
            "TENSORQ_REDIS_PASSWORD": secrets.token_urlsafe(12),
            "TENSORQ_API_PORT": str(free_port()),
            "COMPOSE_BAKE": "false",
            **overrides,
        }
        return cls(project=f"tensorq-test-{secrets.token_hex(3)}", env=env)

    @property
    def url(self) -> str:
        """The API's published address."""
        return f"http://127.0.0.1:{self.env['TENSORQ_API_PORT']}"

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``docker compose -p PROJECT ARGS`` in the checkout; raises with its output when it fails."""
        done = subprocess.run(
            ["docker", "compose", "-p", self.project, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def timed(self, name: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """``compose`` that records its wall time under ``name`` in the figures."""
        start = time.monotonic()
        done = self.compose(*args, timeout=timeout)
        self.figures[name] = round(time.monotonic() - start, 1)
        return done

    def replicas(self, service: str) -> int:
        """Running containers of ``service`` in this project."""
        for _attempt in range(5):  # `compose ps` can fail while the autoscaler creates or removes a container
            done = self.compose("ps", "-q", "--status", "running", service, check=False)
            if done.returncode == 0:
                return len([line for line in done.stdout.splitlines() if line.strip()])
            time.sleep(0.5)
        raise AssertionError(f"docker compose ps failed: {done.stderr[-2000:]}")

    def logs(self, *services: str) -> str:
        """The last lines of the services' logs."""
        return self.compose("logs", "--no-color", "--tail", "60", *services, check=False).stdout

    def image_sizes(self) -> dict[str, str]:
        """Sizes of the images the stack built (the api and worker-cpu services' images)."""
        services = json.loads(self.compose("config", "--format", "json").stdout)["services"]
        sizes = {}
        for service in ("api", "worker-cpu"):
            image = services[service]["image"]
            inspect = ["docker", "image", "inspect", "-f", "{{.Size}}", image]
            done = subprocess.run(inspect, capture_output=True, text=True)
            if done.returncode == 0:
                sizes[image] = f"{int(done.stdout.strip()) / 1e9:.2f} GB"
        return sizes

    def save_figures(self) -> Path:
        """Write the figures to the deploy cache (last-run.json) and return its path."""
        path = CACHE / "last-run.json"
        try:
            CACHE.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.figures, indent=2))
        except OSError:
            path = Path("/tmp/tensorq-deploy-last-run.json")
            path.write_text(json.dumps(self.figures, indent=2))
        return path
