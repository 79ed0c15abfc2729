"""Read-only snapshots of the network the source index searches: transformers, access points, LV line segments.

Parallel, read-only numpy columns (positions 0..n-1), validated once when built from DB-style lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.errors import InvalidInputError

__all__ = [
    "ACCESS_POINT_KINDS",
    "LINE_SEGMENT_KIND",
    "AccessPointSnapshot",
    "LineSegmentSnapshot",
    "TransformerSnapshot",
    "derive_cable_access",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]
BoolArray = npt.NDArray[np.bool_]

#: Kinds of point access equipment (architecture.md, ``access_points.kind``).
ACCESS_POINT_KINDS: tuple[str, ...] = ("pole", "branch_box")
#: Kind reported for the nearest point on an LV overhead line.
LINE_SEGMENT_KIND = "line_segment"
#: Cable ends closer than this (metres) are one point when access points are derived from cables.
CABLE_END_TOLERANCE_M = 0.05
#: A derived cable end or junction this close to its transformer is the transformer's LV board (metres).
DERIVED_AT_TRANSFORMER_M = 1.0


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
        return self.with_loads(reserved_kva=reserved_kva)

    def with_loads(self, *, peak_kva: npt.ArrayLike | None = None,
                   reserved_kva: npt.ArrayLike | None = None) -> TransformerSnapshot:
        """The same transformers with other measured peaks (load readings) and/or reservations (bookings).

        Every other column is shared; only the new columns are checked (same length, finite, ≥ 0).

        Examples
        --------
        >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [100.0], [50.0], [0.0], ["G"])
        >>> moved = t.with_loads(peak_kva=[70.0], reserved_kva=[5.0])
        >>> float(moved.peak_kva[0]), float(moved.reserved_kva[0]), float(t.peak_kva[0])
        (70.0, 5.0, 50.0)
        """
        columns = {name: self._checked_load(name, values) for name, values in
                   (("peak_kva", peak_kva), ("reserved_kva", reserved_kva)) if values is not None}
        copy = object.__new__(TransformerSnapshot)
        for name in ("asset_id", "x_m", "y_m", "rated_kva", "peak_kva", "reserved_kva", "grid_area_code"):
            object.__setattr__(copy, name, columns.get(name, getattr(self, name)))
        return copy

    def _checked_load(self, name: str, values: npt.ArrayLike) -> FloatArray:
        column = _readonly(values, np.float64)
        if len(column) != len(self):
            raise InvalidInputError(f"transformers: {name} has the wrong length.", field=name)
        _check_finite("transformers", self.asset_id, {name: column})
        rows = np.flatnonzero(column < 0)
        if rows.size:
            raise InvalidInputError(f"transformers: {name} out of range.", field=name,
                                    asset_id=str(self.asset_id[rows[0]]))
        return column


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
    derived : ndarray of bool
        ``True`` for a branch box derived from the cable geometry (a junction where three or more cable
        ends meet, or a free end; :func:`derive_cable_access`), not read from the GIS: the project manager
        confirms it on site. All ``False`` when not given.
    """

    asset_id: ObjectArray
    transformer_pos: IntArray
    kind: ObjectArray
    x_m: FloatArray
    y_m: FloatArray
    derived: BoolArray | None = None

    def __post_init__(self) -> None:
        if self.derived is None:
            object.__setattr__(self, "derived", _readonly(np.zeros(len(self.asset_id), dtype=bool), bool))
        floats = {"x_m": self.x_m, "y_m": self.y_m}
        _check_lengths(
            "access_points",
            {"asset_id": self.asset_id, "transformer_pos": self.transformer_pos, "kind": self.kind,
             "derived": self.derived, **floats},  # type: ignore[dict-item]
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
        derived: Sequence[bool] | BoolArray | None = None,
    ) -> AccessPointSnapshot:
        """Build from lists whose feeding transformer is already given as a snapshot position."""
        return cls(
            asset_id=_object_array(asset_id),
            transformer_pos=_readonly(transformer_pos, np.int64),
            kind=_object_array(kind),
            x_m=_readonly(x_m, np.float64),
            y_m=_readonly(y_m, np.float64),
            derived=None if derived is None else _readonly(derived, bool),
        )

    def __len__(self) -> int:
        return len(self.asset_id)

    def concat(self, other: AccessPointSnapshot) -> AccessPointSnapshot:
        """These access points followed by ``other``'s (e.g. the GIS's, then those derived from cables)."""
        if not len(other):
            return self
        return AccessPointSnapshot(
            asset_id=_object_array(np.concatenate([self.asset_id, other.asset_id])),
            transformer_pos=_readonly(np.concatenate([self.transformer_pos, other.transformer_pos]), np.int64),
            kind=_object_array(np.concatenate([self.kind, other.kind])),
            x_m=_readonly(np.concatenate([self.x_m, other.x_m]), np.float64),
            y_m=_readonly(np.concatenate([self.y_m, other.y_m]), np.float64),
            derived=_readonly(np.concatenate([self.derived, other.derived]), bool),  # type: ignore[list-item]
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



def derive_cable_access(
    asset_id: Sequence[str] | ObjectArray,
    transformer_asset_id: Sequence[str] | ObjectArray,
    lines_local: Sequence[BaseGeometry] | ObjectArray,
    transformers: TransformerSnapshot,
    *,
    tolerance_m: float = CABLE_END_TOLERANCE_M,
    at_transformer_m: float = DERIVED_AT_TRANSFORMER_M,
    except_transformer_pos: IntArray | None = None,
    free_ends: bool = True,
) -> AccessPointSnapshot:
    """Access points derived from LV **cables** where the GIS has no branch boxes (issue 20 item 1a).

    A cable can only be tapped where it already ends in a box, so the candidates are the points of one
    transformer's cables where three or more segment ends meet (a junction: in practice a branch box or
    cable distribution cabinet) and the free ends (one end alone: an end box or a house connection).
    Two ends meeting are a straight joint, not a candidate. Ends within ``tolerance_m`` (rounded to that
    grid) are one point; a point within ``at_transformer_m`` of its transformer is left out (that is the
    transformer's LV board, which the transformer access already stands for). Each comes back as kind
    ``branch_box`` with ``derived`` set; its ``asset_id`` is ``<line asset id>@start`` or ``@end`` of the
    first line (in input order) that ends there. Lines of unknown transformers are skipped, and so are
    those of ``except_transformer_pos`` (transformers whose branch boxes the GIS has). ``free_ends=False``
    keeps the junctions only: on pandapower's Schutterwald most free ends are the far ends of house service
    cables, i.e. another customer's house connection (docs/siting.md).

    Vectorised: one ``shapely.get_coordinates`` over all parts and a lexicographic sort of the rounded end
    coordinates; no Python loop per segment.

    Examples
    --------
    >>> from shapely import LineString
    >>> t = TransformerSnapshot.from_lists(["T1"], [0.0], [0.0], [400.0], [120.0], [0.0], ["G1"])
    >>> lines = [LineString([(0, 0), (10, 0)]), LineString([(10, 0), (20, 0)]), LineString([(10, 0), (10, 5)])]
    >>> d = derive_cable_access(["C1", "C2", "C3"], ["T1"] * 3, lines, t)
    >>> d.asset_id.tolist(), d.x_m.tolist(), d.y_m.tolist(), bool(d.derived.all())
    (['C1@end', 'C2@end', 'C3@end'], [10.0, 20.0, 10.0], [0.0, 0.0, 5.0], True)
    """
    pos, kept = _positions(list(transformer_asset_id), transformers.positions_by_asset_id(), True)
    if except_transformer_pos is not None and len(except_transformer_pos):
        wanted = ~np.isin(pos, except_transformer_pos)
        pos, kept = pos[wanted], kept[wanted]
    ids = np.asarray(asset_id, dtype=object)[kept]
    geoms = np.empty(len(kept), dtype=object)
    geoms[:] = [lines_local[i] for i in kept.tolist()] if not isinstance(lines_local, np.ndarray) \
        else lines_local[kept]
    # LineStrings as they are; only MultiLineStrings are split (get_parts copies every geometry it returns)
    types = shapely.get_type_id(geoms)
    multi = np.flatnonzero(types == shapely.GeometryType.MULTILINESTRING)
    split, split_line = shapely.get_parts(geoms[multi], return_index=True)
    single = np.flatnonzero(types == shapely.GeometryType.LINESTRING)
    parts = np.concatenate([geoms[single], split])
    part_line = np.concatenate([single, multi[split_line]])
    in_order = np.argsort(part_line, kind="stable")  # input order, so a point is named after its first line
    parts, part_line = parts[in_order], part_line[in_order]
    good = (shapely.get_type_id(parts) == shapely.GeometryType.LINESTRING) & (shapely.get_num_coordinates(parts) >= 2)
    parts, part_line = parts[good], part_line[good]
    if not len(parts):
        return AccessPointSnapshot.empty()
    xy, vertex_part = shapely.get_coordinates(parts, return_index=True)
    first = np.flatnonzero(np.r_[True, vertex_part[1:] != vertex_part[:-1]])
    last = np.r_[first[1:] - 1, len(vertex_part) - 1]
    # every part's two ends: (coordinates, line row, 0 = start / 1 = end)
    end_xy = np.stack([xy[first], xy[last]], axis=1).reshape(-1, 2)  # start, end of part 0, then of part 1, ...
    end_line = np.repeat(part_line, 2)
    end_flag = np.tile(np.array([0, 1], dtype=np.int8), len(first))
    end_t = pos[end_line]
    kx = np.round(end_xy[:, 0] / tolerance_m).astype(np.int64)
    ky = np.round(end_xy[:, 1] / tolerance_m).astype(np.int64)
    order = np.lexsort((ky, kx, end_t))  # stable: ties keep input order, so a group starts at its first line
    kx, ky, ts = kx[order], ky[order], end_t[order]
    starts = np.flatnonzero(np.r_[True, (kx[1:] != kx[:-1]) | (ky[1:] != ky[:-1]) | (ts[1:] != ts[:-1])])
    counts = np.diff(np.r_[starts, len(order)])
    chosen = order[starts[((counts == 1) & free_ends) | (counts >= 3)]]
    chosen = np.sort(chosen)  # input order
    cx, cy, ct = end_xy[chosen, 0], end_xy[chosen, 1], end_t[chosen]
    away = np.hypot(cx - transformers.x_m[ct], cy - transformers.y_m[ct]) > at_transformer_m
    chosen, cx, cy, ct = chosen[away], cx[away], cy[away], ct[away]
    suffix = np.where(end_flag[chosen] == 0, "@start", "@end")
    names = np.char.add(ids[end_line[chosen]].astype(str), suffix).astype(object)
    return AccessPointSnapshot.from_positions(
        names, ct, np.full(len(chosen), "branch_box", dtype=object), cx, cy, np.ones(len(chosen), dtype=bool))
