"""Many concurrent long-polls on one API process: how soon each wakes after its job's change, the process's
memory per waiter, and ``/healthz`` latency meanwhile, against the same process with no waits."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.measure import percentile
from bench.services import Gunicorn
from db.newjob import NewJob
from tensorq.core.settings import Settings
from tensorq.localstack import settings_env

MS = 1e3
KiB = 1024
HEALTH_EVERY_S = 0.02
WAIT_S = 120  # the figure's API honours it (max_wait_s): every wait outlasts the changes of all
CHANGE_EVERY_S = 0.01


def one_process_api(settings: Settings, folder: Path, name: str = "api-waits") -> Gunicorn:
    """``tensorq api`` with one gunicorn worker process (the figure is per process)."""
    return Gunicorn(
        name,
        lambda port: [sys.executable, "-m", "tensorq.cli", "api", "--port", str(port), "--workers", "1"],
        folder / f"{name}.log",
        settings_env(settings),
    )


def rss_bytes(pid: int) -> int:
    """VmRSS of one process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KiB
    raise RuntimeError("no VmRSS line")


def worker_pid(master: int) -> int:
    """The one gunicorn worker process under ``master``."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return int(children[0])


@dataclass
class WaitRun:
    """What one run of ``hold_waits`` saw."""

    wake_s: list[float] = field(default_factory=list)  # change committed -> its waiter's answer
    refused: int = 0
    failed: int = 0  # connections that broke before an answer
    health_idle_s: list[float] = field(default_factory=list)
    health_loaded_s: list[float] = field(default_factory=list)
    rss_before: int = 0
    rss_held: int = 0


def _health_loop(url: str, stop: threading.Event, into: list[float]) -> None:
    """GET /healthz every HEALTH_EVERY_S until ``stop`` (a thread of its own, a client of its own)."""
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(f"{url}/healthz").raise_for_status()
            into.append(time.perf_counter() - started)
            stop.wait(HEALTH_EVERY_S)


@contextmanager
def _probing(url: str, into: list[float]) -> Iterator[None]:
    """Probe /healthz for the block."""
    stop = threading.Event()
    probe = threading.Thread(target=_health_loop, args=(url, stop, into), daemon=True)
    probe.start()
    try:
        yield
    finally:
        stop.set()
        probe.join()


async def _hold(  # noqa: PLR0913 - one run's inputs
    url: str, key: str, job_ids: list[str], change: Callable[[str], None], pid: int, run: WaitRun, pause_s: float
) -> None:
    limits = httpx.Limits(max_connections=len(job_ids) + 10, max_keepalive_connections=len(job_ids) + 10)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(limits=limits, timeout=WAIT_S + 30, headers=headers) as client:
        with _probing(url, run.health_idle_s):
            await asyncio.sleep(2.0)
        run.rss_before = rss_bytes(pid)
        answered: dict[str, float] = {}

        async def wait(job_id: str) -> None:
            try:
                response = await client.get(f"{url}/v1/jobs/{job_id}", params={"wait": WAIT_S, "until": "finished"})
            except httpx.TransportError:
                run.failed += 1  # counted, not hidden: the figure's details say how many
                return
            if response.status_code == 429:
                run.refused += 1
            answered[job_id] = time.perf_counter()

        waits = [asyncio.create_task(wait(job_id)) for job_id in job_ids]
        with _probing(url, run.health_loaded_s):
            await asyncio.sleep(3.0 + len(job_ids) / 200)  # every wait sent and parked
            run.rss_held = rss_bytes(pid)
            changed: dict[str, float] = {}
            for job_id in job_ids:
                await asyncio.to_thread(change, job_id)
                changed[job_id] = time.perf_counter()
                await asyncio.sleep(pause_s)
            await asyncio.gather(*waits)
        run.wake_s = [answered[j] - changed[j] for j in job_ids if j in answered and answered[j] >= changed[j] - 1]


def hold_waits(
    api: Gunicorn, key: str, job_ids: list[str], change: Callable[[str], None], pause_s: float = CHANGE_EVERY_S
) -> WaitRun:
    """Open a ``?wait=`` long-poll on each job at once, then ``change`` the jobs one by one, ``pause_s`` apart (the
    API must honour waits of ``WAIT_S``: set its ``max_wait_s``)."""
    run = WaitRun()
    asyncio.run(_hold(api.url, key, job_ids, change, worker_pid(api.pid), run, pause_s))
    return run


def queued_jobs(db, tenant_id: str, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """``count`` queued jobs of the tenant, recorded as published but never sent (the outbox leaves them alone for
    ``publish_grace_s``; no worker hears of them)."""
    spec = {"model": "bench-none", "inputs": [[0.0]]}
    return [db.jobs.submit(NewJob(tenant_id, "predict", spec), publishing=True).job.id for _ in range(count)]


def summary(run: WaitRun, count: int) -> dict[str, float]:
    """The figures of one run, in ms and KiB."""
    return {
        "waiters": float(count),
        "refused": float(run.refused),
        "failed": float(run.failed),
        "woken": float(len(run.wake_s)),
        "wake_p50_ms": percentile(run.wake_s, 50) * MS,
        "wake_p99_ms": percentile(run.wake_s, 99) * MS,
        "healthz_idle_p99_ms": percentile(run.health_idle_s, 99) * MS,
        "healthz_held_p99_ms": percentile(run.health_loaded_s, 99) * MS,
        "healthz_held_max_ms": max(run.health_loaded_s, default=float("nan")) * MS,
        "rss_before_mib": run.rss_before / KiB / KiB,
        "rss_held_mib": run.rss_held / KiB / KiB,
        "kib_per_waiter": (run.rss_held - run.rss_before) / KiB / max(count, 1),
        "cpus": float(os.cpu_count() or 1),
    }


def one_at_a_time(url: str, key: str, job_ids: list[str], change: Callable[[str], None]) -> list[float]:
    """Change -> answer of one long-poll at a time: the baseline of the same API with a single waiter."""
    wakes = []
    with httpx.Client(timeout=WAIT_S + 30, headers={"Authorization": f"Bearer {key}"}) as client:
        for job_id in job_ids:
            answered: list[float] = []

            def wait(job_id: str = job_id, answered: list[float] = answered) -> None:
                client.get(f"{url}/v1/jobs/{job_id}", params={"wait": WAIT_S, "until": "finished"})
                answered.append(time.perf_counter())

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.3)  # the wait is parked
            change(job_id)
            changed = time.perf_counter()
            waiter.join()
            wakes.append(answered[0] - changed)
    return wakes


def concurrent_waits(ctx, run: int) -> list:  # type: ignore[no-untyped-def]
    """The ``waits`` figures: ``sizes.waiters`` long-polls held by one API process, against one at a time."""
    from bench.specs import Measurement

    stack, count = ctx.stack, ctx.sizes.waiters
    slots = count + 64
    settings = stack.settings.model_copy(
        update={"max_wait_s": WAIT_S, "max_waits_per_tenant": slots, "max_waits": slots}
    )
    api = one_process_api(settings, stack.folder, name=f"api-waits-{run}").start("/readyz")
    change = lambda job_id: stack.db.jobs.cancel(stack.tenant_id, job_id)  # noqa: E731 - a committed change
    try:
        with stack.worker.paused():  # nothing else moves the jobs
            single = one_at_a_time(api.url, stack.key, queued_jobs(stack.db, stack.tenant_id, 20), change)
            held = hold_waits(api, stack.key, queued_jobs(stack.db, stack.tenant_id, count), change)
    finally:
        api.stop()
    details = summary(held, count)
    ctx.say(f"  {count} waits: " + ", ".join(f"{k} {v:.1f}" for k, v in details.items()))
    return [
        Measurement("waits_wake_p50", details["wake_p50_ms"], percentile(single, 50) * MS, details),
        Measurement("waits_wake_p99", details["wake_p99_ms"], percentile(single, 99) * MS, details),
        Measurement("waits_healthz_p99", details["healthz_held_p99_ms"], details["healthz_idle_p99_ms"], details),
        Measurement("waits_rss", details["rss_held_mib"], details["rss_before_mib"], details),
    ]
