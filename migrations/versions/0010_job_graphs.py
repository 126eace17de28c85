"""job graphs: a job's parent_id, and on a parent the running totals of its children and its failure policy

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COUNTS = (
    "children_total",
    "children_running",
    "children_succeeded",
    "children_failed",
    "children_cancelled",
    "max_failed_children",
)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        for name in COUNTS:
            batch.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    op.create_index("ix_jobs_parent_created", "jobs", ["parent_id", "created_at"])
    op.create_index("ix_jobs_parent_status", "jobs", ["parent_id", "status"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_jobs_parent_status", table_name="jobs")
    op.drop_index("ix_jobs_parent_created", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for name in reversed(COUNTS):
            batch.drop_column(name)
        batch.drop_column("parent_id")
