"""A capacity booking made "by another worker": written straight to the database and logged (R2.3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from app.network.generations import record_capacity_changes


@contextmanager
def booked_to_the_limit(engine: Engine, asset_id: str) -> Iterator[None]:
    """Book the transformer up to 80 % of its rating (no room left) for the block, then restore its booking.

    Committed and logged in ``capacity_changes`` as a booking is, so every worker applies it on its next check.
    """
    with engine.begin() as conn:
        rated, peak, reserved = conn.execute(text(
            "SELECT rated_kva, peak_kva, reserved_kva FROM transformers WHERE asset_id = :a"), {"a": asset_id}).one()
        conn.execute(text("UPDATE transformers SET reserved_kva = :r WHERE asset_id = :a"),
                     {"r": rated * 0.8 - peak, "a": asset_id})
        record_capacity_changes(conn, {asset_id: rated * 0.8 - peak})
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE transformers SET reserved_kva = :r WHERE asset_id = :a"),
                         {"r": reserved, "a": asset_id})
            record_capacity_changes(conn, {asset_id: reserved})
