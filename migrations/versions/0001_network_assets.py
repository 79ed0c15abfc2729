"""Network assets: grid areas, transformers, LV lines, access points, roads, no-overhead zones.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import alembic_helpers  # noqa: F401  (registers op.create_geospatial_table)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _geom(geometry_type: str) -> geoalchemy2.Geometry:
    return geoalchemy2.Geometry(geometry_type=geometry_type, srid=4326, spatial_index=True)


def upgrade() -> None:
    """Create the network asset tables with spatial indexes and the generation counter."""
    op.create_geospatial_table(
        "grid_areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("area_type", sa.String(16), nullable=False),
        sa.Column("customer_manager", sa.String(100), nullable=True),
        sa.Column("project_manager", sa.String(100), nullable=True),
        sa.Column("geom", _geom("MULTIPOLYGON"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_grid_areas"),
        sa.UniqueConstraint("code", name="uq_grid_areas_code"),
    )
    op.create_geospatial_table(
        "transformers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rated_kva", sa.Float(), nullable=False),
        sa.Column("peak_kva", sa.Float(), nullable=False),
        sa.Column("peak_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reserved_kva", sa.Float(), nullable=False),
        sa.Column("grid_area_code", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("geom", _geom("POINT"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transformers"),
        sa.UniqueConstraint("asset_id", name="uq_transformers_asset_id"),
    )
    op.create_index("ix_transformers_grid_area_code", "transformers", ["grid_area_code"])
    op.create_geospatial_table(
        "lv_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("transformer_asset_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("conductor_type", sa.String(64), nullable=True),
        sa.Column("geom", _geom("LINESTRING"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lv_lines"),
        sa.UniqueConstraint("asset_id", name="uq_lv_lines_asset_id"),
    )
    op.create_index("ix_lv_lines_transformer_asset_id", "lv_lines", ["transformer_asset_id"])
    op.create_geospatial_table(
        "access_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("transformer_asset_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("geom", _geom("POINT"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_points"),
        sa.UniqueConstraint("asset_id", name="uq_access_points_asset_id"),
    )
    op.create_index("ix_access_points_transformer_asset_id", "access_points", ["transformer_asset_id"])
    op.create_geospatial_table(
        "roads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("road_class", sa.String(16), nullable=False),
        sa.Column("width_m", sa.Float(), nullable=True),
        sa.Column("geom", _geom("LINESTRING"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roads"),
        sa.UniqueConstraint("asset_id", name="uq_roads_asset_id"),
    )
    op.create_geospatial_table(
        "no_overhead_zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("geom", _geom("MULTIPOLYGON"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_no_overhead_zones"),
        sa.UniqueConstraint("asset_id", name="uq_no_overhead_zones_asset_id"),
    )
    op.create_table(
        "asset_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_asset_generation"),
    )
    op.execute("INSERT INTO asset_generation (id, generation) VALUES (1, 0)")


def downgrade() -> None:
    """Drop the network asset tables."""
    op.drop_table("asset_generation")
    for table in ("no_overhead_zones", "roads", "access_points", "lv_lines", "transformers", "grid_areas"):
        op.drop_geospatial_table(table)
