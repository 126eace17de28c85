"""Starting and stopping the real services the bench measures: Redis, gunicorn, TensorQ and raw Celery workers.

Every process runs in its own process group and is stopped by group (SIGTERM, then SIGKILL), and
each also gets SIGKILL from the kernel if the bench itself dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.raw_celery import BROKER_ENV, QUEUE
from tensorq.core.settings import Settings
from tensorq.localstack import WorkerProcess, settings_env

if TYPE_CHECKING:
    from db.database import Database

# The options ``tensorq api`` passes to gunicorn (tensorq/server.py, defaults of tensorq/cli.py), so the
# constant app is served exactly the same way.
GUNICORN_OPTIONS = [
    "--workers=2",
    "--threads=16",
    "--worker-class=tensorq.server.GeventJsonErrorWorker",  # gevent, its own errors in JSON
    "--worker-connections=3072",  # max_waits + api_extra_connections
    "--timeout=120",
    "--keep-alive=10",
    "--access-logfile=-",
    '--access-logformat=%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss',
]
PR_SET_PDEATHSIG = 1
BENCH_QUOTA = 10**9


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the bench process dies (Linux only; ignored elsewhere)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_until(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``check`` until it is true; TimeoutError after ``timeout`` s, RuntimeError if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} was not ready within {timeout} s")


def http_ready(url: str) -> bool:
    """Whether ``url`` answers with a status below 500."""
    return httpx.get(url, timeout=2).status_code < 500


class Service:
    """One subprocess in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        """Launch the process."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only the main thread starts services
            )
        return self

    @property
    def pid(self) -> int:
        """The service's main process id."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGCONT)
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc.pid, signal.SIGKILL)  # stragglers in the group (pool children, gunicorn workers)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


class RedisServer(Service):
    """A private ``redis-server`` on a free port, without persistence."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; the bench starts its own Redis")
        self.port = free_port()
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        super().__init__("redis", [*argv, "--dir", str(folder)], folder / "redis.log")

    def url(self, db: int = 0) -> str:
        """The URL of database ``db`` on this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        """Launch and wait for PING."""
        super().start()
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        wait_until(lambda: bool(client.ping()), "redis-server", 20, self.proc)
        client.close()
        return self


