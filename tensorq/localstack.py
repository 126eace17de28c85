"""A whole TensorQ on one machine: migrated SQLite, an API thread and a worker process.

Used by ``tensorq demo`` and by the end-to-end tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from pydantic import SecretStr
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tensorq.core.settings import Settings


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except Exception:  # noqa: BLE001 - any failure means "no Redis here"
        return False


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read the same ``settings``."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):  # dumped masked; a child needs the value itself
            value = secret.get_secret_value()
        env[f"TENSORQ_{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return env


class _QuietHandler(WSGIRequestHandler):
    """Serves requests without an access-log line each."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        """Log nothing per request."""


class ApiThread:
    """The API served by werkzeug in a background thread on a free port."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> None:
        from tensorq.webapp import make_app

        self.app = make_app(settings)
        self._server: BaseWSGIServer = make_server(host, port, self.app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tensorq-api", daemon=True)

    def start(self) -> ApiThread:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


class ApiProcess:
    """``tensorq api`` (gunicorn, as a user starts it) in a process group of its own on a free port."""

    def __init__(self, settings: Settings, log_path: Path, *, workers: int = 1, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.log_path = log_path
        self.workers = workers
        self.host = host
        self.port = _free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ApiProcess:
        """Launch it and wait until ``/healthz`` answers."""
        env = {**os.environ, **settings_env(self.settings)}
        argv = ["api", "--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tensorq.cli", *argv],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_http(f"{self.url}/healthz", timeout=timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group; SIGKILL it if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)


def _free_port(host: str) -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """A real ``tensorq worker`` process with its log in a file."""

    def __init__(self, settings: Settings, log_path: Path, *, queues: str = "train,predict,explain", gpu: str = "auto"):
        self.settings = settings
        self.log_path = log_path
        self.queues = queues
        self.gpu = gpu
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Launch the worker."""
        env = {**os.environ, **settings_env(self.settings), "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tensorq.cli", "worker", "--queues", self.queues, "--gpu", self.gpu],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the worker to stop (SIGTERM), then kill its process group if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the worker and its children at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")
