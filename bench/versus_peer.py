"""TensorQ against the peer (``bench/peer.py``, the Flask + SQLAlchemy + Celery service a team would write instead),
side by side in one run on the same database and Redis, interleaved (one job each in turn; the throughput in
halves, TensorQ, the peer, the peer, TensorQ): one client's submit -> result p50 and p99, jobs/s of
``sizes.clients`` single-job clients, and API CPU milliseconds per job; raw Celery's p50 as the floor."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import httpx

from bench.batching import client_rate
from bench.context import Context
from bench.jobs import run_job
from bench.measure import CpuMeter, concurrent_rate, percentile, samples
from bench.peer import BROKER_ENV, DATABASE_ENV, QUEUE, create_table
from bench.services import GUNICORN_OPTIONS, Gunicorn, Service
from bench.specs import Measurement

MS = 1e3
POLL_S = 0.005  # the peer's clients poll every 5 ms
WARMUP = 10
JOB_TIMEOUT_S = 120


def _peer(ctx: Context) -> tuple[Gunicorn, Service]:
    """The peer's API (gunicorn, ``tensorq api``'s options) and its Celery worker, on the bench's database and on
    db 2 of the bench's Redis."""
    stack = ctx.stack
    env = {DATABASE_ENV: stack.settings.database_url, BROKER_ENV: stack.settings.broker_url.rsplit("/", 1)[0] + "/2"}
    api = Gunicorn(
        "peer api",
        lambda port: [
            sys.executable,
            "-m",
            "gunicorn",
            f"--bind=127.0.0.1:{port}",
            *GUNICORN_OPTIONS,
            "bench.peer:app",
        ],
        stack.folder / "peer_api.log",
        env,
    )
    argv = ["celery", "-A", "bench.peer:celery", "worker", "--pool=prefork", "-c", "1", f"--queues={QUEUE}"]
    argv += ["--loglevel=WARNING", "--hostname=bench-peer@%h", "--without-gossip", "--without-mingle"]
    worker = Service("peer worker", [sys.executable, "-m", *argv], stack.folder / "peer_worker.log", env)
    return api, worker


def peer_job(http: httpx.Client, body: dict) -> float:
    """Submit one job to the peer and poll every 5 ms until it succeeded; the seconds it took."""
    start = time.perf_counter()
    job = http.post("/jobs", json=body).raise_for_status().json()
    while job["status"] not in ("succeeded", "failed"):
        if time.perf_counter() - start > JOB_TIMEOUT_S:
            raise TimeoutError(f"peer job {job['id']} still {job['status']} after {JOB_TIMEOUT_S} s")
        time.sleep(POLL_S)
        job = http.get(f"/jobs/{job['id']}").raise_for_status().json()
    if job["status"] != "succeeded":
        raise RuntimeError(f"peer job {job['id']} failed")
    return time.perf_counter() - start


def _peer_caller(url: str, body: dict, opened: list[httpx.Client]) -> Callable[[], object]:
    http = httpx.Client(base_url=url, timeout=60)
    opened.append(http)
    return lambda: peer_job(http, body)


def versus_peer(ctx: Context, run: int) -> list[Measurement]:
    """The peer figures of one repeat (the peer's processes start and stop with it)."""
    sizes, stack = ctx.sizes, ctx.stack
    create_table(stack.settings.database_url)
    body = {
        "model": ctx.stack.db.models.resolve(stack.tenant_id, ctx.tiny_model).path,
        "inputs": ctx.tiny_spec()["inputs"],
    }
    api, worker = _peer(ctx)
    try:
        worker.start()
        api.start("/jobs/none")  # a 404 is an answer
        # Interleaved, so that a machine whose load moves weighs on both sides alike: one job each in turn for
        # the latency, and the throughput in four halves, TensorQ, the peer, the peer, TensorQ.
        peer_walls: list[float] = []
        ours: list[float] = []
        with httpx.Client(base_url=api.url, timeout=120) as http, ctx.client() as client:
            for n in range(WARMUP + sizes.latency_samples):
                peer_wall = peer_job(http, body)
                our_wall = run_job(client, "predict", ctx.tiny_spec()).wall_s
                if n >= WARMUP:
                    peer_walls.append(peer_wall)
                    ours.append(our_wall)
        half = max(1, sizes.throughput_jobs // 2)
        first, meter, _ = client_rate(ctx, total=half)
        opened: list[httpx.Client] = []
        peer_meters: list[CpuMeter] = []
        peer_seconds = 0.0
        for _ in range(2):
            with CpuMeter({"api": api.pid, "worker": worker.pid}) as peer_meter:
                peer_seconds += half / concurrent_rate(lambda: _peer_caller(api.url, body, opened), sizes.clients, half)
            peer_meters.append(peer_meter)
        second, meter_2, _ = client_rate(ctx, total=half)
        for http_client in opened:
            http_client.close()
    finally:
        api.stop()
        worker.stop()
    rate = 2 * half / (half / first + half / second)
    peer_rate = 2 * half / peer_seconds
    used = {name: meter.used[name] + meter_2.used[name] for name in ("api", "worker")}
    peer_used = {name: sum(m.used[name] for m in peer_meters) for name in ("api", "worker")}
    noop = ctx.raw_noop()
    raw = samples(lambda: noop.delay().get(timeout=30), sizes.latency_samples, warmup=WARMUP)
    jobs = 2 * half
    details = {
        "raw_celery_p50_ms": percentile(raw, 50) * MS,
        "raw_celery_p99_ms": percentile(raw, 99) * MS,
        "peer_p50_ms": percentile(peer_walls, 50) * MS,
        "tensorq_worker_cpu_ms_per_job": MS * used["worker"] / jobs,
        "peer_worker_cpu_ms_per_job": MS * peer_used["worker"] / jobs,
        "clients": float(sizes.clients),
    }
    return [
        Measurement("peer_latency_p50", percentile(ours, 50) * MS, percentile(peer_walls, 50) * MS, details),
        Measurement("peer_latency_p99", percentile(ours, 99) * MS, percentile(peer_walls, 99) * MS, details),
        Measurement("peer_throughput", rate, peer_rate, details),
        Measurement("peer_api_cpu", MS * used["api"] / jobs, MS * peer_used["api"] / jobs, details),
    ]
