"""The "grown" figure: submit, claim, submit-to-result and a ``/metrics`` scrape, before and after the
database is grown by many finished jobs (with their events) and a large queued backlog, in the same run."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import insert

from bench.context import Context
from bench.jobs import run_job
from bench.measure import percentile, samples
from bench.specs import Measurement
from db.jobs import NewJob
from db.jobstats import count_finished_many
from db.livecounts import count_moves
from db.models import Job, JobEvent, utcnow

MS = 1e3
CHUNK = 5_000
NO_RUNNING_LIMIT = 10**9


def _phase(ctx: Context, claim_tenant: str) -> dict[str, float]:
    """p50 of each measured step on the database as it is now (milliseconds)."""
    count = ctx.sizes.grown_samples
    with ctx.client() as client:
        # The POST answers at once (a waiting POST would make "submit" the whole round trip, as "e2e" is).
        runs = [run_job(client, "predict", ctx.tiny_spec(), one_request=False) for _ in range(count)]
    jobs = ctx.stack.db.jobs
    claims: list[float] = []
    for _ in range(count):
        job = jobs.submit(NewJob(claim_tenant, "predict", {}), publishing=True).job
        start = time.perf_counter()
        claim = jobs.claim(job.id, "bench-claims", running_limit=lambda _: NO_RUNNING_LIMIT)
        claims.append(time.perf_counter() - start)
        if claim is None or not isinstance(claim.lease_token, str):
            raise RuntimeError(f"the bench could not claim its own job {job.id}")
        jobs.finish(job.id, claim.lease_token, {})
    with httpx.Client(base_url=ctx.stack.api_url, timeout=60) as http:
        scrapes = samples(lambda: http.get("/metrics").raise_for_status(), max(5, count // 4), warmup=2)
    return {
        "submit": percentile([r.submit_s for r in runs], 50) * MS,
        "e2e": percentile([r.wall_s for r in runs], 50) * MS,
        "claim": percentile(claims, 50) * MS,
        "metrics": percentile(scrapes, 50) * MS,
    }


def grow(ctx: Context, finished: int, queued: int) -> float:
    """Add ``finished`` succeeded jobs (two events each) and ``queued`` queued ones of another tenant,
    published far ahead so that the reaper leaves them alone; the seconds it took."""
    start = time.monotonic()
    tenant = ctx.stack.db.keys.ensure_tenant("bench-backlog")
    now = utcnow()
    later = now + timedelta(days=365)

    def row(status: str) -> dict:
        return {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant,
            "type": "predict",
            "status": status,
            "spec": {"model": "grown", "inputs": [[0.0]]},
            "priority": 5,
            "attempts": 1 if status == "succeeded" else 0,
            "max_attempts": 3,
            "cancel_requested": False,
            "revision": 2,
            "created_at": now,
            "updated_at": now,
            "published_at": later if status == "queued" else now,
            "started_at": now if status == "succeeded" else None,
            "finished_at": now if status == "succeeded" else None,
            "result": {"outputs": [[0.0]]} if status == "succeeded" else None,
        }

    with ctx.stack.db.engine.begin() as conn:
        for status, total in (("succeeded", finished), ("queued", queued)):
            for first in range(0, total, CHUNK):
                rows = [row(status) for _ in range(min(CHUNK, total - first))]
                conn.execute(insert(Job), rows)
                events = [{"job_id": r["id"], "kind": "state", "to_status": "queued", "created_at": now} for r in rows]
                if status == "succeeded":
                    events += [
                        {"job_id": r["id"], "kind": "state", "to_status": "succeeded", "created_at": now} for r in rows
                    ]
                conn.execute(insert(JobEvent), events)
        # The running totals the job store would have kept for them (/metrics reads these, not the rows).
        count_moves(conn, [("predict", "queued", queued)])
        count_finished_many(conn, [("predict", "succeeded", now, now)] * finished)
    return time.monotonic() - start


def grown_database(ctx: Context, run: int) -> list[Measurement]:
    """Each step's p50 on the database grown by ``grown_finished`` + ``grown_queued`` jobs, against the same
    steps just before the growth (run this group last: the growth stays)."""
    sizes = ctx.sizes
    claim_tenant = ctx.stack.db.keys.ensure_tenant("bench-claims")
    before = _phase(ctx, claim_tenant)
    took = grow(ctx, sizes.grown_finished, sizes.grown_queued)
    ctx.say(f"  added {sizes.grown_finished} finished and {sizes.grown_queued} queued jobs in {took:.0f} s")
    after = _phase(ctx, claim_tenant)
    details = {"finished_jobs_added": float(sizes.grown_finished), "queued_jobs_added": float(sizes.grown_queued)}
    return [
        Measurement(f"grown_{step}_p50", after[step], before[step], details)
        for step in ("submit", "claim", "e2e", "metrics")
    ]
