"""Capacity snapshot: transformer loads from the database through the load model, per asset generation (R2.3, R6).

Read once per ``asset_generation`` and shared by the worklists, the OGC API collections, the vector
tiles, the planner map and the public disclosure, so all of them show the same figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, func, select

from app.network.generations import network_version
from app.platform.models import GridArea, LoadReading, Transformer
from design_rules.capacity import AreaCapacity, LoadTable, area_capacity, load_table
from design_rules.profiles import LoadThresholds

__all__ = [
    "CapacitySnapshot",
    "GridAreaRow",
    "SnapshotCache",
    "TransformerLoads",
    "read_asset_generation",
    "read_capacity",
    "read_transformer_loads",
]

ObjectArray = npt.NDArray[np.object_]
FloatArray = npt.NDArray[np.float64]
IN_SERVICE = "in_service"
T = TypeVar("T")


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for DateTime(timezone=True); Sanling stores UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TransformerLoads:
    """Every transformer row with its latest peak, as parallel arrays ordered by ``asset_id``.

    ``peak_kva``/``peak_at`` are the latest of the transformer's own columns and its newest
    ``load_readings`` row; ``peak_source`` says which one (``reading`` or ``transformer``).
    """

    row_id: npt.NDArray[np.int64]
    asset_id: ObjectArray
    name: ObjectArray
    rated_kva: FloatArray
    peak_kva: FloatArray
    peak_at: ObjectArray
    peak_source: ObjectArray
    reserved_kva: FloatArray
    grid_area_code: ObjectArray
    status: ObjectArray
    lon_wgs84: FloatArray
    lat_wgs84: FloatArray

    def __len__(self) -> int:
        return int(self.asset_id.shape[0])


def read_transformer_loads(conn: Connection) -> TransformerLoads:
    """Read all transformers and pick each one's latest peak (load_readings when newer; R6.1).

    The importer already moves ``transformers.peak_kva``/``peak_at`` to the latest reading (docs/import.md);
    reading the history here as well keeps the figures right when the two were written by other means.
    A reading wins when the transformer has no ``peak_at`` or the reading is at least as recent.
    """
    latest = select(LoadReading.transformer_asset_id, func.max(LoadReading.read_at).label("read_at")).group_by(
        LoadReading.transformer_asset_id).subquery()
    readings = {
        asset_id: (peak, _aware(read_at))
        for asset_id, peak, read_at in conn.execute(
            select(LoadReading.transformer_asset_id, LoadReading.peak_kva, LoadReading.read_at).join(
                latest, (latest.c.transformer_asset_id == LoadReading.transformer_asset_id)
                & (latest.c.read_at == LoadReading.read_at)))
    }
    rows = conn.execute(select(
        Transformer.id, Transformer.asset_id, Transformer.name, Transformer.rated_kva, Transformer.peak_kva,
        Transformer.peak_at, Transformer.reserved_kva, Transformer.grid_area_code, Transformer.status,
        func.ST_X(Transformer.geom), func.ST_Y(Transformer.geom),
    ).order_by(Transformer.asset_id)).all()
    peaks: list[float] = []
    peak_at: list[datetime | None] = []
    sources: list[str] = []
    for row in rows:
        own_at = _aware(row[5])
        reading = readings.get(row[1])
        if reading is not None and (own_at is None or (reading[1] is not None and reading[1] >= own_at)):
            peaks.append(float(reading[0]))
            peak_at.append(reading[1])
            sources.append("reading")
        else:
            peaks.append(float(row[4] or 0.0))
            peak_at.append(own_at)
            sources.append("transformer")

    def column(index: int, dtype: object = object) -> npt.NDArray[np.generic]:
        return np.array([row[index] for row in rows], dtype=dtype)

    return TransformerLoads(
        row_id=column(0, np.int64), asset_id=column(1), name=column(2), rated_kva=column(3, np.float64),
        peak_kva=np.array(peaks, dtype=np.float64), peak_at=np.array(peak_at, dtype=object),
        peak_source=np.array(sources, dtype=object),
        reserved_kva=np.array([float(row[6] or 0.0) for row in rows], dtype=np.float64),
        grid_area_code=column(7), status=column(8), lon_wgs84=column(9, np.float64), lat_wgs84=column(10, np.float64),
    )


@dataclass(frozen=True, slots=True)
class GridAreaRow:
    """A grid area (网格) with its "1+1" team and its capacity figures."""

    row_id: int
    code: str
    name: str
    area_type: str
    customer_manager: str | None
    project_manager: str | None
    capacity: AreaCapacity


@dataclass(frozen=True)
class CapacitySnapshot:
    """Transformers with their load model, and grid areas with their allowable capacity, at one generation.

    ``loads`` holds every transformer (any status); ``table`` is the load model of the same rows. Worklists
    and area totals use in-service transformers only (``in_service`` mask), as the siting engine does.
    """

    generation: int
    profile_id: str
    thresholds: LoadThresholds
    loads: TransformerLoads
    table: LoadTable
    in_service: npt.NDArray[np.bool_]
    areas: Mapping[str, GridAreaRow]

    def area_precontrol(self, code: str | None) -> bool:
        """Whether grid area ``code`` is under pre-control (unknown or missing code: False)."""
        area = self.areas.get(code) if code is not None else None
        return area is not None and area.capacity.precontrol


def read_asset_generation(conn: Connection) -> int:
    """Return the current ``asset_generation`` (bumped with every asset or load change)."""
    return network_version(conn).generation


def read_capacity(conn: Connection, *, profile_id: str, thresholds: LoadThresholds,
                  generation: int | None = None) -> CapacitySnapshot:
    """Read transformers and grid areas and run the load model over them (one consistent read)."""
    generation = read_asset_generation(conn) if generation is None else generation
    loads = read_transformer_loads(conn)
    table = load_table(loads.rated_kva, loads.peak_kva, loads.reserved_kva, thresholds)
    in_service = loads.status == IN_SERVICE
    area_rows = conn.execute(select(GridArea.id, GridArea.code, GridArea.name, GridArea.area_type,
                                    GridArea.customer_manager, GridArea.project_manager).order_by(GridArea.code)).all()
    capacities = area_capacity(loads.grid_area_code[in_service], table.spare_kva[in_service], thresholds,
                               known_areas=[row[1] for row in area_rows])
    areas = {row[1]: GridAreaRow(row[0], row[1], row[2], row[3], row[4], row[5], capacities[row[1]])
             for row in area_rows}
    return CapacitySnapshot(generation, profile_id, thresholds, loads, table, in_service, areas)


#: How long a request waits for a rebuild of a derived snapshot before it is answered from the previous one.
REBUILD_WAIT_S = 2.0


class SnapshotCache(Generic[T]):
    """One object per asset generation, rebuilt when the generation moves and shared by request threads.

    ``get(conn, build)`` reads the generation (one small query) and returns the cached object when it was
    built from that generation (or a later one); otherwise a new one is built with
    ``build(conn, generation, previous)`` and swapped in (``previous`` is the object of the older generation, or
    None, so that a builder can keep what did not change). Concurrent misses share one build.

    With ``connect`` (a context manager giving a read-only connection of the app's engine) a *re*build runs in a
    background thread: the request waits for it at most ``wait_s`` and is otherwise answered from the previous
    object, which stays in use until the new one is swapped in. So no request waits for the rebuild of a
    province-size map after an import (issue 12: 23.7 s with no answer after a 1M-row import, the worker's one
    request slot held meanwhile); the answer names the generation it is of. The first build, with nothing to
    answer from, is made in the request.
    """

    def __init__(self, wait_s: float = REBUILD_WAIT_S) -> None:
        self._lock = threading.Lock()
        self._value: tuple[int, T] | None = None
        self._wait_s = wait_s
        self._building: Future[tuple[int, T]] | None = None

    def get(self, conn: Connection, build: Callable[[Connection, int, T | None], T], *,
            connect: Callable[[], AbstractContextManager[Connection]] | None = None) -> T:
        """Return the object for the current generation: cached, rebuilt, or (rebuild still running) the last one."""
        generation = read_asset_generation(conn)
        current = self._value
        if current is not None and current[0] >= generation:
            return current[1]
        if current is None or connect is None:
            with self._lock:
                current = self._value
                if current is not None and current[0] >= generation:
                    return current[1]
                value = build(conn, generation, None if current is None else current[1])
                self._value = (generation, value)
                return value
        deadline = time.monotonic() + self._wait_s
        while True:
            future = self._rebuild(connect, build)
            try:
                built, value = future.result(timeout=max(deadline - time.monotonic(), 0.0))
            except FutureTimeoutError:
                return current[1]  # still building: answer from the previous generation, the build goes on
            if built >= generation:
                return value
            # that build began before this request's generation was committed: one more, within the same wait

    def _rebuild(self, connect: Callable[[], AbstractContextManager[Connection]],
                 build: Callable[[Connection, int, T | None], T]) -> Future[tuple[int, T]]:
        """The running background build, or a new one from the current generation."""
        with self._lock:
            if self._building is not None and not self._building.done():
                return self._building
            future: Future[tuple[int, T]] = Future()
            self._building = future
            previous = self._value

        def run() -> None:
            try:
                with connect() as conn:
                    generation = read_asset_generation(conn)
                    value = build(conn, generation, None if previous is None else previous[1])
                with self._lock:
                    if self._value is None or self._value[0] < generation:
                        self._value = (generation, value)
                future.set_result((generation, value))
            except BaseException as exc:  # the waiting request raises it; the next one tries again
                future.set_exception(exc)

        threading.Thread(target=run, name="snapshot-rebuild", daemon=True).start()
        return future
