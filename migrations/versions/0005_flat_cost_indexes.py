"""flat cost as jobs grow: partial status indexes, a type listing index, finished-job totals

The full ``(status, published_at)`` index let the planner reach a job by its status instead of its
primary key when its statistics were stale (50,000 queued jobs made each claim 70 ms); status-led
indexes are now partial (queued or running jobs only), so their size is the backlog. ``job_totals``
holds the finished jobs per type, outcome and run-time bucket, kept up as jobs finish, so ``/metrics``
never groups the jobs table; it starts from the jobs already finished.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The histogram bounds of db/jobstats.py when this revision was written (the backfill's buckets).
BOUNDS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


def _partial(name: str, column: str, status: str, *more: str) -> None:
    where = sa.text(f"status = '{status}'")
    op.create_index(name, "jobs", [column, *more], unique=False, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_published")
    op.create_index("ix_jobs_tenant_type_created", "jobs", ["tenant_id", "type", "created_at"], unique=False)
    _partial("ix_jobs_queued_type_created", "type", "queued", "created_at")
    _partial("ix_jobs_queued_published", "published_at", "queued")
    _partial("ix_jobs_running_lease", "lease_expires_at", "running")
    op.create_table(
        "job_totals",
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("type", "status", "bucket", name=op.f("pk_job_totals")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        seconds = "(julianday(finished_at) - julianday(started_at)) * 86400.0"
    else:
        seconds = "EXTRACT(EPOCH FROM finished_at - started_at)::float"
    whens = " ".join(f"WHEN {seconds} <= {bound} THEN {i}" for i, bound in enumerate(BOUNDS))
    bucket = f"CASE WHEN started_at IS NULL OR finished_at IS NULL THEN -1 {whens} ELSE {len(BOUNDS)} END"
    total = f"CASE WHEN started_at IS NULL OR finished_at IS NULL THEN 0 ELSE {seconds} END"
    bind.execute(
        sa.text(
            f"INSERT INTO job_totals (type, status, bucket, jobs, seconds) "
            f"SELECT type, status, {bucket}, count(*), sum(CASE WHEN {total} < 0 THEN 0 ELSE {total} END) "
            f"FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY 1, 2, 3"
        )
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("job_totals")
    for name in ("ix_jobs_running_lease", "ix_jobs_queued_published", "ix_jobs_queued_type_created"):
        op.drop_index(name, table_name="jobs")
    op.drop_index("ix_jobs_tenant_type_created", table_name="jobs")
    op.create_index("ix_jobs_status_published", "jobs", ["status", "published_at"], unique=False)
