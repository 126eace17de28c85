"""Cold start from zero workers: the autoscaler (min_workers 0) sees a job submitted with no worker running and
starts a local ``tensorq worker`` process (what ``DockerReplicas`` does with a container, less the container's
own start); the wait until the job runs is timed and split into its parts. After the job, the autoscaler
drains and stops the worker (a real scale to zero) and a predict job of the model just trained starts the
next cold start; a second job on the warm worker gives the warm figures.

    python -m bench.coldstart [--runs 5] [--before /work/main] [--redis-url redis://127.0.0.1:6379/0]

``--before DIR`` runs the same cold starts with the worker's code taken from ``DIR`` (another checkout, e.g.
the main branch) and the autoscaler's old wait (``autoscale_interval_s`` at zero too), in the same run,
alternating, so both see the same machine load. Parts, each in seconds:

* ``decide``: submission -> the autoscaler starts a worker (its step interval while at zero);
* ``boot``: worker process start -> Celery ready (Python imports, Celery's start, the broker connection);
* ``register``: Celery ready -> the pool child registered in SQL (the fork, the database connection);
* ``claim``: -> the job claimed, ``running`` (the cold start's end: submit -> running);
* ``tensorflow``: -> TensorFlow loaded in the pool child (the job waits for it under its lease);
* ``done``: submit -> the job succeeded (a 1-epoch iris MLP; a predict of 3 rows).

Then the import costs alone, each in a fresh interpreter (median of 3): TensorFlow with and without Keras'
optional extras, and Celery's command line that ``worker_main`` imported.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from db.backlog import backlog_by_type
from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.core.settings import Settings
from tensorq.localstack import ApiThread, settings_env
from worker.autoscale.loop import Autoscaler, queue_loads
from worker.autoscale.policy import Policy
from worker.autoscale.replicas import Replica

SPEC = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1, "seed": 1}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ")
PARTS = ("decide", "boot", "register", "claim", "tensorflow")


def logged_at(log: str, needle: str) -> float | None:
    """The epoch time of the first worker log line holding ``needle``."""
    for line in log.splitlines():
        match = STAMP.match(line)
        if match and needle in line:
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


@dataclass
class ProcessReplicas:
    """``tensorq worker`` processes as the autoscaler's replica set (``worker/autoscale/replicas.py``'s protocol),
    their code taken from ``code`` (a checkout); each start is timed and logged to its own file."""

    settings: Settings
    folder: Path
    code: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: list[tuple[float, Path]] = field(default_factory=list)
    every: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def none_alive(self) -> bool:
        """Whether every worker process ever started here has exited (those being stopped too)."""
        return all(proc.poll() is not None for proc in self.every)

    def members(self) -> list[Replica]:
        """The worker processes alive (all on this host)."""
        alive = [(pid, proc) for pid, proc in self.running.items() if proc.poll() is None]
        return [Replica(pid, os.uname().nodename, n) for n, (pid, _) in enumerate(alive, 1)]

    def start(self, count: int) -> None:
        """Start ``count`` workers now."""
        env = {**os.environ, **settings_env(self.settings), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(self.code)}
        for _ in range(count):
            log = self.folder / f"worker-{len(self.started) + 1}.log"
            self.started.append((time.time(), log))
            proc = subprocess.Popen(
                [sys.executable, "-m", "tensorq.cli", "worker", "--queues", "train,predict", "--gpu", "none"],
                env=env,
                cwd=self.code,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.running[str(proc.pid)] = proc
            self.every.append(proc)

    def stop(self, replica: Replica) -> None:
        """Stop ``replica`` (SIGTERM, as Docker does) in the background."""
        proc = self.running.pop(replica.id)
        threading.Thread(target=_stop, args=(proc,), daemon=True).start()

    def stop_all(self) -> None:
        """Stop every worker and wait for it."""
        for proc in self.running.values():
            _stop(proc)
        self.running.clear()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def _until(what: str, check: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


@dataclass
class Variant:
    """One side of the comparison: the worker's code and the autoscaler's wait while at zero."""

    name: str
    code: Path
    zero_interval_s: float | None


class Stack:
    """A database, an API and an autoscaler (min 0, max 1 worker, no cooldown) for one variant."""

    def __init__(self, folder: Path, redis_url: str, variant: Variant) -> None:
        self.settings = Settings(
            database_url=f"sqlite:///{folder / 'tensorq.sqlite3'}",
            broker_url=redis_url,
            artifact_dir=str(folder / "artifacts"),
            model_cache_dir=folder / "model-cache",
            queue_prefix=f"cold{uuid.uuid4().hex[:8]}",
            heartbeat_s=2.0,
        )
        folder.mkdir(parents=True, exist_ok=True)
        upgrade(self.settings.database_url)
        self.db = Database(self.settings)
        self.api = ApiThread(self.settings).start()
        self.client = TensorQClient(self.api.url, self.db.keys.create("cold"))
        self.replicas = ProcessReplicas(self.settings, folder, variant.code)
        policy = Policy(min_workers=0, max_workers=1, jobs_per_worker=1, cooldown_s=0)
        factory = self.db.factory
        self.scaler = Autoscaler(
            policy, ("train", "predict"), lambda: queue_loads(backlog_by_type(factory)), self.replicas, self.db.drains
        )
        self.model = ""  # the model the last cold training made: the predict jobs use it
        self.stop = threading.Event()
        interval = self.settings.autoscale_interval_s
        args = (interval, self.stop, variant.zero_interval_s)
        self.loop = threading.Thread(target=self.scaler.run, args=args, daemon=True)
        self.loop.start()

    def cold(self, job_type: str, spec: dict) -> dict[str, float]:
        """With no worker running, submit a job; the parts of its cold start, then of a warm second job."""
        submitted = time.time()
        job = self.client.submit(job_type, spec)
        while (current := self.client.job(job.id, wait=1)).status == "queued":
            pass
        running = current.started_at.timestamp() if current.started_at else time.time()
        done = self.client.wait(job.id, timeout=600)
        assert done.status == "succeeded", done.error
        finished = done.finished_at.timestamp() if done.finished_at else time.time()
        decided, log_path = self.replicas.started[-1]
        log = log_path.read_text()
        ready = logged_at(log, "ready.") or running
        loaded = logged_at(log, "worker child ready") or running
        # A worker that logs no registration (before this change) is usable once TensorFlow has loaded.
        registered = logged_at(log, "worker child registered") or min(loaded, running)
        warm_submitted = time.time()
        warm = self.client.submit(job_type, {**spec, "seed": 2} if job_type == "train" else spec)
        warm_done = self.client.wait(warm.id, timeout=600)
        assert warm_done.status == "succeeded", warm_done.error
        warm_running = warm_done.started_at.timestamp() if warm_done.started_at else time.time()
        if job_type == "train" and done.result:
            self.model = str(done.result["model_id"])
        return {
            "cold_start": running - submitted,
            "decide": decided - submitted,
            "boot": ready - decided,
            "register": registered - ready,
            "claim": running - registered,
            "tensorflow": loaded - submitted,
            "done": finished - submitted,
            "warm_start": warm_running - warm_submitted,
            "warm_done": (warm_done.finished_at.timestamp() if warm_done.finished_at else time.time()) - warm_submitted,
        }

    def close(self) -> None:
        """Stop the autoscaler, its workers, the API."""
        self.stop.set()
        self.loop.join(30)
        self.replicas.stop_all()
        self.client.close()
        self.api.stop()
        self.db.dispose()


def import_s(code: Path, statement: str, repeat: int = 3) -> float:
    """Median wall time of a fresh interpreter running ``statement`` with ``code`` on its path."""
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], env=env, cwd=code, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def import_costs(code: Path) -> dict[str, float]:
    """What the parts of a worker's start cost alone (fresh interpreters)."""
    return {
        "python": import_s(code, "pass"),
        "worker parent": import_s(code, "import tensorq.cli, worker.main, worker.tasks, celery.apps.worker"),
        "worker parent with celery's command line (worker_main)": import_s(
            code, "import tensorq.cli, worker.main, worker.tasks, celery.apps.worker, celery.bin.celery"
        ),
        "tensorflow, Keras' extras in": import_s(code, "import tensorflow"),
        "tensorflow, lean (worker/tf_boot.py)": import_s(
            code, "from worker.tf_boot import lean_import; lean_import(False)"
        ),
    }


