"""Sign-in throttling shared by the workers, and a token version per user (issue 13 items 7 and 11).

Revision ID: 0009_login_throttle
Revises: 0008_import_holder
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_login_throttle"
down_revision: str | Sequence[str] | None = "0008_import_holder"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``login_throttle`` and add ``users.token_version`` (0: tokens issued before carry no version and
    are refused, so everyone signs in once after the upgrade)."""
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_login_throttle"),
    )
    op.create_index("ix_login_throttle_last_attempt_at", "login_throttle", ["last_attempt_at"])
    op.add_column("users", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    """Drop ``users.token_version`` and ``login_throttle``.

    On SQLite with SQLite's own ``DROP COLUMN`` (3.35+): a batch copy of ``users`` would drop the table, and its
    ``ON DELETE CASCADE`` foreign keys would take every API key with it.
    """
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE users DROP COLUMN token_version")
    else:
        op.drop_column("users", "token_version")
    op.drop_index("ix_login_throttle_last_attempt_at", table_name="login_throttle")
    op.drop_table("login_throttle")
