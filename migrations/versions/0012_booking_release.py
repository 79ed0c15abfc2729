"""Booking release after power-on (issue 15 item 1; R2.3).

A booking is released once: by cancelling, by a load reading of its transformer read at least
``booking_release.reading_after_days`` after power-on, or by the periodic job ``booking_release``
``booking_release.timeout_days`` after power-on (``app.lifecycle.releases``). The release clears
``reserved_kva`` / ``reserved_transformer_asset_id`` (so ``transformers.reserved_kva`` stays the sum of open
bookings, as the import's ``_sync_reserved_kva`` computes it) and keeps what was released here:

* ``applications.booking_released_at``: when (server time);
* ``applications.booking_release_reason``: ``cancelled``, ``reading_after_power_on`` or ``timeout_after_power_on``;
* ``applications.booking_released_kva`` / ``booking_released_transformer_asset_id``: the booking given back;
* ``applications.booking_release_reading_at``: the ``read_at`` of the reading that released it.

Applications cancelled before this revision keep NULL (nothing is back-filled).

Revision ID: 0012_booking_release
Revises: 0011_report_data
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_booking_release"
down_revision: str | Sequence[str] | None = "0011_report_data"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("booking_released_at", "booking_release_reason", "booking_released_kva",
            "booking_released_transformer_asset_id", "booking_release_reading_at")


def upgrade() -> None:
    """Add the release columns (plain ADD COLUMN on both databases: no table copy)."""
    op.add_column("applications", sa.Column("booking_released_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("applications", sa.Column("booking_release_reason", sa.String(32), nullable=True))
    op.add_column("applications", sa.Column("booking_released_kva", sa.Float(), nullable=True))
    op.add_column("applications", sa.Column("booking_released_transformer_asset_id", sa.String(64), nullable=True))
    op.add_column("applications", sa.Column("booking_release_reading_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the release columns.

    On SQLite with SQLite's own ``DROP COLUMN`` (3.35+): a batch copy of ``applications`` would drop the table,
    and the ``ON DELETE CASCADE`` foreign keys of its steps and documents would take them with it.
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in reversed(_COLUMNS):
        if sqlite:
            op.execute(f"ALTER TABLE applications DROP COLUMN {name}")
        else:
            op.drop_column("applications", name)
