"""Cost that stays flat as jobs grow: plan shapes on Postgres, bounded counts, finished-job totals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event, text

from db.database import Database
from db.jobs import NewJob
from db.jobstats import job_durations, jobs_by_type_and_status
from db.migrate import upgrade
from db.session import make_engine
from tests.conftest import make_settings


def _grow(engine: Engine, tenant: str, finished: int, queued: int) -> str:
    """Analyze with only finished jobs (stale statistics), then add ``queued`` jobs; one queued id back."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE jobs SET (autovacuum_enabled = false)"))  # the statistics stay stale
        insert = (
            "INSERT INTO jobs (id, tenant_id, type, status, spec, priority, attempts, max_attempts, cancel_requested,"
            " revision, created_at, updated_at, published_at, finished_at) SELECT gen_random_uuid()::text, :t,"
            " 'predict', :status, '{}', 5, 0, 3, false, 0, now(), now(), now(), now() FROM generate_series(1, :n)"
        )
        conn.execute(text(insert), {"t": tenant, "status": "succeeded", "n": finished})
        if finished:
            conn.execute(text("ANALYZE jobs"))
        conn.execute(text(insert), {"t": tenant, "status": "queued", "n": queued})
        return conn.execute(
            text("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at DESC LIMIT 1")
        ).scalar_one()


def _update_plans(db: Database, action: Callable[[], object]) -> list[str]:
    """What Postgres plans for each UPDATE of jobs that ``action`` runs through the store (EXPLAIN, not run)."""
    statements: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE JOBS"):
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    plans = []
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars().all()
            plans.append("\n".join(rows))
    return plans


def test_transitions_reach_their_job_by_primary_key_behind_a_large_stale_backlog(tmp_path, postgres_url: str) -> None:
    upgrade(postgres_url)
    db = Database(make_settings(tmp_path, postgres_url))
    engine = make_engine(postgres_url)
    try:
        tenant = db.keys.ensure_tenant("acme")
        job_id = _grow(engine, tenant, finished=2_000, queued=50_000)
        claim = db.jobs.claim(job_id, "w1")
        assert claim is not None
        token = claim.lease_token
        second = _grow(engine, tenant, finished=0, queued=1)
        plans = _update_plans(
            db,
            lambda: (
                db.jobs.heartbeat(job_id, token),
                db.jobs.report_progress(job_id, token, {"epoch": 1}),
                db.jobs.finish(job_id, token, {}),
                db.jobs.claim(second, "w2", running_limit=lambda _: 8),
                db.jobs.cancel(tenant, second),
            ),
        )
        assert len(plans) >= 5
        for plan in plans:
            assert "Index Scan using pk_jobs" in plan, plan
            assert "ix_jobs_" not in plan, plan
        with engine.connect() as conn:
            listing = (
                conn.execute(
                    text(
                        "EXPLAIN SELECT id FROM jobs WHERE tenant_id = :t AND type = 'train' ORDER BY created_at DESC"
                    ),
                    {"t": tenant},
                )
                .scalars()
                .all()
            )
        assert "ix_jobs_tenant_type_created" in "\n".join(listing), listing
        # Quota counts stop at the limit instead of walking the backlog.
        assert db.jobs.count_queued(tenant, at_most=1000) == 1000
        assert db.jobs.count_queued(tenant) == 49_999  # one finished, the other one claimed
    finally:
        engine.dispose()
        db.dispose()


def test_finished_totals_count_every_terminal_transition_once(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    ids = [db.jobs.submit(NewJob(tenant, "predict", {})).job.id for _ in range(4)]
    claims = [db.jobs.claim(job_id, "w1") for job_id in ids[:3]]
    assert db.jobs.finish(ids[0], claims[0].lease_token, {})
    assert not db.jobs.finish(ids[0], claims[0].lease_token, {})  # a second finish loses and counts nothing
    assert db.jobs.fail(ids[1], claims[1].lease_token, {"code": "bad", "message": "bad"})
    db.jobs.cancel(tenant, ids[2])
    assert db.jobs.mark_cancelled(ids[2], claims[2].lease_token)
    db.jobs.cancel(tenant, ids[3])
    counts = jobs_by_type_and_status(db.factory)
    assert counts == {("predict", "succeeded"): 1, ("predict", "failed"): 1, ("predict", "cancelled"): 2}
    ran = {(h.job_type, h.outcome): h.count for h in job_durations(db.factory)}
    assert ran == {("predict", "succeeded"): 1, ("predict", "failed"): 1, ("predict", "cancelled"): 1}


def test_the_migration_counts_the_jobs_already_finished(tmp_path, database_url: str) -> None:
    upgrade(database_url, "0004")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'acme', CURRENT_TIMESTAMP)"))
        for i, (status, started) in enumerate((("succeeded", True), ("succeeded", True), ("cancelled", False))):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, tenant_id, type, status, spec, priority, attempts, max_attempts,"
                    " cancel_requested, revision, created_at, updated_at, started_at, finished_at)"
                    " VALUES (:id, 't1', 'train', :status, '{}', 5, 1, 3, false, 0, :now, :now, :started, :now)"
                ),
                {
                    "id": f"j{i}",
                    "status": status,
                    "now": "2026-11-29 10:00:02",
                    "started": "2026-11-29 10:00:00" if started else None,
                },
            )
    engine.dispose()
    upgrade(database_url)
    db = Database(make_settings(tmp_path, database_url))
    try:
        assert jobs_by_type_and_status(db.factory) == {("train", "succeeded"): 2, ("train", "cancelled"): 1}
        (train,) = job_durations(db.factory)
        assert train.count == 2
        assert abs(train.total_s - 4.0) < 0.01
        assert dict(train.buckets)[1] == 0
        assert dict(train.buckets)[5] == 2
    finally:
        db.dispose()
