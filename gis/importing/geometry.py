"""Geometry of one batch: the source CRS to WGS-84, WKB/EWKB encoding (a fast path for points), and the
checks: empty, unreadable, wrong type (safe normalisation), invalid (safe polygon repair), outside the service area."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyproj
import shapely

from gis.crs import CRS_EPSG, CrsUnsupportedError, cached_transformer, parse_crs
from gis.importing.errors import SourceCrsError
from gis.importing.plan import _Plan, _Problems

__all__ = ["SAFE_REPAIR_AREA_TOLERANCE", "SRID_WGS84", "Geometries", "encode_ewkb_points"]


#: A polygon repair is "safe" when make_valid changes its area by at most this fraction.
SAFE_REPAIR_AREA_TOLERANCE = 0.01
SRID_WGS84 = 4326


def _parse_crs(value: str, *, what: str) -> pyproj.CRS:
    """The CRS of ``--crs``/the mapping's ``crs``: any CRS PROJ knows, or a name of the pin vocabulary (issue 20
    item 5: ``wgs84``/``cgcs2000`` are EPSG:4326/EPSG:4490 here too); GCJ-02 and BD-09 have no PROJ definition,
    so a file in them is refused with that reason rather than as an unknown CRS."""
    try:
        system = parse_crs(value)
    except CrsUnsupportedError:
        system = None
    if system is not None:
        code = CRS_EPSG[system]
        if code is None:
            raise SourceCrsError(
                f"{value!r} ({what}) has no EPSG code or PROJ definition, so the importer cannot reproject it: "
                "convert the file to WGS-84 (EPSG:4326) or CGCS2000 (EPSG:4490) first. Pins may be given in it.",
                field="crs", value=value) from None
        value = code
    try:
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as exc:
        raise SourceCrsError(f"Unknown CRS {value!r} ({what}): {exc}", field="crs", value=value) from None


@lru_cache(maxsize=32)
def _to_wgs84(crs_wkt: str) -> pyproj.Transformer | None:
    """Return the cached ``always_xy`` transformer from ``crs_wkt`` to EPSG:4326 (``None`` if identical)."""
    crs = pyproj.CRS.from_wkt(crs_wkt)
    # CGCS2000 (EPSG:4490) is treated as WGS-84, as everywhere in Sanling (DOMAIN §9.2).
    if crs.to_epsg() in (SRID_WGS84, 4490) or crs.equals(pyproj.CRS.from_epsg(SRID_WGS84), ignore_axis_order=True):
        return None
    return cached_transformer(crs_wkt, f"EPSG:{SRID_WGS84}")


_POINT_WKB_BYTES = 21


class Geometries:
    """Geometries of a batch in EPSG:4326: ``x``/``y`` arrays for points, a shapely array otherwise."""

    def __init__(
        self,
        *,
        x: npt.NDArray[np.float64] | None = None,
        y: npt.NDArray[np.float64] | None = None,
        shapes: npt.NDArray[np.object_] | None = None,
    ) -> None:
        self.x, self.y, self.shapes = x, y, shapes

    def take(self, mask: npt.NDArray[np.bool_]) -> Geometries:
        """Return the geometries where ``mask`` is true."""
        if self.shapes is not None:
            return Geometries(shapes=self.shapes[mask])
        assert self.x is not None and self.y is not None
        return Geometries(x=self.x[mask], y=self.y[mask])

    def to_wkb(self) -> pa.Array:
        """ISO WKB (2D) as an Arrow binary array."""
        if self.shapes is not None:
            return pa.array(shapely.to_wkb(self.shapes), type=pa.binary())
        assert self.x is not None and self.y is not None
        count = len(self.x)
        buffer = np.empty((count, _POINT_WKB_BYTES), dtype=np.uint8)
        buffer[:, 0] = 1
        buffer[:, 1:5] = np.frombuffer((1).to_bytes(4, "little"), dtype=np.uint8)
        buffer[:, 5:13] = np.ascontiguousarray(self.x, dtype="<f8").view(np.uint8).reshape(count, 8)
        buffer[:, 13:21] = np.ascontiguousarray(self.y, dtype="<f8").view(np.uint8).reshape(count, 8)
        offsets = np.arange(0, _POINT_WKB_BYTES * (count + 1), _POINT_WKB_BYTES, dtype=np.int32)
        return pa.Array.from_buffers(pa.binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)])

    def to_ewkb(self, srid: int = SRID_WGS84) -> pa.Array:
        """EWKB with ``srid`` as an Arrow binary array (what PostGIS's binary COPY reads)."""
        if self.shapes is not None:
            return pa.array(shapely.to_wkb(shapely.set_srid(self.shapes, srid), include_srid=True), type=pa.binary())
        assert self.x is not None and self.y is not None
        return encode_ewkb_points(self.x, self.y, srid)


def encode_ewkb_points(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], srid: int = SRID_WGS84) -> pa.Array:
    """Encode points as EWKB (little endian, with SRID) without building geometry objects.

    Examples
    --------
    >>> encode_ewkb_points(np.array([1.0]), np.array([2.0])).to_pylist()[0].hex().upper()
    '0101000020E6100000000000000000F03F0000000000000040'
    """
    count = len(x)
    width = 25
    buffer = np.empty((count, width), dtype=np.uint8)
    buffer[:, 0] = 1
    buffer[:, 1:5] = np.frombuffer((0x20000001).to_bytes(4, "little"), dtype=np.uint8)
    buffer[:, 5:9] = np.frombuffer(int(srid).to_bytes(4, "little"), dtype=np.uint8)
    buffer[:, 9:17] = np.ascontiguousarray(x, dtype="<f8").view(np.uint8).reshape(count, 8)
    buffer[:, 17:25] = np.ascontiguousarray(y, dtype="<f8").view(np.uint8).reshape(count, 8)
    offsets = np.arange(0, width * (count + 1), width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)])


