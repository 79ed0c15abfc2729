"""Load readings join the change log, so a readings import no longer makes every worker re-read the network.

Revision ID: 0010_load_changes
Revises: 0009_login_throttle
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_load_changes"
down_revision: str | Sequence[str] | None = "0009_login_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``capacity_changes.peak_kva`` and let a change carry either figure (the other is NULL: unchanged)."""
    with op.batch_alter_table("capacity_changes") as batch:
        batch.add_column(sa.Column("peak_kva", sa.Float(), nullable=True))
        batch.alter_column("reserved_kva", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    """Drop the load changes (a worker that reads an older log then rebuilds from the network as before)."""
    op.execute("DELETE FROM capacity_changes WHERE reserved_kva IS NULL")
    with op.batch_alter_table("capacity_changes") as batch:
        batch.alter_column("reserved_kva", existing_type=sa.Float(), nullable=False)
        batch.drop_column("peak_kva")
