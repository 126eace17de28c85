"""``python -m bench.soak``: worker memory under steady load, on real services (not run in CI).

It starts Redis, the API and ``--workers`` real TensorQ workers (bench/services.py), trains the tiny model,
then submits tiny predicts (1 to 3 rows each, so micro-batches come in many sizes) at a steady ``--rate``
for ``--minutes``, and a tiny training every ``--train-every-s``. Every ``--sample-s`` it reads each worker's
pool child: VmRSS, its thread count and the names of its threads (``/proc/<pid>/task/*/comm``), and the
predict jobs finished so far. After the warm-up
(``--warmup-jobs``) it fits RSS against jobs finished, per pool child life, and prints the slope in MiB per
1,000 jobs against the goal (at most 1). With ``--json`` every sample is written too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.services import Stack, TensorQWorker

GOAL_MIB_PER_1000 = 1.0
MiB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One reading of one worker's pool child."""

    t_s: float
    jobs: int
    worker: int
    pid: int
    rss_mib: float
    threads: int
    names: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Life:
    """One pool child's samples after the warm-up and the slope of its RSS against jobs finished."""

    worker: int
    pid: int
    samples: int
    jobs: int
    rss_first_mib: float
    rss_last_mib: float
    threads_first: int
    threads_last: int
    slope_mib_per_1000: float


def slope(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of ``y`` against ``x`` over ``points`` (x, y); NaN with fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return float("nan")
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return float("nan")
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def lives(samples: Sequence[Sample], warmup_jobs: int) -> list[Life]:
    """Each pool child's samples taken after ``warmup_jobs`` jobs finished, with its slope in MiB per 1,000 jobs."""
    groups: dict[tuple[int, int], list[Sample]] = {}
    for sample in samples:
        if sample.jobs >= warmup_jobs:
            groups.setdefault((sample.worker, sample.pid), []).append(sample)
    out = []
    for (worker, pid), own in groups.items():
        fit = slope([(s.jobs, s.rss_mib) for s in own]) * 1000
        first, last = own[0], own[-1]
        out.append(
            Life(
                worker,
                pid,
                len(own),
                last.jobs - first.jobs,
                first.rss_mib,
                last.rss_mib,
                first.threads,
                last.threads,
                fit,
            )
        )
    return out


def read_child(worker: TensorQWorker) -> tuple[int, float, int, dict[str, int]]:
    """The pool child's pid, VmRSS (MiB), thread count and how many of its threads carry each name."""
    pid = worker.pool_child()
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    values = dict(line.split(":", 1) for line in status if ":" in line)
    names: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names[(task / "comm").read_text().strip()] += 1
    return pid, int(values["VmRSS"].split()[0]) / 1024, int(values["Threads"]), dict(names)


def jobs_finished(stack: Stack) -> int:
    """Predict jobs that have ended (succeeded or failed) so far."""
    from sqlalchemy import text

    query = text("SELECT count(*) FROM jobs WHERE type = 'predict' AND status IN ('succeeded', 'failed')")
    with stack.db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


class Load:
    """Client threads that submit tiny predicts at ``rate`` per second in all, at most ``backlog`` ahead."""

    def __init__(
        self, stack: Stack, model: str, rate: float, clients: int, backlog: int, train_every_s: float = 0.0
    ) -> None:
        self.stack, self.model, self.rate, self.clients, self.backlog = stack, model, rate, clients, backlog
        self.train_every_s = train_every_s
        self.trainings = 0
        self.submitted = 0
        self.finished = 0  # updated by the sampler
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]
        if train_every_s > 0:
            self._threads.append(threading.Thread(target=self._train, daemon=True))

    def start(self) -> Load:
        """Start submitting."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop submitting and wait for the client threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _train(self) -> None:
        """A tiny training every ``train_every_s`` (a new model version each: its traced graphs must not stay)."""
        from tensorq.client import TensorQClient

        spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1, "model_name": "soak-train"}
        with TensorQClient(self.stack.api_url, self.stack.key, timeout=60) as client:
            while not self._stop.wait(self.train_every_s):
                try:
                    client.submit("train", spec)
                    self.trainings += 1
                except Exception as exc:  # noqa: BLE001 - counted and reported; the soak goes on
                    self.errors.append(f"train: {type(exc).__name__}: {exc}")

    def _run(self, index: int) -> None:
        from tensorq.client import TensorQClient

        rng = random.Random(index)
        every = self.clients / self.rate
        due = time.monotonic() + index * every / self.clients
        with TensorQClient(self.stack.api_url, self.stack.key, timeout=60) as client:
            while not self._stop.is_set():
                due = max(due + every, time.monotonic() - 1.0)  # never more than a second of catching up
                if (pause := due - time.monotonic()) > 0:
                    self._stop.wait(pause)
                if self.submitted - self.finished > self.backlog:
                    continue  # the workers are behind: hold back rather than grow the queue
                rows = [[round(rng.uniform(4.0, 8.0), 2) for _ in range(4)] for _ in range(rng.randint(1, 3))]
                try:
                    client.submit("predict", {"model": self.model, "inputs": rows})
                except Exception as exc:  # noqa: BLE001 - counted and reported; the soak goes on
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    self._stop.wait(1.0)
                    continue
                with self._lock:
                    self.submitted += 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (30)")
    parser.add_argument("--rate", type=float, default=35.0, help="tiny predicts submitted per second (35)")
    parser.add_argument("--clients", type=int, default=4, help="client threads submitting (4)")
    parser.add_argument("--workers", type=int, default=2, help="TensorQ workers (2)")
    parser.add_argument("--train-every-s", type=float, default=60.0, help="a tiny training every N s; 0: none (60)")
    parser.add_argument("--warmup-jobs", type=int, default=2000, help="jobs finished before the fit starts (2000)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples (10)")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="write the samples and lives here")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder with the services' logs")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.clients < 1 or args.workers < 1 or args.sample_s <= 0:
        parser.error("--minutes, --rate and --sample-s must be positive, --clients and --workers at least 1")
    return args


def say(text: str) -> None:
    """Print a progress line at once."""
    print(text, flush=True)


@contextlib.contextmanager
def _more_workers(stack: Stack, count: int) -> Iterator[list[TensorQWorker]]:
    """The stack's worker and ``count - 1`` more on the same settings, each logging in its own folder."""
    from bench.services import TensorQWorker

    workers = [stack.worker]
    try:
        for i in range(1, count):
            folder = stack.folder / f"worker{i + 1}"
            folder.mkdir(exist_ok=True)
            workers.append(TensorQWorker(stack.settings, folder).start())
        yield workers
    finally:
        for worker in workers[1:]:
            worker.stop()


