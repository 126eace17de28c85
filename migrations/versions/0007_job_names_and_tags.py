"""job names and tags: a caller's label and filterable tags on each job

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))
    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_tags_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "tag", name=op.f("pk_job_tags")),
    )
    op.create_index("ix_job_tags_tag_job", "job_tags", ["tag", "job_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_job_tags_tag_job", table_name="job_tags")
    op.drop_table("job_tags")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("tags")
        batch.drop_column("name")
