"""The data the accountability reports need (issue 14 deliverable 1; R8.1, CQ-32 annexes 1-2).

Each value is captured when it happens, at the server's time; nothing is back-filled: applications accepted
before this revision keep NULL account number, channel, business type and start of construction (the
reports show those cells empty), and ``customer_charged_cny`` is 0 as for every new application.

* ``applications.account_number`` (户号): given with the power-on stage report (装表接电), required there;
* ``applications.channel`` (申请方式): ``app`` / ``government_platform`` / ``counter``, at intake;
* ``applications.business_type`` (业务类型): ``new`` (新装) / ``capacity_increase`` (增容), at intake;
* ``applications.construction_started_at`` (工程实施时间): the terminal's construction-start call, server time;
* ``applications.customer_charged_cny``: what the customer paid outside the red line (target 0), at power-on;
* ``grid_areas.supply_company`` / ``supply_station`` / ``admin_region`` (供电单位 / 供电所 / 服务片区（行政区域）),
  imported with the grid_areas layer.

Revision ID: 0011_report_data
Revises: 0010_load_changes
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_report_data"
down_revision: str | Sequence[str] | None = "0010_load_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPLICATION_COLUMNS = ("account_number", "channel", "business_type", "construction_started_at",
                        "customer_charged_cny")
_GRID_AREA_COLUMNS = ("supply_company", "supply_station", "admin_region")


def upgrade() -> None:
    """Add the report columns (plain ADD COLUMN on both databases: no table copy)."""
    op.add_column("applications", sa.Column("account_number", sa.String(32), nullable=True))
    op.add_column("applications", sa.Column("channel", sa.String(24), nullable=True))
    op.add_column("applications", sa.Column("business_type", sa.String(24), nullable=True))
    op.add_column("applications", sa.Column("construction_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("applications", sa.Column("customer_charged_cny", sa.Float(), server_default="0", nullable=False))
    op.create_index("ix_applications_contract_accepted_at", "applications", ["contract_accepted_at"])
    for name in _GRID_AREA_COLUMNS:
        op.add_column("grid_areas", sa.Column(name, sa.String(200), nullable=True))


def downgrade() -> None:
    """Drop the report columns.

    On SQLite with SQLite's own ``DROP COLUMN`` (3.35+): a batch copy of ``applications`` would drop the table,
    and the ``ON DELETE CASCADE`` foreign keys of its steps and documents would take them with it.
    """
    op.drop_index("ix_applications_contract_accepted_at", table_name="applications")
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in (("applications", _APPLICATION_COLUMNS), ("grid_areas", _GRID_AREA_COLUMNS)):
        for name in columns:
            if sqlite:
                op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
            else:
                op.drop_column(table, name)
