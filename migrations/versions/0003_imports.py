"""Load readings and GIS import jobs (issue 7).

Revision ID: 0003_imports
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_imports"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the load_readings and import_jobs tables."""
    op.create_table(
        "load_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transformer_asset_id", sa.String(64), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peak_kva", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_load_readings"),
        sa.UniqueConstraint("transformer_asset_id", "read_at", name="uq_load_readings_transformer_asset_id_read_at"),
    )
    op.create_index("ix_load_readings_transformer_asset_id", "load_readings", ["transformer_asset_id"])
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("layer", sa.String(32), nullable=False),
        sa.Column("source_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress_pct", sa.Float(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_import_jobs"),
    )
    op.create_index("ix_import_jobs_status", "import_jobs", ["status"])


def downgrade() -> None:
    """Drop the import_jobs and load_readings tables."""
    op.drop_index("ix_import_jobs_status", table_name="import_jobs")
    op.drop_table("import_jobs")
    op.drop_index("ix_load_readings_transformer_asset_id", table_name="load_readings")
    op.drop_table("load_readings")
