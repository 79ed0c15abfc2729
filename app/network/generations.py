"""The generation counters that tell every worker what changed in the network, and the capacity-change log.

``asset_generations`` holds ``generation`` (moves on every change of assets or loads: capacity and map
snapshots are rebuilt) and ``network_generation`` (moves when the network layers themselves change: the
siting snapshot is rebuilt), plus ``capacity_seq``, the last entry of ``capacity_changes`` — bookings and
releases that workers apply to their snapshot without re-reading the network. Written by importers and
bookings, read by the siting engine, designs, capacity and map snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import Connection, func, insert, select, update

from app.platform import models


def bump_generation(conn: Connection) -> None:
    """Advance the asset generation so every worker rebuilds its index (same transaction)."""
    row = models.AssetGeneration
    conn.execute(update(row).where(row.id == 1).values(generation=row.generation + 1,
                                                       network_generation=row.network_generation + 1))


class NetworkVersion(NamedTuple):
    """The counters of ``asset_generation`` (see :class:`app.platform.models.AssetGeneration`)."""

    generation: int
    network_generation: int
    capacity_seq: int


_NETWORK_VERSION = select(models.AssetGeneration.generation, models.AssetGeneration.network_generation,
                          models.AssetGeneration.capacity_seq).where(models.AssetGeneration.id == 1)


def network_version(conn: Connection) -> NetworkVersion:
    """Read the counters in one primary-key lookup (the statement is built once: this runs on every design)."""
    found = conn.execute(_NETWORK_VERSION).one()
    return NetworkVersion(int(found[0]), int(found[1]), int(found[2]))


def record_capacity_changes(conn: Connection, reserved_kva_by_transformer: Mapping[str, float]) -> None:
    """Log transformers' new ``reserved_kva`` (bookings) and advance the counters, in the caller's transaction.

    The UPDATE of the one counter row takes its row lock until commit, so on PostgreSQL bookings
    commit in ``seq`` order and a reader that sees ``capacity_seq = n`` sees every change up to ``n``.
    Call it as the last statement before commit, to hold that lock briefly.
    """
    if not reserved_kva_by_transformer:
        return
    row = models.AssetGeneration
    last = int(conn.execute(
        update(row).where(row.id == 1)
        .values(generation=row.generation + 1, capacity_seq=row.capacity_seq + len(reserved_kva_by_transformer))
        .returning(row.capacity_seq)).scalar_one())
    first = last - len(reserved_kva_by_transformer) + 1
    conn.execute(insert(models.CapacityChange), [
        {"seq": first + i, "transformer_asset_id": asset_id, "reserved_kva": float(kva)}
        for i, (asset_id, kva) in enumerate(sorted(reserved_kva_by_transformer.items()))])


def capacity_changes_since(conn: Connection, capacity_seq: int) -> list[tuple[int, str, float]]:
    """``(seq, transformer_asset_id, reserved_kva)`` logged after ``capacity_seq``, in order."""
    change = models.CapacityChange
    return [(int(seq), str(asset_id), float(kva)) for seq, asset_id, kva in conn.execute(
        select(change.seq, change.transformer_asset_id, change.reserved_kva)
        .where(change.seq > capacity_seq).order_by(change.seq))]


def asset_counts(conn: Connection) -> dict[str, int]:
    """Return the number of rows of every asset table."""
    return {name: conn.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in models.ASSET_TABLES.items()}
