"""In-memory source index: transformers, the access points they feed, and nearest-feasible search (R2.2)."""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from heapq import heappush, heappushpop
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.errors import InvalidInputError

__all__ = [
    "ACCESS_POINT_KINDS",
    "AccessHit",
    "AccessPointSnapshot",
    "LineSegmentSnapshot",
    "Neighbour",
    "SourceIndex",
    "TransformerSnapshot",
    "added_kva_limit",
    "fits_after_connection",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

#: Kinds of point access equipment (architecture.md, ``access_points.kind``).
ACCESS_POINT_KINDS: tuple[str, ...] = ("pole", "branch_box")
#: Kind reported for the nearest point on an LV overhead line.
LINE_SEGMENT_KIND = "line_segment"
# Preference among equally distant access geometry: real equipment before a point on a line.
_KIND_RANK = {"pole": 0, "branch_box": 1, LINE_SEGMENT_KIND: 2}
# Mean number of transformers per grid cell; measured best between 1 and 2 (docs/siting.md).
_TARGET_PER_CELL = 1.5
# Beyond this ring the search switches from the per-cell loop to a vectorised doubling scan.
_RING_SWITCH = 4
# Slack in metres on the provable-nearest bound, larger than any rounding of cell assignment.
_BOUND_EPS_M = 1e-6
# Relative slack when the vectorised scan pre-selects before exact distances are computed.
_NUMPY_SLACK = 1e-9
_MAX_CACHED_LIMITS = 8


def _readonly(values: npt.ArrayLike, dtype: Any) -> npt.NDArray[Any]:
    arr = np.array(values, dtype=dtype)
    if arr.ndim != 1:
        raise InvalidInputError("Snapshot columns must be one-dimensional.", shape=list(arr.shape))
    arr.setflags(write=False)
    return arr


def _object_array(values: Sequence[Any] | npt.NDArray[Any]) -> ObjectArray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    arr.setflags(write=False)
    return arr


def _check_lengths(name: str, columns: Mapping[str, npt.NDArray[Any]]) -> int:
    lengths = {key: len(col) for key, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInputError(f"{name} columns have different lengths.", lengths=lengths)
    return next(iter(lengths.values()), 0)


def _check_finite(name: str, asset_id: ObjectArray, columns: Mapping[str, FloatArray]) -> None:
    for field, col in columns.items():
        bad = np.flatnonzero(~np.isfinite(col))
        if bad.size:
            raise InvalidInputError(
                f"{name}: {field} must be finite.", field=field, asset_id=str(asset_id[bad[0]]), count=int(bad.size)
            )


def _positions(asset_ids: Sequence[str], lookup: Mapping[str, int], skip_unknown: bool) -> tuple[IntArray, IntArray]:
    """Map transformer asset ids to positions; return (positions, kept row numbers)."""
    pos = np.fromiter((lookup.get(a, -1) for a in asset_ids), dtype=np.int64, count=len(asset_ids))
    unknown = np.flatnonzero(pos < 0)
    if unknown.size and not skip_unknown:
        raise InvalidInputError(
            "Access geometry refers to transformers that are not in the snapshot.",
            field="transformer_asset_id",
            asset_id=str(asset_ids[unknown[0]]),
            count=int(unknown.size),
        )
    kept = np.flatnonzero(pos >= 0)
    return pos[kept], kept


@dataclass(frozen=True, eq=False)
class TransformerSnapshot:
    """In-service distribution transformers as parallel, read-only arrays (positions 0..n-1).

    Attributes
    ----------
    asset_id : ndarray of object
        Asset id of each transformer (unique).
    x_m, y_m : ndarray of float64
        Location in the local projected CRS, metres.
    rated_kva, peak_kva, reserved_kva : ndarray of float64
        Nameplate rating, measured peak apparent load, and capacity reserved for approved but
        not yet energised connections, all kVA.
    grid_area_code : ndarray of object
        Code of the grid area (网格) the transformer belongs to, or ``None``.
    """

    asset_id: ObjectArray
    x_m: FloatArray
    y_m: FloatArray
    rated_kva: FloatArray
    peak_kva: FloatArray
    reserved_kva: FloatArray
    grid_area_code: ObjectArray

    def __post_init__(self) -> None:
        floats = {
            "x_m": self.x_m,
            "y_m": self.y_m,
            "rated_kva": self.rated_kva,
            "peak_kva": self.peak_kva,
            "reserved_kva": self.reserved_kva,
        }
        n = _check_lengths("transformers", {"asset_id": self.asset_id, "grid_area_code": self.grid_area_code, **floats})
        _check_finite("transformers", self.asset_id, floats)
        for field, bad in (
            ("rated_kva", self.rated_kva <= 0),
            ("peak_kva", self.peak_kva < 0),
            ("reserved_kva", self.reserved_kva < 0),
        ):
            rows = np.flatnonzero(bad)
            if rows.size:
                raise InvalidInputError(
                    f"transformers: {field} out of range.", field=field, asset_id=str(self.asset_id[rows[0]])
                )
        if len(set(self.asset_id.tolist())) != n:
            raise InvalidInputError("transformers: asset_id values must be unique.", field="asset_id")

    @classmethod
    def from_lists(
        cls,
        asset_id: Sequence[str],
        x_m: Sequence[float] | FloatArray,
        y_m: Sequence[float] | FloatArray,
        rated_kva: Sequence[float] | FloatArray,
        peak_kva: Sequence[float] | FloatArray,
        reserved_kva: Sequence[float] | FloatArray,
        grid_area_code: Sequence[str | None],
    ) -> TransformerSnapshot:
        """Build a snapshot from Python lists (e.g. columns of DB rows already projected to metres).

        Raises
        ------
        InvalidInputError
            Columns of different lengths, non-finite values, ``rated_kva <= 0``, negative loads or
            duplicate asset ids; ``details`` names the field and the first offending asset.

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [400.0], [120.0], [0.0], ["G1"])
        >>> len(t), t.rated_kva.tolist()
        (1, [400.0])
        """
        return cls(
            asset_id=_object_array(asset_id),
            x_m=_readonly(x_m, np.float64),
            y_m=_readonly(y_m, np.float64),
            rated_kva=_readonly(rated_kva, np.float64),
            peak_kva=_readonly(peak_kva, np.float64),
            reserved_kva=_readonly(reserved_kva, np.float64),
            grid_area_code=_object_array(grid_area_code),
        )

    def __len__(self) -> int:
        return len(self.asset_id)

    def positions_by_asset_id(self) -> dict[str, int]:
        """Return ``{asset_id: position}``."""
        return dict(zip(self.asset_id.tolist(), range(len(self.asset_id)), strict=True))

    def with_reserved_kva(self, reserved_kva: npt.ArrayLike) -> TransformerSnapshot:
        """The same transformers with other reservations (bookings); every other column is shared.

        Only the new column is checked (same length, finite, ≥ 0), so this costs one array copy
        instead of a full validation.

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [100.0], [50.0], [0.0], ["G"])
        >>> float(t.with_reserved_kva([12.5]).reserved_kva[0]), float(t.reserved_kva[0])
        (12.5, 0.0)
        """
        reserved = _readonly(reserved_kva, np.float64)
        if len(reserved) != len(self):
            raise InvalidInputError("transformers: reserved_kva has the wrong length.", field="reserved_kva")
        _check_finite("transformers", self.asset_id, {"reserved_kva": reserved})
        rows = np.flatnonzero(reserved < 0)
        if rows.size:
            raise InvalidInputError("transformers: reserved_kva out of range.", field="reserved_kva",
                                    asset_id=str(self.asset_id[rows[0]]))
        copy = object.__new__(TransformerSnapshot)
        for name in ("asset_id", "x_m", "y_m", "rated_kva", "peak_kva", "grid_area_code"):
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "reserved_kva", reserved)
        return copy


@dataclass(frozen=True, eq=False)
class AccessPointSnapshot:
    """LV poles and cable branch boxes, each fed by one transformer of a :class:`TransformerSnapshot`.

    Attributes
    ----------
    asset_id : ndarray of object
        Asset id of the pole or branch box.
    transformer_pos : ndarray of int64
        Position of the feeding transformer in the transformer snapshot.
    kind : ndarray of object
        ``'pole'`` or ``'branch_box'``.
    x_m, y_m : ndarray of float64
        Location in the local projected CRS, metres.
    """

    asset_id: ObjectArray
    transformer_pos: IntArray
    kind: ObjectArray
    x_m: FloatArray
    y_m: FloatArray

    def __post_init__(self) -> None:
        floats = {"x_m": self.x_m, "y_m": self.y_m}
        _check_lengths(
            "access_points",
            {"asset_id": self.asset_id, "transformer_pos": self.transformer_pos, "kind": self.kind, **floats},
        )
        _check_finite("access_points", self.asset_id, floats)
        bad_kinds = sorted({str(k) for k in self.kind.tolist()} - set(ACCESS_POINT_KINDS))
        if bad_kinds:
            raise InvalidInputError(
                "access_points: unknown kind.", field="kind", value=bad_kinds[0], allowed=list(ACCESS_POINT_KINDS)
            )

    @classmethod
    def empty(cls) -> AccessPointSnapshot:
        """Return a snapshot without access points."""
        return cls.from_positions([], np.zeros(0, dtype=np.int64), [], [], [])

    @classmethod
    def from_positions(
        cls,
        asset_id: Sequence[str],
        transformer_pos: Sequence[int] | IntArray,
        kind: Sequence[str],
        x_m: Sequence[float] | FloatArray,
        y_m: Sequence[float] | FloatArray,
    ) -> AccessPointSnapshot:
        """Build from lists whose feeding transformer is already given as a snapshot position."""
        return cls(
            asset_id=_object_array(asset_id),
            transformer_pos=_readonly(transformer_pos, np.int64),
            kind=_object_array(kind),
            x_m=_readonly(x_m, np.float64),
            y_m=_readonly(y_m, np.float64),
        )

    @classmethod
    def from_lists(
        cls,
        asset_id: Sequence[str],
        transformer_asset_id: Sequence[str],
        kind: Sequence[str],
        x_m: Sequence[float] | FloatArray,
        y_m: Sequence[float] | FloatArray,
        transformers: TransformerSnapshot,
        *,
        skip_unknown: bool = False,
    ) -> AccessPointSnapshot:
        """Build from DB-style columns, resolving ``transformer_asset_id`` against ``transformers``.

        Parameters
        ----------
        skip_unknown
            Drop rows whose transformer is not in the snapshot (e.g. retired) instead of raising.

        Raises
        ------
        InvalidInputError
            Unknown transformer (unless ``skip_unknown``), unknown kind or non-finite coordinates.

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [400.0], [120.0], [0.0], ["G1"])
        >>> ap = AccessPointSnapshot.from_lists(["P1"], ["T1"], ["pole"], [5.0], [0.0], t)
        >>> ap.transformer_pos.tolist()
        [0]
        """
        pos, kept = _positions(transformer_asset_id, transformers.positions_by_asset_id(), skip_unknown)
        rows = kept.tolist()
        return cls.from_positions(
            [asset_id[i] for i in rows],
            pos,
            [kind[i] for i in rows],
            np.asarray(x_m, dtype=np.float64)[kept],
            np.asarray(y_m, dtype=np.float64)[kept],
        )


@dataclass(frozen=True, eq=False)
class LineSegmentSnapshot:
    """Straight pieces of LV overhead lines; a point on one can serve as access point (``line_segment``).

    Attributes
    ----------
    asset_id : ndarray of object
        Asset id of the LV line each segment belongs to.
    transformer_pos : ndarray of int64
        Position of the feeding transformer.
    x0_m, y0_m, x1_m, y1_m : ndarray of float64
        Segment end points in the local projected CRS, metres.
    """

    asset_id: ObjectArray
    transformer_pos: IntArray
    x0_m: FloatArray
    y0_m: FloatArray
    x1_m: FloatArray
    y1_m: FloatArray

    def __post_init__(self) -> None:
        floats = {"x0_m": self.x0_m, "y0_m": self.y0_m, "x1_m": self.x1_m, "y1_m": self.y1_m}
        _check_lengths("line_segments", {"asset_id": self.asset_id, "transformer_pos": self.transformer_pos, **floats})
        _check_finite("line_segments", self.asset_id, floats)

    @classmethod
    def empty(cls) -> LineSegmentSnapshot:
        """Return a snapshot without line segments."""
        no_floats = np.zeros(0)
        return cls(_object_array([]), _readonly([], np.int64), no_floats, no_floats, no_floats, no_floats)

    @classmethod
    def from_lines(
        cls,
        asset_id: Sequence[str],
        transformer_asset_id: Sequence[str],
        lines_local: Sequence[BaseGeometry],
        transformers: TransformerSnapshot,
        *,
        skip_unknown: bool = False,
    ) -> LineSegmentSnapshot:
        """Split LV **overhead** lines (LineString/MultiLineString in local metres) into segments.

        Only overhead lines may be tapped anywhere along their length; pass cables' branch boxes as
        access points instead.

        Examples
        --------
        >>> from shapely import LineString
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [400.0], [120.0], [0.0], ["G1"])
        >>> s = LineSegmentSnapshot.from_lines(["L1"], ["T1"], [LineString([(0, 0), (10, 0), (10, 10)])], t)
        >>> len(s.asset_id), s.x1_m.tolist()
        (2, [10.0, 10.0])
        """
        pos, kept = _positions(transformer_asset_id, transformers.positions_by_asset_id(), skip_unknown)
        ids: list[str] = []
        tpos: list[int] = []
        coords: list[FloatArray] = []
        for line_no, t_pos in zip(kept.tolist(), pos.tolist(), strict=True):
            parts = shapely.get_parts(np.asarray([lines_local[line_no]], dtype=object))
            for part in parts:
                xy = shapely.get_coordinates(part)
                if len(xy) < 2:
                    continue
                coords.append(np.hstack([xy[:-1], xy[1:]]))
                ids.extend([asset_id[line_no]] * (len(xy) - 1))
                tpos.extend([t_pos] * (len(xy) - 1))
        seg = np.vstack(coords) if coords else np.zeros((0, 4))
        return cls(
            asset_id=_object_array(ids),
            transformer_pos=_readonly(tpos, np.int64),
            x0_m=_readonly(seg[:, 0], np.float64),
            y0_m=_readonly(seg[:, 1], np.float64),
            x1_m=_readonly(seg[:, 2], np.float64),
            y1_m=_readonly(seg[:, 3], np.float64),
        )


class Neighbour(NamedTuple):
    """A transformer found by a search: its snapshot position and straight-line distance."""

    pos: int
    distance_m: float


class AccessHit(NamedTuple):
    """The nearest access geometry fed by one transformer."""

    asset_id: str
    kind: str
    x_m: float
    y_m: float
    distance_m: float


def fits_after_connection(*, committed_kva: float, added_kva: float, rated_kva: float,
                          max_load_after_pct: float) -> bool:
    """The feasibility test of R2.3: ``(committed_kva + added_kva) / rated_kva × 100 ≤ max_load_after_pct``.

    ``committed_kva = peak_kva + reserved_kva``. Evaluated in this order and float64, so every caller (the
    index, a booking's re-check on the locked row) decides a boundary case the same way.

    Examples
    --------
    >>> fits_after_connection(committed_kva=300.0, added_kva=20.0, rated_kva=400.0, max_load_after_pct=80.0)
    True
    >>> fits_after_connection(committed_kva=310.0, added_kva=20.0, rated_kva=400.0, max_load_after_pct=80.0)
    False
    """
    return (committed_kva + added_kva) / rated_kva * 100.0 <= max_load_after_pct


def added_kva_limit(
    rated_kva: FloatArray, committed_kva: FloatArray, max_load_after_pct: float
) -> tuple[FloatArray, float]:
    """Upper bound of the ``added_kva`` each transformer can take, and the width of the doubtful band.

    The feasibility test (architecture.md, R2.3) is ``(committed_kva + added_kva) / rated_kva × 100
    <= max_load_after_pct`` with ``committed_kva = peak_kva + reserved_kva``. The algebraic limit
    ``rated × pct / 100 − committed`` differs from the float64 boundary of that test by a few ulps,
    so this returns ``upper`` (the limit plus a margin) and ``band_kva``:
    ``added_kva > upper`` never passes the test, ``added_kva <= upper − band_kva`` always does, and
    the searches evaluate the test itself only inside the band.

    Examples
    --------
    >>> upper, band_kva = added_kva_limit(np.array([100.0]), np.array([30.0]), 80.0)
    >>> bool(abs(float(upper[0]) - 50.0) < 1e-6), band_kva < 1e-6
    (True, True)
    """
    capacity_kva = rated_kva * (max_load_after_pct / 100.0)
    # rounding of the test and of the limit is a few ulps of these magnitudes; 1e-12 leaves a wide margin
    margin_kva = 1e-12 * (float(np.max(capacity_kva + committed_kva, initial=0.0)) + 1.0)
    return capacity_kva - committed_kva + margin_kva, 2.0 * margin_kva


class _Packed:
    """Per-transformer ``added_kva`` upper limit, x_m, y_m and position, interleaved in grid order.

    One contiguous run of memory per grid row keeps a query to a handful of cache lines; this, not
    arithmetic, dominates the cost of a query over a million transformers (docs/siting.md).
    """

    def __init__(self, upper_kva: FloatArray, band_kva: float, max_load_after_pct: float, grid: _Grid) -> None:
        table = np.column_stack([upper_kva, grid.x_np, grid.y_np, grid.order.astype(np.float64)])
        self.values = array("d", np.ascontiguousarray(table).tobytes())
        self.view = memoryview(self.values)
        self.upper_kva: FloatArray = upper_kva
        self.band_kva = band_kva
        self.max_load_after_pct = max_load_after_pct


class _Grid:
    """Uniform bucket grid over the transformer points, cells sorted row-major (see docs/siting.md)."""

    def __init__(self, x_m: FloatArray, y_m: FloatArray) -> None:
        n = len(x_m)
        self.n = n
        if n == 0:
            self.x0_m = self.y0_m = 0.0
            self.cell_m = 1.0
            self.ncol = self.nrow = 1
        else:
            self.x0_m = float(x_m.min())
            self.y0_m = float(y_m.min())
            width_m = float(x_m.max()) - self.x0_m
            height_m = float(y_m.max()) - self.y0_m
            cell_m = math.sqrt(max(width_m * height_m, 1.0) * _TARGET_PER_CELL / n)
            # never more than ~4 cells per point, whatever the shape of the extent
            cell_m = max(cell_m, (width_m + height_m) / (4.0 * n + 4.0), 1e-3)
            self.cell_m = cell_m
            self.ncol = int(width_m / cell_m) + 1
            self.nrow = int(height_m / cell_m) + 1
        col = np.clip(np.floor((x_m - self.x0_m) / self.cell_m).astype(np.int64), 0, self.ncol - 1)
        row = np.clip(np.floor((y_m - self.y0_m) / self.cell_m).astype(np.int64), 0, self.nrow - 1)
        key = row * self.ncol + col
        order = np.argsort(key, kind="stable")
        self.order: IntArray = order
        ptr = np.searchsorted(key[order], np.arange(self.ncol * self.nrow + 1, dtype=np.int64))
        self.ptr_np: IntArray = ptr.astype(np.int64)
        self.ptr = array("q", self.ptr_np.tobytes())
        self.x_np: FloatArray = x_m[order]
        self.y_np: FloatArray = y_m[order]

    def cell_of(self, x_m: float, y_m: float) -> tuple[int, int]:
        return math.floor((x_m - self.x0_m) / self.cell_m), math.floor((y_m - self.y0_m) / self.cell_m)

    def bound_m(self, x_m: float, y_m: float, col: int, row: int, ring: int) -> float:
        """Distance below which every point outside the block of ``ring`` around (col, row) lies farther."""
        bound = math.inf
        if col - ring > 0:
            bound = min(bound, x_m - (self.x0_m + (col - ring) * self.cell_m))
        if col + ring < self.ncol - 1:
            bound = min(bound, self.x0_m + (col + ring + 1) * self.cell_m - x_m)
        if row - ring > 0:
            bound = min(bound, y_m - (self.y0_m + (row - ring) * self.cell_m))
        if row + ring < self.nrow - 1:
            bound = min(bound, self.y0_m + (row + ring + 1) * self.cell_m - y_m)
        return bound - _BOUND_EPS_M

    def shell_ranges(self, col: int, row: int, inner: int, outer: int) -> list[tuple[int, int]]:
        """Ranges of sorted positions of the cells with ``inner < Chebyshev distance <= outer``.

        Each grid row of the shell is one or two contiguous runs because cells are sorted row-major;
        ``inner = -1`` gives the whole block.
        """
        ncol, ptr = self.ncol, self.ptr
        ranges: list[tuple[int, int]] = []
        c_lo = max(col - outer, 0)
        c_hi = min(col + outer, ncol - 1)
        if c_lo > c_hi:
            return ranges
        for r in range(max(row - outer, 0), min(row + outer, self.nrow - 1) + 1):
            base = r * ncol
            if inner < 0 or abs(r - row) > inner:
                ranges.append((ptr[base + c_lo], ptr[base + c_hi + 1]))
                continue
            left_hi = min(col - inner - 1, ncol - 1)
            if c_lo <= left_hi:
                ranges.append((ptr[base + c_lo], ptr[base + left_hi + 1]))
            right_lo = max(col + inner + 1, 0)
            if right_lo <= c_hi:
                ranges.append((ptr[base + right_lo], ptr[base + c_hi + 1]))
        return ranges

    def block_positions(self, col: int, row: int, ring: int) -> IntArray:
        """Sorted positions of all points in the square block of half-width ``ring`` cells."""
        c_lo = max(col - ring, 0)
        c_hi = min(col + ring, self.ncol - 1)
        r_lo = max(row - ring, 0)
        r_hi = min(row + ring, self.nrow - 1)
        if c_lo > c_hi or r_lo > r_hi:
            return np.zeros(0, dtype=np.int64)
        base = np.arange(r_lo, r_hi + 1, dtype=np.int64) * self.ncol
        starts = self.ptr_np[base + c_lo]
        lengths = self.ptr_np[base + c_hi + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        return offsets + np.arange(total, dtype=np.int64)


def _csr(group_pos: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    order = np.argsort(group_pos, kind="stable")
    ptr = np.searchsorted(group_pos[order], np.arange(n_groups + 1, dtype=np.int64))
    return order.astype(np.int64), ptr.astype(np.int64)


class SourceIndex:
    """Query-only spatial index over a transformer snapshot and the access geometry they feed.

    Build with :meth:`build`; rebuild (never edit) after an import and swap the new object in.
    Searches return transformer *positions* into ``index.transformers``. Distances are
    ``math.hypot`` of local coordinate differences, in metres; ties are broken by position.

    Examples
    --------
    >>> t = TransformerSnapshot.from_lists(
    ...     ["T1", "T2"], [0.0, 50.0], [0.0, 0.0], [100.0, 400.0], [75.0, 100.0], [0.0, 0.0], ["G", "G"])
    >>> index = SourceIndex.build(t)
    >>> index.nearest_feasible(10.0, 0.0, added_kva=20.0, max_load_after_pct=80.0, radius_m=500.0, k=5)
    [Neighbour(pos=1, distance_m=40.0)]
    >>> index.nearest_any(10.0, 0.0)
    Neighbour(pos=0, distance_m=10.0)
    """

    def __init__(
        self,
        transformers: TransformerSnapshot,
        access_points: AccessPointSnapshot,
        line_segments: LineSegmentSnapshot,
    ) -> None:
        n = len(transformers)
        for name, snap in (("access_points", access_points), ("line_segments", line_segments)):
            tpos = snap.transformer_pos
            if tpos.size and (tpos.min() < 0 or tpos.max() >= n):
                raise InvalidInputError(f"{name}: transformer_pos out of range.", field="transformer_pos")
        self.transformers = transformers
        self.access_points = access_points
        self.line_segments = line_segments
        self._grid = _Grid(transformers.x_m, transformers.y_m)
        self._committed_kva: FloatArray = transformers.peak_kva + transformers.reserved_kva
        self._limits: dict[float, _Packed] = {}
        self._no_limit_packed: _Packed | None = None
        self._ap_order, self._ap_ptr = _csr(access_points.transformer_pos, n)
        self._seg_order, self._seg_ptr = _csr(line_segments.transformer_pos, n)
        self._area_cache: dict[float, Mapping[str, float]] = {}
        self._cache_lock = threading.Lock()

    @classmethod
    def build(
        cls,
        transformers: TransformerSnapshot,
        access_points: AccessPointSnapshot | None = None,
        line_segments: LineSegmentSnapshot | None = None,
    ) -> SourceIndex:
        """Bulk-build the index (no I/O; about 1 s for a million transformers).

        Parameters
        ----------
        transformers
            In-service transformers only (planned or retired ones are never sources).
        access_points
            Poles and branch boxes with the transformer feeding each.
        line_segments
            Segments of LV overhead lines with the transformer feeding each.
        """
        if access_points is None:
            access_points = AccessPointSnapshot.empty()
        if line_segments is None:
            line_segments = LineSegmentSnapshot.empty()
        return cls(transformers, access_points, line_segments)

    def __len__(self) -> int:
        return len(self.transformers)

    def with_reserved_kva(self, reserved_kva: npt.ArrayLike) -> SourceIndex:
        """A new index over the same network with other reservations (capacity bookings).

        The spatial grid and the access geometry are shared with this index; only the capacity
        caches start empty. At a million transformers this costs milliseconds, where
        :meth:`build` takes about a second, so a booking does not force a rebuild.

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [100.0], [50.0], [0.0], ["G"])
        >>> index = SourceIndex.build(t)
        >>> len(index.nearest_feasible(0.0, 0.0, 25.0, 80.0, 100.0, 1))
        1
        >>> index.with_reserved_kva([10.0]).nearest_feasible(0.0, 0.0, 25.0, 80.0, 100.0, 1)
        []
        """
        copy = object.__new__(SourceIndex)
        copy.__dict__.update(self.__dict__)
        copy.transformers = self.transformers.with_reserved_kva(reserved_kva)
        copy._committed_kva = copy.transformers.peak_kva + copy.transformers.reserved_kva
        copy._limits = {}
        copy._no_limit_packed = self._no_limit_packed
        copy._area_cache = {}
        copy._cache_lock = threading.Lock()
        return copy

    # -- capacity --------------------------------------------------------------------------

    def _no_limit(self) -> _Packed:
        if self._no_limit_packed is None:
            with self._cache_lock:
                if self._no_limit_packed is None:
                    self._no_limit_packed = _Packed(np.full(len(self), np.inf), 0.0, math.inf, self._grid)
        return self._no_limit_packed

    def _added_kva_limits(self, max_load_after_pct: float) -> _Packed:
        """Per-transformer limits of ``added_kva`` (cached per percentage, in grid order)."""
        limits = self._limits.get(max_load_after_pct)
        if limits is None:
            with self._cache_lock:  # request threads share the index; fill each entry once
                limits = self._limits.get(max_load_after_pct)
                if limits is None:
                    upper, band_kva = added_kva_limit(
                        self.transformers.rated_kva, self._committed_kva, max_load_after_pct
                    )
                    limits = _Packed(upper[self._grid.order], band_kva, max_load_after_pct, self._grid)
                    cache = dict(self._limits)
                    if len(cache) >= _MAX_CACHED_LIMITS:
                        cache.pop(next(iter(cache)))
                    cache[max_load_after_pct] = limits
                    self._limits = cache  # readers see the old or the new dict, never one being changed
        return limits

    def load_rates_pct(self, pos: int, added_kva: float = 0.0) -> tuple[float, float]:
        """Return ``(load_rate_before_pct, load_rate_after_pct)`` of one transformer.

        ``before = peak / rated × 100`` (the measured peak load rate of R2.3);
        ``after = (peak + reserved + added) / rated × 100`` (the projected rate after connection).
        """
        t = self.transformers
        rated = float(t.rated_kva[pos])
        peak = float(t.peak_kva[pos])
        before = peak / rated * 100.0
        after = (peak + float(t.reserved_kva[pos]) + added_kva) / rated * 100.0
        return before, after

    def area_spare_kva(self, max_load_after_pct: float) -> Mapping[str, float]:
        """Allowable connection capacity per grid area, kVA (R2.3, architecture.md "Siting").

        ``Σ rated_kva × max_load_after_pct / 100 − peak_kva − reserved_kva`` over the area's
        transformers (an overloaded transformer counts negatively, as the contract's formula says).
        Transformers without a grid-area code are left out.

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(
        ...     ["T1", "T2"], [0.0, 1.0], [0.0, 0.0], [100.0, 200.0], [50.0, 100.0], [0.0, 10.0], ["G", "G"])
        >>> dict(SourceIndex.build(t).area_spare_kva(80.0))
        {'G': 80.0}
        """
        cached = self._area_cache.get(max_load_after_pct)
        if cached is not None:
            return cached
        with self._cache_lock:
            return self._area_spare_locked(max_load_after_pct)

    def _area_spare_locked(self, max_load_after_pct: float) -> Mapping[str, float]:
        cached = self._area_cache.get(max_load_after_pct)
        if cached is not None:
            return cached
        t = self.transformers
        spare = t.rated_kva * max_load_after_pct / 100.0 - t.peak_kva - t.reserved_kva
        codes: dict[str, int] = {}
        group = np.fromiter(
            (-1 if code is None else codes.setdefault(code, len(codes)) for code in t.grid_area_code.tolist()),
            dtype=np.int64,
            count=len(t),
        )
        kept = group >= 0
        sums = np.bincount(group[kept], weights=spare[kept], minlength=len(codes))
        table = MappingProxyType({code: float(sums[i]) for code, i in codes.items()})
        self._area_cache[max_load_after_pct] = table
        return table

    def area_precontrol(
        self, grid_area_code: str | None, max_load_after_pct: float, area_precontrol_kva: float = 160.0
    ) -> bool:
        """Tell whether the grid area is under pre-control (spare < ``area_precontrol_kva``; R2.3, BS 4.1.4)."""
        if grid_area_code is None:
            return False
        spare = self.area_spare_kva(max_load_after_pct).get(grid_area_code)
        return spare is not None and spare < area_precontrol_kva

    # -- transformer search ----------------------------------------------------------------

    def nearest_feasible(
        self,
        x_m: float,
        y_m: float,
        added_kva: float,
        max_load_after_pct: float,
        radius_m: float = math.inf,
        k: int = 1,
    ) -> list[Neighbour]:
        """Return up to ``k`` nearest transformers that can take ``added_kva``, nearest first (R2.2).

        A transformer qualifies when ``(peak_kva + reserved_kva + added_kva) / rated_kva × 100 <=
        max_load_after_pct`` and its straight-line distance is ``<= radius_m``.

        Parameters
        ----------
        x_m, y_m
            Query point (the meter box) in local metres.
        added_kva
            Apparent power to be connected, kVA (``>= 0``).
        max_load_after_pct
            Highest allowed projected load rate after connection, percent (e.g. 80).
        radius_m
            Supply radius, metres; ``math.inf`` for none.
        k
            Number of candidates wanted (``>= 1``).

        Returns
        -------
        list of Neighbour
            Sorted by distance, then position; empty when nothing qualifies.

        Raises
        ------
        InvalidInputError
            Non-finite query, negative ``added_kva``/``radius_m``, ``k < 1``.
        """
        _check_query(x_m, y_m, radius_m, k)
        if not (math.isfinite(added_kva) and added_kva >= 0.0):
            raise InvalidInputError("added_kva must be a finite number >= 0.", field="added_kva", value=str(added_kva))
        if not (math.isfinite(max_load_after_pct) and max_load_after_pct > 0.0):
            raise InvalidInputError(
                "max_load_after_pct must be a positive number.",
                field="max_load_after_pct",
                value=str(max_load_after_pct),
            )
        # plain floats: numpy scalars would make every comparison in the loop several times slower
        limits = self._added_kva_limits(float(max_load_after_pct))
        return self._search(float(x_m), float(y_m), limits, float(added_kva), float(radius_m), int(k))

    def nearest_any(self, x_m: float, y_m: float, radius_m: float = math.inf) -> Neighbour | None:
        """Return the nearest transformer whatever its load (the upgrade fallback), or ``None`` if empty."""
        _check_query(x_m, y_m, radius_m, 1)
        found = self._search(float(x_m), float(y_m), self._no_limit(), 0.0, float(radius_m), 1)
        return found[0] if found else None

    def _search(self, qx: float, qy: float, packed: _Packed, added: float, radius: float, k: int) -> list[Neighbour]:
        """Ring-by-ring scan of grid cells around the query until the k-th best is provably nearest."""
        grid = self._grid
        if grid.n == 0:
            return []
        col, row = grid.cell_of(qx, qy)
        # the first block reaches the grid even when the query lies outside it, and is at least 3×3
        outer = max(1, -col, col - (grid.ncol - 1), -row, row - (grid.nrow - 1))
        inner = -1
        view = packed.view
        sure = added + packed.band_kva  # limits at or above this pass without evaluating the test
        hypot = math.hypot
        heap: list[tuple[float, float]] = []  # (-distance, -pos): the top is the worst kept
        worst = math.inf
        ncol, ptr = grid.ncol, grid.ptr
        while True:
            if outer > _RING_SWITCH:
                return self._search_vectorised(qx, qy, col, row, outer, packed, added, radius, k)
            if outer == 1 and 0 < col < ncol - 1 and 0 < row < grid.nrow - 1:
                # the usual first step, inlined: the 3×3 block is three runs of three cells
                base = (row - 1) * ncol + col - 1
                ranges = [
                    (ptr[base], ptr[base + 3]),
                    (ptr[base + ncol], ptr[base + ncol + 3]),
                    (ptr[base + 2 * ncol], ptr[base + 2 * ncol + 3]),
                ]
            else:
                ranges = grid.shell_ranges(col, row, inner, outer)
            for start, stop in ranges:
                run = iter(view[4 * start : 4 * stop].tolist())
                for limit_kva, x_m, y_m, pos in zip(run, run, run, run, strict=True):
                    if limit_kva >= added:
                        d = hypot(x_m - qx, y_m - qy)
                        if d <= worst and d <= radius:
                            if limit_kva < sure and not self._holds(int(pos), added, packed.max_load_after_pct):
                                continue
                            if len(heap) < k:
                                heappush(heap, (-d, -pos))
                                if len(heap) == k:
                                    worst = -heap[0][0]
                            else:
                                heappushpop(heap, (-d, -pos))
                                worst = -heap[0][0]
            bound = grid.bound_m(qx, qy, col, row, outer)
            if bound == math.inf or bound > radius or (len(heap) == k and worst < bound):
                break
            inner = outer
            outer += 1
        heap.sort(reverse=True)
        return [Neighbour(int(-p), -d) for d, p in heap]

    def _holds(self, pos: int, added: float, max_load_after_pct: float) -> bool:
        """The feasibility test itself, for limits inside the doubtful band."""
        return fits_after_connection(committed_kva=float(self._committed_kva[pos]), added_kva=added,
                                     rated_kva=float(self.transformers.rated_kva[pos]),
                                     max_load_after_pct=max_load_after_pct)

    def _search_vectorised(
        self,
        qx: float,
        qy: float,
        col: int,
        row: int,
        ring: int,
        packed: _Packed,
        added: float,
        radius: float,
        k: int,
    ) -> list[Neighbour]:
        """Doubling block scan in numpy for far answers (sparse feasibility or a large radius)."""
        grid = self._grid
        rated_kva = self.transformers.rated_kva
        while True:
            sorted_pos = grid.block_positions(col, row, ring)
            sorted_pos = sorted_pos[packed.upper_kva[sorted_pos] >= added]
            doubtful = packed.upper_kva[sorted_pos] < added + packed.band_kva
            if doubtful.any():
                orig = grid.order[sorted_pos]
                holds = (self._committed_kva[orig] + added) / rated_kva[orig] * 100.0 <= packed.max_load_after_pct
                sorted_pos = sorted_pos[holds | ~doubtful]
            d_np = np.hypot(grid.x_np[sorted_pos] - qx, grid.y_np[sorted_pos] - qy)
            keep = d_np <= radius * (1.0 + _NUMPY_SLACK) + _NUMPY_SLACK
            sorted_pos, d_np = sorted_pos[keep], d_np[keep]
            bound = grid.bound_m(qx, qy, col, row, ring)
            if bound == math.inf or bound > radius:
                break
            if len(d_np) >= k and float(np.partition(d_np, k - 1)[k - 1]) * (1.0 + _NUMPY_SLACK) < bound:
                break
            ring *= 2
        if len(d_np) > k:
            kth = float(np.partition(d_np, k - 1)[k - 1])
            sorted_pos = sorted_pos[d_np <= kth * (1.0 + _NUMPY_SLACK) + _NUMPY_SLACK]
        # exact distances with math.hypot, as in the per-cell loop, so both paths agree to the last bit
        exact = sorted(
            (math.hypot(x_m - qx, y_m - qy), pos)
            for x_m, y_m, pos in zip(
                grid.x_np[sorted_pos].tolist(),
                grid.y_np[sorted_pos].tolist(),
                grid.order[sorted_pos].tolist(),
                strict=True,
            )
        )
        return [Neighbour(p, d) for d, p in exact if d <= radius][:k]

    # -- access points -----------------------------------------------------------------------

    def nearest_access_point(self, x_m: float, y_m: float, transformer_pos: int) -> AccessHit | None:
        """Return the nearest pole, branch box or overhead-line point fed by one transformer.

        Among equally distant geometry, a pole beats a branch box, which beats a point on a line.
        Returns ``None`` when the transformer feeds no access geometry (the caller then connects
        at the transformer itself).

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [400.0], [120.0], [0.0], ["G1"])
        >>> ap = AccessPointSnapshot.from_lists(["P1", "P2"], ["T1", "T1"], ["pole"] * 2, [30.0, 60.0], [0.0, 0.0], t)
        >>> index = SourceIndex.build(t, ap)
        >>> index.nearest_access_point(55.0, 10.0, 0).asset_id
        'P2'
        """
        best: tuple[float, int, str] | None = None
        hit: AccessHit | None = None
        ap = self.access_points
        start, stop = int(self._ap_ptr[transformer_pos]), int(self._ap_ptr[transformer_pos + 1])
        if stop > start:
            rows = self._ap_order[start:stop]
            d = np.hypot(ap.x_m[rows] - x_m, ap.y_m[rows] - y_m)
            ranks = np.fromiter((_KIND_RANK[k] for k in ap.kind[rows].tolist()), dtype=np.int64, count=len(rows))
            ids = ap.asset_id[rows]
            i = int(np.lexsort((ids.astype(str), ranks, d))[0])
            row = int(rows[i])
            best = (float(d[i]), int(ranks[i]), str(ids[i]))
            hit = AccessHit(str(ids[i]), str(ap.kind[row]), float(ap.x_m[row]), float(ap.y_m[row]), float(d[i]))
        seg = self.line_segments
        start, stop = int(self._seg_ptr[transformer_pos]), int(self._seg_ptr[transformer_pos + 1])
        if stop > start:
            rows = self._seg_order[start:stop]
            px, py, dist = _nearest_on_segments(
                x_m, y_m, seg.x0_m[rows], seg.y0_m[rows], seg.x1_m[rows], seg.y1_m[rows]
            )
            i = int(np.argmin(dist))
            candidate = (float(dist[i]), _KIND_RANK[LINE_SEGMENT_KIND], str(seg.asset_id[rows[i]]))
            if best is None or candidate < best:
                hit = AccessHit(candidate[2], LINE_SEGMENT_KIND, float(px[i]), float(py[i]), candidate[0])
        return hit


def _nearest_on_segments(
    x_m: float, y_m: float, x0_m: FloatArray, y0_m: FloatArray, x1_m: FloatArray, y1_m: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Nearest points on many segments to one point, and their distances (metres)."""
    dx = x1_m - x0_m
    dy = y1_m - y0_m
    length2 = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(length2 > 0.0, ((x_m - x0_m) * dx + (y_m - y0_m) * dy) / length2, 0.0)
    t = np.clip(t, 0.0, 1.0)
    px = x0_m + t * dx
    py = y0_m + t * dy
    return px, py, np.hypot(px - x_m, py - y_m)


def _check_query(x_m: float, y_m: float, radius_m: float, k: int) -> None:
    if not (math.isfinite(x_m) and math.isfinite(y_m)):
        raise InvalidInputError("The query point must be finite.", field="x_m", value=[str(x_m), str(y_m)])
    if math.isnan(radius_m) or radius_m < 0.0:
        raise InvalidInputError("radius_m must be >= 0.", field="radius_m", value=str(radius_m))
    if k < 1:
        raise InvalidInputError("k must be at least 1.", field="k", value=k)