class Gunicorn(Service):
    """A gunicorn server on a free port: ``tensorq api`` or the constant Flask app."""

    def __init__(self, name: str, argv_for_port: Callable[[int], list[str]], log_path: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(name, argv_for_port(self.port), log_path, env)

    def start(self, ready_path: str = "/") -> Gunicorn:
        """Launch and wait until ``ready_path`` answers."""
        super().start()
        wait_until(lambda: http_ready(self.url + ready_path), self.name, 60, self.proc)
        return self


def tensorq_api(settings: Settings, folder: Path) -> Gunicorn:
    """``tensorq api`` under gunicorn with the bench's settings."""
    return Gunicorn(
        "tensorq api",
        lambda port: [sys.executable, "-m", "tensorq.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        folder / "api.log",
        settings_env(settings),
    )


def constant_api(folder: Path) -> Gunicorn:
    """The constant Flask app under gunicorn with the same options as ``tensorq api``."""
    return Gunicorn(
        "constant app",
        lambda port: [
            sys.executable,
            "-m",
            "gunicorn",
            f"--bind=127.0.0.1:{port}",
            *GUNICORN_OPTIONS,
            "bench.constant_app:app",
        ],
        folder / "constant.log",
        {},
    )


def raw_celery_worker(broker_url: str, folder: Path) -> Service:
    """``celery -A bench.raw_celery worker --pool=prefork -c 1`` on ``broker_url``."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.raw_celery",
        "worker",
        "--pool=prefork",
        "-c",
        "1",
        f"--queues={QUEUE}",
        "--loglevel=WARNING",
        "--hostname=bench-raw@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    return Service("raw celery worker", argv, folder / "raw_celery.log", {BROKER_ENV: broker_url})


class TensorQWorker:
    """A real ``tensorq worker`` (``tensorq.localstack.WorkerProcess``) that can be paused and measured."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.process = WorkerProcess(settings, folder / "worker.log", gpu="none")
        self.log_path = folder / "worker.log"

    def start(self) -> TensorQWorker:
        """Launch the worker."""
        self.process.start()
        return self

    @property
    def pid(self) -> int:
        """The Celery main process's pid."""
        assert self.process.proc is not None
        return self.process.proc.pid

    def pool_child(self) -> int:
        """The pid of the prefork pool child that runs jobs (``/proc/<pid>/task/<pid>/children``)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        if not children:
            raise RuntimeError("the worker has no pool child")
        return int(children[0])

    def child_rss_bytes(self) -> int:
        """VmRSS of the pool child, in bytes."""
        for line in Path(f"/proc/{self.pool_child()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def child_cpu_seconds(self) -> float:
        """User + system CPU seconds the pool child has used so far (``/proc/<pid>/stat``)."""
        fields = Path(f"/proc/{self.pool_child()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP the worker's process group for the block (nothing it queued runs meanwhile)."""
        _signal_group(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            _signal_group(self.pid, signal.SIGCONT)

    def restart(self, settings: Settings) -> None:
        """Stop the worker and start it again with ``settings`` (its log goes on in the same file)."""
        self.stop()
        self.process = WorkerProcess(settings, self.log_path, gpu="none")
        self.start()

    def stop(self) -> None:
        """SIGCONT, then stop gracefully and kill the group if it lingers."""
        if self.process.proc is None:
            return
        _signal_group(self.pid, signal.SIGCONT)
        try:
            self.process.stop(timeout=20)
        finally:
            _signal_group(self.pid, signal.SIGKILL)


@dataclass
class Stack:
    """Everything one bench run talks to."""

    folder: Path
    settings: Settings
    key: str
    tenant_id: str
    api_url: str
    constant_url: str
    raw_broker_url: str
    worker: TensorQWorker
    db: Database
    # The root pid of each service's process tree (for CPU accounting): api, worker, raw_worker, redis.
    pids: dict[str, int] = field(default_factory=dict)

    def restart_worker(self, settings: Settings) -> None:
        """Restart the TensorQ worker with ``settings`` (the API keeps its own); its pid is updated."""
        self.worker.restart(settings)
        self.pids["worker"] = self.worker.pid

    def log_tails(self, chars: int = 3000) -> str:
        """The end of every service log, for a failure report."""
        return log_tails(self.folder, chars)


def _say_logs_on_failure(kind: type[BaseException] | None, folder: Path, say: Callable[[str], None]) -> bool:
    """On a failure that leaves the block (not Ctrl-C), print the end of every service log before they go."""
    if kind is not None and not issubclass(kind, KeyboardInterrupt):
        say(log_tails(folder))
    return False


def log_tails(folder: Path, chars: int = 3000) -> str:
    """The end of every service log in ``folder``."""
    parts = []
    for path in sorted(folder.glob("*.log")):
        parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-chars:]}")
    return "\n".join(parts)


@contextlib.contextmanager
def running_stack(
    database_url: str | None = None, keep: bool = False, say: Callable[[str], None] = print, baselines: bool = True
) -> Iterator[Stack]:
    """Start Redis, the database, a TensorQ worker, the API, a raw Celery worker and the constant app (without
    ``baselines``: neither of those two); stop them all."""
    from db.database import Database
    from db.migrate import upgrade

    folder = Path(tempfile.mkdtemp(prefix="tensorq-bench-"))
    with contextlib.ExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
        stack.push(lambda kind, _exc, _tb: _say_logs_on_failure(kind, folder, say))
        redis_server = RedisServer(folder)
        stack.callback(redis_server.stop)
        redis_server.start()
        url = database_url or f"sqlite:///{folder / 'bench.sqlite3'}"
        settings = Settings(
            database_url=url,
            broker_url=redis_server.url(0),
            artifact_dir=folder / "artifacts",
            gpu="none",
            # The bench submits thousands of jobs a minute: its quotas are out of the way (still checked per submit).
            quota_submissions_per_minute=BENCH_QUOTA,
            quota_queued_jobs=BENCH_QUOTA,
            # A micro-batch counts against the running quota job by job: out of the way like the others.
            quota_running_jobs=BENCH_QUOTA,
        )
        say(f"  redis {redis_server.url()} · database {url.split('@')[-1]} · folder {folder}")
        upgrade(url)
        db = Database(settings)
        stack.callback(db.dispose)
        key = db.keys.create("bench")
        tenant_id = db.keys.ensure_tenant("bench")
        worker = TensorQWorker(settings, folder)
        stack.callback(worker.stop)
        worker.start()
        api = tensorq_api(settings, folder)
        stack.callback(api.stop)
        api.start("/readyz")
        pids = {"api": api.pid, "worker": worker.pid, "redis": redis_server.pid}
        constant_url = ""
        if baselines:
            raw = raw_celery_worker(redis_server.url(1), folder)
            stack.callback(raw.stop)
            raw.start()
            constant = constant_api(folder)
            stack.callback(constant.stop)
            constant.start("/")
            pids["raw_worker"], constant_url = raw.pid, constant.url
        yield Stack(folder, settings, key, tenant_id, api.url, constant_url, redis_server.url(1), worker, db, pids)
