"""Capacity bookings as an ordered change log, so workers apply them without rebuilding the network.

Revision ID: 0007_capacity_changes
Revises: 0006_applications
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_capacity_changes"
down_revision: str | Sequence[str] | None = "0006_applications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``asset_generation.network_generation`` and ``.capacity_seq``, and the ``capacity_changes`` log."""
    with op.batch_alter_table("asset_generation") as batch:
        batch.add_column(sa.Column("network_generation", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("capacity_seq", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE asset_generation SET network_generation = generation")
    op.create_table(
        "capacity_changes",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("transformer_asset_id", sa.String(64), nullable=False),
        sa.Column("reserved_kva", sa.Float(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_capacity_changes")),
    )


def downgrade() -> None:
    """Drop the log and the counter."""
    op.drop_table("capacity_changes")
    with op.batch_alter_table("asset_generation") as batch:
        batch.drop_column("capacity_seq")
        batch.drop_column("network_generation")
