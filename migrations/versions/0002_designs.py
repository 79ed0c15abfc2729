"""Stored, versioned connection designs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import alembic_helpers  # noqa: F401  (registers op.create_geospatial_table)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the designs table (one row per design version)."""
    op.create_geospatial_table(
        "designs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("design_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("job_class", sa.String(32), nullable=False),
        sa.Column("transformer_asset_id", sa.String(64), nullable=True),
        sa.Column("total_cost_cny", sa.Float(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("meter_box", geoalchemy2.Geometry(geometry_type="POINT", srid=4326, spatial_index=True),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_designs"),
        sa.UniqueConstraint("design_id", "version", name="uq_designs_design_id_version"),
    )
    op.create_index("ix_designs_design_id", "designs", ["design_id"])


def downgrade() -> None:
    """Drop the designs table."""
    op.drop_index("ix_designs_design_id", table_name="designs")
    op.drop_geospatial_table("designs")
