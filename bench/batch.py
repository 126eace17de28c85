"""The batch figures: tiny predict jobs per second submitted in 100-job batches (``{"jobs": [...]}``),
until every one has succeeded, against raw Celery ``group()`` of 100 no-op tasks, ``.get()`` each group; and
the same batches each with a parent (``{"jobs": [...], "parent": {}}``), the client waiting on the parents
alone by HTTP long-polls, as a client does (docs/job-graphs.md)."""

from __future__ import annotations

import time

from celery import group
from sqlalchemy import func, select

from bench.context import Context
from bench.specs import Measurement
from db.models import Job

BATCH = 100


def _wait_succeeded(ctx: Context, ids: list[str], timeout: float = 600.0) -> None:
    """Wait until every job of ``ids`` has ended; raise unless all succeeded."""
    deadline = time.monotonic() + timeout
    query = select(Job.status, func.count()).where(Job.id.in_(ids)).group_by(Job.status)
    while True:
        with ctx.stack.db.engine.connect() as conn:
            counts = dict(conn.execute(query).all())
        if counts.get("succeeded", 0) == len(ids):
            return
        if sum(counts.get(s, 0) for s in ("failed", "cancelled")):
            raise RuntimeError(f"batch jobs ended other than succeeded: {counts}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch jobs not done after {timeout} s: {counts}")
        time.sleep(0.02)


def batch_throughput(ctx: Context, run: int) -> list[Measurement]:
    """Jobs per second, ``batch_count`` batches of 100 sent one after another, timed to the last success."""
    count = ctx.sizes.batch_count
    body = [{"type": "predict", "spec": ctx.tiny_spec()} for _ in range(BATCH)]
    ids: list[str] = []
    with ctx.client() as client:
        start = time.perf_counter()
        submit_s = 0.0
        for _ in range(count):
            sent = time.perf_counter()
            ids += [job.id for job in client.submit_many(body)]
            submit_s += time.perf_counter() - sent
        _wait_succeeded(ctx, ids)
        ours = len(ids) / (time.perf_counter() - start)
    noop = ctx.raw_noop()
    start = time.perf_counter()
    for _ in range(count):
        group(noop.s() for _ in range(BATCH)).apply_async().get(timeout=600)
    raw = count * BATCH / (time.perf_counter() - start)
    details = {"batches": float(count), "batch_size": float(BATCH), "post_ms_per_batch": submit_s / count * 1e3}
    parented = _parented(ctx, count, body)
    return [
        Measurement("batch_throughput", ours, raw, details),
        Measurement("batch_parent_throughput", parented, raw, {"batches": float(count), "batch_size": float(BATCH)}),
    ]


def _parented(ctx: Context, count: int, body: list[dict]) -> float:
    """Jobs per second of ``count`` batches sent with a parent each, the client long-polling each parent."""
    with ctx.client() as client:
        start = time.perf_counter()
        parents = [client.submit_group(body, {})[0] for _ in range(count)]
        for parent in parents:
            done = client.wait(parent.id, timeout=600, poll=25)
            if done.status != "succeeded":
                raise RuntimeError(f"batch parent {parent.id} ended {done.status}: {done.error}")
        return count * BATCH / (time.perf_counter() - start)
