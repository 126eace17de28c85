"""Fair share on a real database: one worker takes deliveries in the broker's order, and each delivery runs the
next job of its queue by tenant turns (weights), then priority, then age."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from db.database import Database
from db.fairshare import unknown_tenants
from db.jobs import NewJob
from tensorq.core.settings import Settings
from worker.context import HandlerResult, JobContext
from worker.runner import JobRunner


def _submit(db: Database, tenant: str, n: int, priority: int = 5) -> list[str]:
    tenant_id = db.keys.ensure_tenant(tenant)
    return [db.jobs.submit(NewJob(tenant_id, "train", {"n": i}, priority=priority)).job.id for i in range(n)]


def _one_worker(settings: Settings, db: Database, deliveries: list[str]) -> list[str]:
    """Deliver each message in turn to one worker; the jobs in the order they started."""
    started: list[str] = []

    def handler(ctx: JobContext) -> HandlerResult:
        started.append(ctx.job.id)
        return HandlerResult({})

    runner = JobRunner(settings, db, {"train": handler})
    for job_id in deliveries:
        runner.run(job_id)
    return started


@pytest.mark.parametrize("fair", [False, True], ids=["fifo", "fair"])
def test_one_tenants_flood_does_not_hold_back_another_tenants_job(settings: Settings, db: Database, fair: bool) -> None:
    """Tenant A queues 24 jobs, then B one: B starts after at most 2 of A's jobs (FIFO: after all 24)."""
    settings.fair_share_queues = ["train"] if fair else []
    flood = _submit(db, "a", 24)
    [late] = _submit(db, "b", 1)
    started = _one_worker(settings, db, [*flood, late])
    assert sorted(started) == sorted([*flood, late])  # every job ran once
    a_before_b = started.index(late)
    assert a_before_b <= 2 if fair else a_before_b == 24


def test_tenants_take_turns_by_weight(settings: Settings, db: Database) -> None:
    settings.tenant_quotas = {"a": {"weight": 3}}
    a = _submit(db, "a", 12)
    b = _submit(db, "b", 12)
    started = _one_worker(settings, db, [*a, *b])
    first = started[:8]
    assert (sum(j in a for j in first), sum(j in b for j in first)) == (6, 2)
    assert sorted(started) == sorted(a + b)


def test_a_tenant_back_from_idle_gets_its_turn_but_no_credit(settings: Settings, db: Database) -> None:
    """B ran alone for a while; when A arrives, they alternate (B's past turns neither help nor hurt A)."""
    b = _submit(db, "b", 10)
    started = _one_worker(settings, db, b[:5])
    a = _submit(db, "a", 4)
    started = _one_worker(settings, db, [*b[5:], *a])
    assert [j in a for j in started[:8]] in ([True, False] * 4, [False, True] * 4)


def test_a_high_priority_job_behind_20_normal_ones_runs_next(settings: Settings, db: Database) -> None:
    normal = _submit(db, "a", 20)
    [urgent] = _submit(db, "a", 1, priority=0)
    started = _one_worker(settings, db, [*normal, urgent])
    assert started[0] == urgent
    assert started[1:] == normal  # then the rest in age order


def test_a_tenant_at_its_running_quota_is_passed_over(settings: Settings, db: Database) -> None:
    settings.tenant_quotas = {"a": {"quota_running_jobs": 1}}
    a = _submit(db, "a", 2)
    b = _submit(db, "b", 1)
    assert db.jobs.claim(a[0], "elsewhere:1") is not None  # one of A's jobs runs on another worker
    started = _one_worker(settings, db, [a[1]])
    assert started == b


def test_weights_of_zero_or_below_and_unknown_tenants_are_refused(db: Database) -> None:
    with pytest.raises(ValidationError, match="weight of tenant 'acme' must be above 0"):
        Settings(tenant_quotas={"acme": {"weight": 0}})
    db.keys.ensure_tenant("acme")
    assert unknown_tenants(db.factory, ["acme", "acne"]) == ["acne"]
