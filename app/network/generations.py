"""The generation counters that tell every worker what changed in the network, and the load-change log.

``asset_generations`` holds ``generation`` (moves on every change of assets or loads: capacity and map
snapshots are rebuilt) and ``network_generation`` (moves when the network layers themselves change: the
siting snapshot is rebuilt), plus ``capacity_seq``, the last entry of ``capacity_changes`` — bookings,
releases and load readings that workers apply to their snapshot without re-reading the network. Written by
importers and bookings, read by the siting engine, designs, capacity and map snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import Connection, func, insert, select, update

from app.platform import models


def bump_generation(conn: Connection, *, network: bool = True) -> None:
    """Advance the asset generation (same transaction): the derived views of every worker are read again.

    ``network`` (an asset layer changed): the network generation moves too, so every worker rebuilds its
    siting snapshot; without it (readings that moved no peak) only the capacity and map views are re-read.
    """
    row = models.AssetGeneration
    values = {"generation": row.generation + 1}
    if network:
        values["network_generation"] = row.network_generation + 1
    conn.execute(update(row).where(row.id == 1).values(values))


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


class LoadChange(NamedTuple):
    """One logged change of a transformer's load: its new ``reserved_kva`` or ``peak_kva`` (``None``: unchanged)."""

    seq: int
    transformer_asset_id: str
    reserved_kva: float | None
    peak_kva: float | None


def record_capacity_changes(conn: Connection, reserved_kva_by_transformer: Mapping[str, float]) -> None:
    """Log transformers' new ``reserved_kva`` (bookings) and advance the counters, in the caller's transaction."""
    _record(conn, {asset_id: (float(kva), None) for asset_id, kva in reserved_kva_by_transformer.items()})


def record_peak_changes(conn: Connection, peak_kva_by_transformer: Mapping[str, float]) -> None:
    """Log transformers' new ``peak_kva`` (load readings) and advance the counters, in the caller's transaction.

    A load reading changes no asset: ``network_generation`` stays, so workers apply the new peaks to the
    snapshot they hold instead of re-reading the network (issue 12).
    """
    _record(conn, {asset_id: (None, float(kva)) for asset_id, kva in peak_kva_by_transformer.items()})


def _record(conn: Connection, changes: Mapping[str, tuple[float | None, float | None]]) -> None:
    """Append ``changes`` (asset id → (reserved_kva, peak_kva)) to the log with the next ``seq`` numbers.

    The UPDATE of the one counter row takes its row lock until commit, so on PostgreSQL changes
    commit in ``seq`` order and a reader that sees ``capacity_seq = n`` sees every change up to ``n``.
    Call it as the last statement before commit, to hold that lock briefly.
    """
    if not changes:
        return
    row = models.AssetGeneration
    last = int(conn.execute(
        update(row).where(row.id == 1)
        .values(generation=row.generation + 1, capacity_seq=row.capacity_seq + len(changes))
        .returning(row.capacity_seq)).scalar_one())
    first = last - len(changes) + 1
    conn.execute(insert(models.CapacityChange), [
        {"seq": first + i, "transformer_asset_id": asset_id, "reserved_kva": reserved, "peak_kva": peak}
        for i, (asset_id, (reserved, peak)) in enumerate(sorted(changes.items()))])


def capacity_changes_since(conn: Connection, capacity_seq: int) -> list[LoadChange]:
    """The load changes (bookings, releases, readings) logged after ``capacity_seq``, in order."""
    change = models.CapacityChange
    return [LoadChange(int(seq), str(asset_id), None if reserved is None else float(reserved),
                       None if peak is None else float(peak))
            for seq, asset_id, reserved, peak in conn.execute(
                select(change.seq, change.transformer_asset_id, change.reserved_kva, change.peak_kva)
                .where(change.seq > capacity_seq).order_by(change.seq))]


def asset_counts(conn: Connection) -> dict[str, int]:
    """Return the number of rows of every asset table."""
    return {name: conn.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in models.ASSET_TABLES.items()}
