"""index jobs by tenant and status

The quota counts (queued jobs on every submit, running jobs on every claim) read one tenant's jobs
in one status; without this index they walked the tenant's whole history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_jobs_tenant_status", "jobs", ["tenant_id", "status"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_jobs_tenant_status", table_name="jobs")
