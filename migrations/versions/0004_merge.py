"""Merge the auth and import branches into one schema history.

Revision ID: 0004_merge
Revises: 0003_auth, 0003_imports
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004_merge"
down_revision: str | Sequence[str] | None = ("0003_auth", "0003_imports")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: this revision only joins two heads."""


def downgrade() -> None:
    """Nothing to change: this revision only joins two heads."""
