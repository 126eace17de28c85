"""worker_drains: worker hosts told to take no new job before the autoscaler stops them (issue 23)

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
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


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("worker_drains")
