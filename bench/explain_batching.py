"""The micro-batched explain figure: tiny ``integrated_gradients`` explain jobs per second of concurrent
single-job clients with the worker's micro-batching on (the bench's worker) against off (the worker restarted
with ``TENSORQ_BATCH_MAX_JOBS=1``, and restarted with the bench's settings afterwards), in the same repeat."""

from __future__ import annotations

from bench.batching import client_rate, worker_with
from bench.context import Context
from bench.data import TINY_ROW
from bench.jobs import run_job
from bench.specs import Measurement

METHOD = "integrated_gradients"
STEPS = 64  # the spec's default, written out: jobs share a call only when their settings match
WARMUP_JOBS = 3


def explain_spec(ctx: Context) -> dict:
    """A tiny explain: integrated gradients of one iris row on the tiny model."""
    return {"model": ctx.tiny_model, "inputs": [TINY_ROW], "method": METHOD, "steps": STEPS}


def _rate(ctx: Context) -> tuple[float, float]:
    """Tiny explain jobs/s of ``sizes.clients`` single-job clients (after a few untimed ones) and the jobs per
    claim."""
    spec = explain_spec(ctx)
    with ctx.client() as client:
        for _ in range(WARMUP_JOBS):
            run_job(client, "explain", spec, timeout=300)
    rate, _, per_claim = client_rate(ctx, "explain", spec, ctx.sizes.explain_batch_jobs)
    return rate, per_claim


def explain_batching(ctx: Context, run: int) -> list[Measurement]:
    """Tiny explain jobs/s of the same concurrent single-job clients with micro-batching on against off."""
    on_rate, on_per_claim = _rate(ctx)
    with worker_with(ctx, batch_max_jobs=1):
        off_rate, off_per_claim = _rate(ctx)
    details = {
        "clients": float(ctx.sizes.clients),
        "jobs": float(ctx.sizes.explain_batch_jobs),
        "steps": float(STEPS),
        "jobs_per_claim_on": on_per_claim,
        "jobs_per_claim_off": off_per_claim,
    }
    return [Measurement("explain_throughput_on_vs_off", on_rate, off_rate, details)]