def _points_fast(column: pa.Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Read 2D little-endian WKB points straight from the Arrow buffers; ``None`` when any row is different."""
    if column.null_count or not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return None
    offset_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    buffers = column.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[column.offset : column.offset + len(column) + 1]
    if not np.all(np.diff(offsets) == _POINT_WKB_BYTES):
        return None
    data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(-1, _POINT_WKB_BYTES)
    if not (np.all(data[:, 0] == 1) and np.all(data[:, 1:5] == (1, 0, 0, 0))):
        return None
    x = np.ascontiguousarray(data[:, 5:13]).view("<f8").ravel().astype(np.float64)
    y = np.ascontiguousarray(data[:, 13:21]).view("<f8").ravel().astype(np.float64)
    return x, y


_TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
# GEOS type ids accepted for each stored geometry type (a Polygon is stored as a one-part MultiPolygon).
_ACCEPTED_TYPE_IDS = {"Point": (0,), "LineString": (1,), "MultiPolygon": (3, 6)}


class _GeometryCheck:
    """Geometry problems of one batch; ``ok`` marks rows whose geometry is still fine."""

    def __init__(self, problems: _Problems, size: int) -> None:
        self.problems = problems
        self.ok = np.ones(size, dtype=bool)

    def error(self, mask: npt.NDArray[np.bool_], code: str, message: str | Sequence[str]) -> None:
        mask = np.asarray(mask, dtype=bool) & self.ok
        self.problems.add(mask, "geometry", code, message)
        self.ok &= ~mask

    def repaired(self, mask: npt.NDArray[np.bool_], message: str | Sequence[str]) -> None:
        self.problems.add(np.asarray(mask, dtype=bool), "geometry", "GEOMETRY_REPAIRED", message, severity="warning")


def _normalise_types(shapes: npt.NDArray[np.object_], geometry_type: str, check: _GeometryCheck) -> None:
    """Make single-part multi-geometries simple and join multi-part lines that form one line (safe)."""
    ok = check.ok
    type_ids = np.full(len(shapes), -1)
    type_ids[ok] = shapely.get_type_id(shapes[ok])
    if geometry_type in ("Point", "LineString"):
        multi_id = 4 if geometry_type == "Point" else 5
        single = ok & (type_ids == multi_id) & (shapely.get_num_geometries(shapes) == 1)
        if single.any():
            shapes[single] = shapely.get_geometry(shapes[single], 0)
            type_ids[single] = multi_id - 4
            check.repaired(single, f"single-part multi-geometry taken as {geometry_type}")
    if geometry_type == "LineString":
        multi = ok & (type_ids == 5)
        if multi.any():
            merged = shapely.line_merge(shapes[multi])
            joined = np.zeros(len(shapes), dtype=bool)
            joined[np.flatnonzero(multi)[shapely.get_type_id(merged) == 1]] = True
            shapes[joined] = merged[shapely.get_type_id(merged) == 1]
            type_ids[joined] = 1
            check.repaired(joined, "multi-part line joined into one LineString")
    wrong = ok & ~np.isin(type_ids, _ACCEPTED_TYPE_IDS[geometry_type])
    check.error(
        wrong,
        "GEOMETRY_TYPE_WRONG",
        [
            f"geometry is {_TYPE_NAMES[t] if 0 <= t < len(_TYPE_NAMES) else '?'}, expected {geometry_type}"
            for t in type_ids
        ],
    )
    if geometry_type == "MultiPolygon":
        polygon = check.ok & (type_ids == 3)
        if polygon.any():
            shapes[polygon] = shapely.multipolygons(shapes[polygon][:, np.newaxis])


def _check_validity(shapes: npt.NDArray[np.object_], geometry_type: str, check: _GeometryCheck) -> None:
    """Report invalid geometries; polygons are repaired where make_valid keeps the area (±1 %)."""
    invalid = np.zeros(len(shapes), dtype=bool)
    invalid[check.ok] = ~shapely.is_valid(shapes[check.ok])
    if not invalid.any():
        return
    reasons = {int(index): shapely.is_valid_reason(shapes[index]) for index in np.flatnonzero(invalid)}
    repaired = np.zeros(len(shapes), dtype=bool)
    if geometry_type == "MultiPolygon":
        for index in reasons:
            original = shapes[index]
            fixed = shapely.make_valid(original, method="structure", keep_collapsed=False)
            if fixed.geom_type == "Polygon":
                fixed = shapely.MultiPolygon([fixed])
            area = original.area
            if (
                fixed.geom_type == "MultiPolygon"
                and area > 0
                and abs(fixed.area - area) <= SAFE_REPAIR_AREA_TOLERANCE * area
            ):
                shapes[index] = fixed
                repaired[index] = True
    messages = [
        f"invalid polygon repaired ({reasons[i]})"
        if repaired[i]
        else f"invalid geometry: {reasons[i]}"
        if i in reasons
        else ""
        for i in range(len(shapes))
    ]
    check.repaired(repaired, messages)
    check.error(invalid & ~repaired, "GEOMETRY_INVALID", messages)


def _check_service_area(bounds: npt.NDArray[np.float64], main: _Plan, check: _GeometryCheck) -> None:
    """Reject geometries whose WGS-84 bounding box is not inside the service area."""
    area = main.service_area_wgs84
    if area is None or not check.ok.any():
        return
    min_lon, min_lat, max_lon, max_lat = area
    with np.errstate(invalid="ignore"):
        inside = (
            (bounds[:, 0] >= min_lon)
            & (bounds[:, 2] <= max_lon)
            & (bounds[:, 1] >= min_lat)
            & (bounds[:, 3] <= max_lat)
        )
    outside = check.ok & ~inside
    if not outside.any():
        return
    hint = ""
    if main.transformer is None and np.nanmax(np.abs(bounds[outside][:, [0, 2]])) > 180:
        hint = "; the coordinates look projected: give the file's CRS (--crs)"
    elif main.source_is_projected and np.nanmax(np.abs(bounds[outside][:, [0, 2]])) > 180:
        hint = "; is the CRS right? Gauss-Krüger x with a zone prefix needs a 'GK Zone' EPSG code"
    messages = [
        f"lon {b[0]:.6f}…{b[2]:.6f}, lat {b[1]:.6f}…{b[3]:.6f} lies outside the service area "
        f"{min_lon:g},{min_lat:g},{max_lon:g},{max_lat:g}{hint}"
        if out
        else ""
        for b, out in zip(bounds, outside, strict=True)
    ]
    check.error(outside, "OUT_OF_SERVICE_AREA", messages)


def _prepare_shapes(raw: pa.Array, main: _Plan, check: _GeometryCheck) -> npt.NDArray[np.object_]:
    """Decode, normalise, reproject and validate geometries with shapely (any type)."""
    geometry_type = main.spec.geometry_type
    assert geometry_type is not None
    wkb = np.asarray(raw.to_numpy(zero_copy_only=False), dtype=object)
    present = np.fromiter((value is not None for value in wkb), dtype=bool, count=len(wkb))
    shapes = shapely.from_wkb(wkb, on_invalid="ignore")
    unreadable = present & shapely.is_missing(shapes)
    if unreadable.any():
        shapes[unreadable] = shapely.from_wkb(wkb[unreadable], on_invalid="fix")
        fixed = unreadable & ~shapely.is_missing(shapes)
        check.repaired(fixed, "malformed geometry repaired (ring closed)")
        check.error(unreadable & ~fixed, "GEOMETRY_INVALID", "geometry cannot be read")
    check.error(shapely.is_missing(shapes) | shapely.is_empty(shapes), "GEOMETRY_EMPTY", "geometry is missing or empty")
    shapes[check.ok] = shapely.force_2d(shapes[check.ok])
    _normalise_types(shapes, geometry_type, check)
    if main.transformer is not None and check.ok.any():
        transformer = main.transformer
        ok = check.ok.copy()
        shapes[ok] = shapely.transform(shapes[ok], lambda x, y: transformer.transform(x, y), interleaved=False)
        finite = np.zeros(len(shapes), dtype=bool)
        finite[ok] = np.isfinite(shapely.bounds(shapes[ok])).all(axis=1)
        check.error(ok & ~finite, "GEOMETRY_INVALID", "geometry cannot be transformed to WGS-84")
    _check_validity(shapes, geometry_type, check)
    bounds = np.full((len(shapes), 4), np.nan)
    bounds[check.ok] = shapely.bounds(shapes[check.ok])
    _check_service_area(bounds, main, check)
    return shapes


def _prepare_geometries(batch: pa.RecordBatch, main: _Plan, problems: _Problems) -> Geometries | None:
    """Return the batch's geometries in EPSG:4326 and record their problems (``None``: attribute-only layer)."""
    geometry_type = main.spec.geometry_type
    if geometry_type is None:
        return None
    check = _GeometryCheck(problems, batch.num_rows)
    if main.geometry_column is None or main.geometry_column not in batch.schema.names:
        check.error(np.ones(batch.num_rows, dtype=bool), "GEOMETRY_EMPTY", "the file has no geometry")
        return (
            Geometries(x=np.full(batch.num_rows, np.nan), y=np.full(batch.num_rows, np.nan))
            if geometry_type == "Point"
            else Geometries(shapes=np.full(batch.num_rows, None, dtype=object))
        )
    raw = batch.column(main.geometry_column)
    fast = _points_fast(raw) if geometry_type == "Point" else None
    if fast is None:
        shapes = _prepare_shapes(raw, main, check)
        if geometry_type != "Point":
            return Geometries(shapes=shapes)
        x = np.full(batch.num_rows, np.nan)
        y = np.full(batch.num_rows, np.nan)
        x[check.ok], y[check.ok] = shapely.get_x(shapes[check.ok]), shapely.get_y(shapes[check.ok])
        return Geometries(x=x, y=y)
    x, y = fast
    check.error(np.isnan(x) & np.isnan(y), "GEOMETRY_EMPTY", "geometry is missing or empty")
    check.error(~(np.isfinite(x) & np.isfinite(y)), "GEOMETRY_INVALID", "point coordinates are not finite numbers")
    if main.transformer is not None:
        x_t, y_t = main.transformer.transform(x, y)
        x, y = np.asarray(x_t, dtype=np.float64), np.asarray(y_t, dtype=np.float64)
        check.error(~(np.isfinite(x) & np.isfinite(y)), "GEOMETRY_INVALID", "point cannot be transformed to WGS-84")
    _check_service_area(np.column_stack([x, y, x, y]), main, check)
    return Geometries(x=x, y=y)
