"""Record which worker process holds an import job, so a job whose worker died can be marked failed.

Revision ID: 0008_import_holder
Revises: 0007_capacity_changes
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_import_holder"
down_revision: str | Sequence[str] | None = "0007_capacity_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``import_jobs.holder`` (``host:pid`` of the worker that queued and runs the job)."""
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("holder", sa.String(200), nullable=True))


def downgrade() -> None:
    """Drop ``import_jobs.holder``."""
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("holder")