def _wait_for_children(workers: list[TensorQWorker], timeout: float = 120.0) -> None:
    """Until every worker has its pool child."""
    from bench.services import wait_until

    for worker in workers:
        wait_until(lambda w=worker: bool(w.pool_child()), "a worker's pool child", timeout)  # type: ignore[misc]


def _read_all(workers: list[TensorQWorker], t_s: float, jobs: int) -> Iterator[Sample]:
    """A sample of each worker's pool child (none of a child being replaced)."""
    for index, worker in enumerate(workers):
        try:
            pid, rss, threads, names = read_child(worker)
        except (OSError, RuntimeError, ValueError, KeyError):
            continue
        yield Sample(t_s, jobs, index, pid, round(rss, 2), threads, names)


def run(args: argparse.Namespace, on_sample: Callable[[Sample], None] | None = None) -> dict[str, Any]:
    """Start the services, run the load for ``args.minutes`` while sampling; the samples, the lives, the verdict."""
    from bench.jobs import run_job
    from bench.services import running_stack
    from tensorq.client import TensorQClient

    samples: list[Sample] = []
    with running_stack(args.database_url, keep=args.keep, say=say, baselines=False) as stack:
        with _more_workers(stack, args.workers) as workers:
            _wait_for_children(workers)
            say("  training the tiny model (mlp on builtin:iris)")
            spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1, "seed": 1, "model_name": "tiny"}
            with TensorQClient(stack.api_url, stack.key, timeout=120) as client:
                trained = run_job(client, "train", spec, timeout=600).job.result
            assert trained is not None
            model = trained["model_id"]
            backlog = max(10, int(args.rate * 2))
            load = Load(stack, model, args.rate, args.clients, backlog, args.train_every_s).start()
            start = time.monotonic()
            next_sample = start
            try:
                while (now := time.monotonic()) - start < args.minutes * 60:
                    load.finished = jobs_finished(stack)  # every second: the backlog bound reads it
                    if now >= next_sample:
                        next_sample += args.sample_s
                        for sample in _read_all(workers, round(now - start, 1), load.finished):
                            samples.append(sample)
                            if on_sample is not None:
                                on_sample(sample)
                    time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
            finally:
                load.stop()
            done = jobs_finished(stack)
    fitted = lives(samples, args.warmup_jobs)
    worst = max((life.slope_mib_per_1000 for life in fitted if life.samples >= 3), default=float("nan"))
    return {
        "command": "python -m bench.soak " + " ".join(sys.argv[1:] if __name__ == "__main__" else []),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "jobs": done,
        "trainings": load.trainings,
        "submit_errors": load.errors[:20],
        "samples": [asdict(s) for s in samples],
        "lives": [asdict(life) for life in fitted],
        "slope_mib_per_1000": worst,
        "goal_mib_per_1000": GOAL_MIB_PER_1000,
    }


def _print_sample(sample: Sample) -> None:
    names = ", ".join(f"{name}x{n}" if n > 1 else name for name, n in sorted(sample.names.items()))
    say(
        f"  t={sample.t_s:7.0f}s jobs={sample.jobs:7d} worker {sample.worker} pid {sample.pid}: "
        f"rss {sample.rss_mib:7.1f} MiB, {sample.threads} threads ({names})"
    )


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM behaves like Ctrl-C, so every ``finally`` stops its services."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print each life's slope; exit 1 when the worst slope is over the goal."""
    args = parse_args(argv)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGTERM, _terminate)
    say(f"soak: {args.minutes} min, {args.rate} predicts/s, {args.workers} worker(s), warm-up {args.warmup_jobs} jobs")
    result = run(args, _print_sample)
    say(
        f"\n{result['jobs']} predict jobs finished, {result['trainings']} trainings submitted; "
        f"{len(result['submit_errors'])} submit error(s) shown"
    )
    for error in result["submit_errors"]:
        say(f"  submit error: {error}")
    for life in result["lives"]:
        say(
            f"worker {life['worker']} pool child {life['pid']}: {life['samples']} samples over {life['jobs']} jobs, "
            f"rss {life['rss_first_mib']:.1f} -> {life['rss_last_mib']:.1f} MiB, threads {life['threads_first']} -> "
            f"{life['threads_last']}, slope {life['slope_mib_per_1000']:.2f} MiB per 1,000 jobs"
        )
    worst = result["slope_mib_per_1000"]
    if math.isnan(worst):
        say("no slope: fewer than 3 samples of one pool child after the warm-up (run longer or warm up less)")
        return 2
    verdict = "within" if worst <= GOAL_MIB_PER_1000 else "OVER"
    say(f"slope after warm-up: {worst:.2f} MiB per 1,000 jobs ({verdict} the goal of {GOAL_MIB_PER_1000})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if worst <= GOAL_MIB_PER_1000 else 1


if __name__ == "__main__":
    sys.exit(main())
