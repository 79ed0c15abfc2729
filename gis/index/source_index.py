"""The source index: nearest feasible transformer, nearest access point and grid-area spare capacity (R2.2, R2.3).

:class:`SourceIndex` ties the snapshots (:mod:`gis.index.snapshots`) to the bucket grid
(:mod:`gis.index.grid`) and the limit tables (:mod:`gis.index.limits`). This module is the hot path of
every design request: the search loops keep their locals and attribute lookups as they are (docs/siting.md).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from heapq import heappush, heappushpop
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from gis.errors import InvalidInputError
from gis.index.grid import _Grid
from gis.index.limits import _Packed, added_kva_limit, fits_after_connection
from gis.index.snapshots import LINE_SEGMENT_KIND, AccessPointSnapshot, LineSegmentSnapshot, TransformerSnapshot

__all__ = ["AccessHit", "Neighbour", "SourceIndex"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Preference among equally distant access geometry: real equipment before a point on a line, and both
# before a branch box derived from cable ends (to be confirmed on site).
_KIND_RANK = {"pole": 0, "branch_box": 1, LINE_SEGMENT_KIND: 2}
_DERIVED_RANK = 3
# Beyond this ring the search switches from the per-cell loop to a vectorised doubling scan.
_RING_SWITCH = 4
# Relative slack when the vectorised scan pre-selects before exact distances are computed.
_NUMPY_SLACK = 1e-9
_MAX_CACHED_LIMITS = 8


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
    #: A branch box derived from the cable geometry, not read from the GIS (issue 20 item 1a).
    derived: bool = False


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
        self._ap_rank = _access_ranks(access_points)
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
        return self.with_loads(reserved_kva=reserved_kva)

    def with_loads(self, *, peak_kva: npt.ArrayLike | None = None,
                   reserved_kva: npt.ArrayLike | None = None) -> SourceIndex:
        """A new index over the same network with other measured peaks and/or reservations.

        As :meth:`with_reserved_kva`: the spatial grid and the access geometry are shared, the capacity caches
        start empty, so a load-readings update costs milliseconds, not a rebuild.

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [100.0], [50.0], [0.0], ["G"])
        >>> SourceIndex.build(t).with_loads(peak_kva=[70.0]).nearest_feasible(0.0, 0.0, 25.0, 80.0, 100.0, 1)
        []
        """
        copy = object.__new__(SourceIndex)
        copy.__dict__.update(self.__dict__)
        copy.transformers = self.transformers.with_loads(peak_kva=peak_kva, reserved_kva=reserved_kva)
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

        Among equally distant geometry, a pole beats a branch box, which beats a point on a line, which beats
        a branch box derived from cable ends (``derived``). Returns ``None`` when the transformer feeds no
        access geometry (the caller then connects at the transformer itself).

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
            ranks = self._ap_rank[rows]
            derived = ap.derived[rows]  # type: ignore[index]
            ids = ap.asset_id[rows]
            i = int(np.lexsort((ids.astype(str), ranks, d))[0])
            row = int(rows[i])
            best = (float(d[i]), int(ranks[i]), str(ids[i]))
            hit = AccessHit(str(ids[i]), str(ap.kind[row]), float(ap.x_m[row]), float(ap.y_m[row]), float(d[i]),
                            bool(derived[i]))
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


def _access_ranks(access_points: AccessPointSnapshot) -> IntArray:
    """Each access point's tie-break rank (:data:`_KIND_RANK`; derived branch boxes last), vectorised."""
    ranks = np.full(len(access_points.asset_id), _KIND_RANK["branch_box"], dtype=np.int64)
    for kind, rank in _KIND_RANK.items():
        ranks[access_points.kind == kind] = rank
    ranks[access_points.derived] = _DERIVED_RANK  # type: ignore[index]
    return ranks


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
