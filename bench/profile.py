"""``python -m bench.profile``: where a tiny predict job's time goes, measured in one process without services.

It counts SQL statements and transactions per phase (the API's submit, the worker's ``JobRunner.run``, a
``?wait=`` read) and profiles many submits and many ``JobRunner.run`` calls with cProfile, grouping the
time by package. The API runs under Flask's test client with a publisher that sends nothing, the worker
as a ``JobRunner`` called directly, on a fresh SQLite file (or ``--database-url``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.data import TINY_ROW

GROUPS = (
    ("sqlalchemy", "sqlalchemy"),
    ("sqlite3/psycopg driver", "sqlite3"),
    ("sqlite3/psycopg driver", "psycopg"),
    ("tensorflow", "tensorflow"),
    ("keras", "keras"),
    ("numpy", "numpy"),
    ("flask/werkzeug", "flask"),
    ("flask/werkzeug", "werkzeug"),
    ("pydantic", "pydantic"),
    ("tensorq (api, db, worker, ml)", "/work/"),
    ("threading/queue waits", "threading.py"),
)


class NullPublisher:
    """A publisher that sends nothing (the broker is not what this profiles)."""

    def publish(self, job: Any) -> None:
        """Send nothing."""

    def ping(self) -> None:
        """Always reachable."""


class SqlCounter:
    """Counts statements and commits on an engine while ``active``."""

    def __init__(self, engine: Any) -> None:
        self.statements = 0
        self.commits = 0
        self.kinds: Counter[str] = Counter()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements += 1
        self.kinds[statement.split(None, 1)[0].upper()] += 1

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    @contextmanager
    def counting(self) -> Iterator[dict[str, Any]]:
        """Yield a dict that holds the statements, commits and kinds counted inside the block."""
        before, commits, kinds = self.statements, self.commits, Counter(self.kinds)
        out: dict[str, Any] = {}
        yield out
        out.update(statements=self.statements - before, commits=self.commits - commits, kinds=dict(self.kinds - kinds))


def _package_of(filename: str, name: str) -> str:
    for group, needle in GROUPS:
        if needle in filename or (filename == "~" and needle in name):
            return group
    return "other (stdlib, builtins)"


def profile(fn: Callable[[], object], count: int, top: int) -> tuple[float, str]:
    """Seconds per call of ``fn`` over ``count`` calls under cProfile, and a report (by package, then top functions)."""
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    for _ in range(count):
        fn()
    prof.disable()
    per_call = (time.perf_counter() - start) / count
    stats = pstats.Stats(prof)
    by_package: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package_of(filename, name)] += tottime
    total = sum(by_package.values()) or 1.0
    lines = [f"    {name:32s} {100 * t / total:5.1f}%" for name, t in by_package.most_common()]
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(max(5, top // 2))
    listing = "\n".join(line for line in text.getvalue().splitlines() if line.strip())
    return per_call, "  own time by package:\n" + "\n".join(lines) + "\n" + listing


def main(argv: list[str] | None = None) -> int:
    """Count statements per phase and profile submits and worker runs; print the findings."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--jobs", type=int, default=200, help="submits and worker runs to profile")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in a temp folder)")
    parser.add_argument("--top", type=int, default=25, help="functions listed per profile")
    args = parser.parse_args(argv)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from api.app import create_app
    from db.database import Database
    from db.migrate import upgrade
    from tensorq.core.settings import Settings
    from worker.runner import JobRunner

    folder = Path(tempfile.mkdtemp(prefix="tensorq-profile-"))
    try:
        url = args.database_url or f"sqlite:///{folder / 'profile.sqlite3'}"
        settings = Settings(
            database_url=url,
            artifact_dir=folder / "artifacts",
            broker_url="redis://127.0.0.1:1/0",  # never reached: the publisher sends nothing
            ratelimit_storage_url="memory://",
            quota_submissions_per_minute=10**9,
            quota_queued_jobs=10**9,
        )
        upgrade(url)
        api_db, worker_db = Database(settings), Database(settings)
        api_sql, worker_sql = SqlCounter(api_db.engine), SqlCounter(worker_db.engine)
        headers = {"Authorization": f"Bearer {api_db.keys.create('profile')}"}
        http = create_app(settings, database=api_db, publisher=NullPublisher()).test_client()
        runner = JobRunner(settings, worker_db)

        def submit(job_type: str, spec: dict) -> str:
            response = http.post("/v1/jobs", json={"type": job_type, "spec": spec}, headers=headers)
            assert response.status_code == 202, response.get_json()
            return response.get_json()["id"]

        train = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 3, "seed": 1}
        train_id = submit("train", train)
        assert runner.run(train_id) == "succeeded"
        model = api_db.jobs.get_any(train_id).result["model_id"]
        spec = {"model": model, "inputs": [TINY_ROW]}
        runner.run(submit("predict", spec))  # warm the model cache and the traced function

        print("SQL per phase of one tiny predict job (statements / commits; kinds):")
        with api_sql.counting() as c_submit:
            job_id = submit("predict", spec)
        with api_sql.counting() as c_poll:
            http.get(f"/v1/jobs/{job_id}?wait=0.3", headers=headers)
        with worker_sql.counting() as c_run:
            runner.run(job_id)
        with api_sql.counting() as c_get:
            http.get(f"/v1/jobs/{job_id}?wait=30", headers=headers)
        unbatched = JobRunner(settings.model_copy(update={"batch_max_jobs": 1}), worker_db)
        with worker_sql.counting() as c_off:
            unbatched.run(submit("predict", spec))
        batch = [submit("predict", spec) for _ in range(settings.batch_max_jobs)]
        with worker_sql.counting() as c_batch:
            for queued in batch:  # the first delivery runs the whole batch, the others find their job taken
                runner.run(queued)
        for name, counted in (
            ("POST /v1/jobs (submit)", c_submit),
            ("worker JobRunner.run (batch of 1)", c_run),
            ("worker, micro-batching off", c_off),
            ("GET ?wait=0.3 on a queued job", c_poll),
            ("GET ?wait=30 on a finished job", c_get),
        ):
            print(f"  {name:34s} {counted['statements']:3d} / {counted['commits']:2d}  {counted['kinds']}")
        n = len(batch)
        print(
            f"  worker, a batch of {n} with its {n - 1} skipped deliveries, per job: "
            f"{c_batch['statements'] / n:.2f} statements / {c_batch['commits'] / n:.2f} commits  {c_batch['kinds']}"
        )

        print(f"\ncProfile: {args.jobs} x POST /v1/jobs (Flask test client, no broker)")
        ids: list[str] = []
        per_submit, report = profile(lambda: ids.append(submit("predict", spec)), args.jobs, args.top)
        print(f"  {per_submit * 1e3:.2f} ms per submit\n{report}")

        print(f"\ncProfile: {args.jobs} x worker JobRunner.run of a tiny predict (no Celery)")
        pending = iter(ids)
        per_run, report = profile(lambda: runner.run(next(pending)), args.jobs, args.top)
        print(f"  {per_run * 1e3:.2f} ms per job\n{report}")
        api_db.dispose()
        worker_db.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