def _p50(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _line(figures: dict[str, float]) -> str:
    return ", ".join(f"{key}={value:.1f}" for key, value in figures.items())


def main() -> None:
    """Run the cold starts (alternating the variants) and print each part's median."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a checkout whose worker is the baseline (e.g. /work/main)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-imports", action="store_true", help="skip the import costs")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    variants = [Variant("after", here, Settings().autoscale_zero_interval_s)]
    if args.before:
        variants.insert(0, Variant("before", args.before.resolve(), None))
    print(f"load: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        stacks = {v.name: Stack(Path(tmp) / v.name, args.redis_url, v) for v in variants}
        results: dict[str, dict[str, list[dict[str, float]]]] = {v.name: {"train": [], "predict": []} for v in variants}
        try:
            for i in range(args.runs):
                for name, stack in stacks.items():
                    for job_type in ("train", "predict"):
                        spec = SPEC if job_type == "train" else {"model": stack.model, "inputs": ROWS}
                        for each in stacks.values():  # from zero, with no other worker still stopping
                            _until("scaled to zero", each.replicas.none_alive)
                        time.sleep(1.0)
                        figures = stack.cold(job_type, spec)
                        results[name][job_type].append(figures)
                        print(f"{name} {job_type} run {i + 1}: {_line(figures)} load={os.getloadavg()[0]:.1f}")
        finally:
            for stack in stacks.values():
                stack.close()
    for name, by_type in results.items():
        for job_type, runs in by_type.items():
            print(f"p50 {name} {job_type}: {_line(_p50(runs))}")
    if not args.no_imports:
        print(f"imports (fresh interpreters, p50 of 3): {_line(import_costs(here))}", flush=True)
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
