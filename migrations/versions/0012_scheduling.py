"""scheduling: worker_drains (hosts told to take no new job), fair_turns (fair share), recent run times (issue 23)

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "worker_drains",
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_worker_drains")),
    )
    op.create_table(
        "fair_turns",
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("pass_value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "tenant_id", name=op.f("pk_fair_turns")),
    )
    # Recent run times of a job type (the expected start of a queued job): the latest successes first.
    where = sa.text("status = 'succeeded'")
    op.create_index(
        "ix_jobs_succeeded_type_finished",
        "jobs",
        ["type", "finished_at"],
        unique=False,
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_jobs_succeeded_type_finished", table_name="jobs")
    op.drop_table("fair_turns")
    op.drop_table("worker_drains")
