"""The micro-batching figures: the same concurrent single-job clients and the same single tiny job with the
worker's micro-batching off (``TENSORQ_BATCH_MAX_JOBS=1``), against raw Celery and against the figures with it
on that the throughput and latency groups measured earlier in the same repeat (measured here when those groups
did not run). The worker is restarted for it and restarted again with the bench's settings afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sqlalchemy import distinct, func, select

from bench.context import Context
from bench.jobs import run_job
from bench.measure import CpuMeter, concurrent_rate, percentile
from bench.specs import Measurement
from db.models import Job, utcnow
from tensorq.client import TensorQClient


@contextlib.contextmanager
def worker_with(ctx: Context, **changes: object) -> Iterator[None]:
    """Run the block with the worker restarted under ``changes`` to its settings; warm (one tiny job) each way."""
    stack = ctx.stack
    stack.restart_worker(stack.settings.model_copy(update=changes))
    try:
        _warm(ctx)
        yield
    finally:
        stack.restart_worker(stack.settings)
        _warm(ctx)


def _warm(ctx: Context) -> None:
    """One tiny job: the worker is up, TensorFlow loaded and the tiny model cached."""
    with ctx.client() as client:
        for _ in range(3):
            run_job(client, "predict", ctx.tiny_spec(), timeout=300)


def client_rate(
    ctx: Context, job_type: str = "predict", spec: dict | None = None, total: int | None = None
) -> tuple[float, CpuMeter, float]:
    """Jobs per second of ``sizes.clients`` threads, each one job at a time (submit, then ``?wait=``): ``total``
    (default ``sizes.throughput_jobs``) jobs of ``spec`` (default the tiny predict); the CPU each process tree
    used, and how many jobs the worker took per claim on average."""
    sizes = ctx.sizes
    pids = ctx.stack.pids
    spec = spec if spec is not None else ctx.tiny_spec()
    total = total if total is not None else sizes.throughput_jobs
    opened: list[TensorQClient] = []
    since = utcnow()
    try:
        with CpuMeter({name: pids[name] for name in ("api", "worker", "redis")}) as meter:
            rate = concurrent_rate(lambda: _caller(ctx, job_type, spec, opened), sizes.clients, total)
    finally:
        for client in opened:
            client.close()
    # A batch's jobs are claimed by one statement, with one started_at.
    query = select(func.count(), func.count(distinct(Job.started_at))).where(
        Job.type == job_type, Job.created_at >= since, Job.started_at.is_not(None)
    )
    with ctx.stack.db.engine.connect() as conn:
        jobs, claims = conn.execute(query).one()
    return rate, meter, jobs / claims if claims else float("nan")


def _caller(ctx: Context, job_type: str, spec: dict, opened: list[TensorQClient]) -> Callable[[], object]:
    """A new client (remembered in ``opened``) and a call that runs one job of ``spec`` with it."""
    client = ctx.client()
    opened.append(client)
    return lambda: run_job(client, job_type, spec)


def _latency(ctx: Context) -> tuple[float, float]:
    """p50 and p99 seconds of single tiny jobs, one at a time (as the latency figure)."""
    sizes = ctx.sizes
    with ctx.client() as client:
        for _ in range(sizes.latency_warmup):
            run_job(client, "predict", ctx.tiny_spec())
        walls = [run_job(client, "predict", ctx.tiny_spec()).wall_s for _ in range(sizes.latency_samples)]
    return percentile(walls, 50), percentile(walls, 99)


def _raw_rate(ctx: Context) -> float:
    noop = ctx.raw_noop()
    return concurrent_rate(
        lambda: lambda: noop.delay().get(timeout=60), ctx.sizes.clients, ctx.sizes.raw_throughput_tasks
    )


def batching(ctx: Context, run: int) -> list[Measurement]:
    """Jobs/s of concurrent single-job clients and the single-job latency with micro-batching off."""
    on = dict(ctx.measured.get(run, {}))
    if "throughput" not in on:
        on["throughput"], _, on["jobs_per_claim"] = client_rate(ctx)
    if "latency_p50" not in on:
        on["latency_p50"], on["latency_p99"] = _latency(ctx)
    raw = on.get("raw_throughput") or _raw_rate(ctx)
    with worker_with(ctx, batch_max_jobs=1):
        off_rate, _, off_per_claim = client_rate(ctx)
        off_p50, off_p99 = _latency(ctx)
    details = {"clients": float(ctx.sizes.clients), "jobs_per_claim_off": off_per_claim}
    ms = 1e3
    return [
        Measurement("throughput_batching_off", off_rate, raw, details),
        Measurement("throughput_on_vs_off", on["throughput"], off_rate, details),
        Measurement("latency_p50_on_vs_off", on["latency_p50"] * ms, off_p50 * ms),
        Measurement("latency_p99_on_vs_off", on["latency_p99"] * ms, off_p99 * ms),
    ]
