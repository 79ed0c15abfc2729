"""Coordinate systems of input pins (WGS-84, GCJ-02, BD-09, CGCS2000) and the local metric projection."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from gis.errors import InvalidInputError

__all__ = [
    "CHINA_BOX_WGS84",
    "CRS_ALIASES",
    "CRS_EPSG",
    "CRS_NAMES",
    "CoordinateInvalidError",
    "CoordinateSystem",
    "CrsUnsupportedError",
    "LocalPin",
    "OutOfServiceAreaError",
    "Projector",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "cached_transformer",
    "crs_refusal",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "parse_crs",
    "pin_to_local",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]


class CoordinateInvalidError(InvalidInputError):
    """A longitude or latitude is not a finite number in range."""

    code = "COORDINATE_INVALID"
    default_message = "The coordinate is not a valid longitude/latitude."


class CrsUnsupportedError(InvalidInputError):
    """The coordinate system named by the caller is not one Sanling understands."""

    code = "CRS_UNSUPPORTED"
    default_message = "The coordinate system is not supported."


class OutOfServiceAreaError(InvalidInputError):
    """The point is a valid coordinate but lies outside this deployment's service area."""

    code = "OUT_OF_SERVICE_AREA"
    default_message = "The location lies outside the service area."


class CoordinateSystem(StrEnum):
    """Coordinate system an input pin was captured in (DOMAIN §9.2).

    ``cgcs2000`` (EPSG:4490) is within a few centimetres of WGS-84 and is treated as identical for
    siting; ``gcj02`` is the obfuscated datum of Amap/Tencent/WeChat; ``bd09`` is Baidu's.
    """

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"
    CGCS2000 = "cgcs2000"


#: The EPSG code of each pin system that has one. GCJ-02 and BD-09 are obfuscations without an EPSG code (or any
#: PROJ definition); CGCS2000 is its geographic CRS EPSG:4490, not one of its Gauss-Krüger zones (EPSG:4513–4554).
CRS_EPSG: dict[CoordinateSystem, str | None] = {
    CoordinateSystem.WGS84: "EPSG:4326",
    CoordinateSystem.GCJ02: None,
    CoordinateSystem.BD09: None,
    CoordinateSystem.CGCS2000: "EPSG:4490",
}

#: Other names of the pin systems, as an import's ``--crs`` writes them (issue 20 item 5) and as Baidu names
#: its own (``bd09ll``: BD-09 lon/lat). Stored and answered as the member's value (``EPSG:4326`` → ``wgs84``).
CRS_ALIASES: dict[str, CoordinateSystem] = {
    **{code: system for system, code in CRS_EPSG.items() if code is not None},
    "bd09ll": CoordinateSystem.BD09,
}

#: The pin CRS vocabulary, one source of truth: what ``crs`` of a design, a sources query, an application and a
#: survey adjustment accepts (the OpenAPI enum), in this order. Matched case-insensitively, ``-`` and ``_``
#: ignored (``epsg:4326``, ``GCJ-02``, ``WGS_84``); anything else is refused with this list.
CRS_NAMES: tuple[str, ...] = (*(m.value for m in CoordinateSystem), *(a for a in CRS_ALIASES if a.startswith("EPSG:")))

#: Every spelling parse_crs knows, by its key (lower case, without ``-`` and ``_``).
_CRS_BY_KEY: dict[str, CoordinateSystem] = {
    **{m.value: m for m in CoordinateSystem},
    **{alias.lower(): system for alias, system in CRS_ALIASES.items()},
}


def _crs_key(value: str) -> str:
    return value.lower().replace("-", "").replace("_", "")


#: ``EPSG:<digits>``, the only form whose refusal looks the code up (to say "projected" rather than "unknown").
_EPSG_CODE = re.compile(r"epsg:(\d{1,6})")


@lru_cache(maxsize=64)
def _epsg_reason(code: int) -> str | None:
    """Why an EPSG code PROJ knows is no pin CRS (projected, or a geographic datum pins are not converted from)."""
    try:
        known = pyproj.CRS.from_epsg(code)
    except pyproj.exceptions.CRSError:
        return None
    if known.is_projected:
        return f"is a projected CRS ({known.name}), not a pin's lon/lat"
    kind = "geographic CRS" if known.is_geographic else "CRS"
    return f"is a {kind} ({known.name}) that pins are not converted from"


def crs_refusal(value: object) -> str:
    """The message refusing a pin CRS: why, and the accepted values (issue 20 item 5).

    A projected CRS is refused on purpose: a pin is a lon/lat in degrees as a phone map gives it, and the
    request's ``lon``/``lat`` declare degree bounds (the service area). An import may be in a Gauss-Krüger zone
    (``--crs EPSG:4545``): it is reprojected in bulk and every row is checked against the service area, while a
    single x/y in the wrong zone would land hundreds of kilometres away, inside the bounds of nothing.

    Examples
    --------
    >>> crs_refusal("utm")
    "Unsupported coordinate system 'utm'; use one of wgs84, gcj02, bd09, cgcs2000, EPSG:4326, EPSG:4490 \
(case-insensitive; EPSG:4326 is wgs84, EPSG:4490 cgcs2000)."
    >>> crs_refusal("EPSG:4545").split(";")[0]
    "'EPSG:4545' is a projected CRS (CGCS2000 / 3-degree Gauss-Kruger CM 108E), not a pin's lon/lat"
    """
    shown = value if isinstance(value, str) else type(value).__name__
    text = repr(shown[:40] + "…" if len(shown) > 40 else shown)
    match = _EPSG_CODE.fullmatch(shown.lower()) if isinstance(value, str) else None
    reason = _epsg_reason(int(match.group(1))) if match else None
    why = f"{text} {reason}" if reason else f"Unsupported coordinate system {text}"
    return (f"{why}; use one of {', '.join(CRS_NAMES)} (case-insensitive; EPSG:4326 is wgs84, EPSG:4490 "
            "cgcs2000).")


#: The crude rectangle inside which GCJ-02 applies its offset: (min_lon, min_lat, max_lon, max_lat).
CHINA_BOX_WGS84: tuple[float, float, float, float] = (72.004, 0.8293, 137.8347, 55.8271)

# Krasovsky 1940 ellipsoid, as used by the public GCJ-02 closed form.
_KRASOVSKY_A_M = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
# BD-09 constant: pi * 3000 / 180.
_BD_X_PI = math.pi * 3000.0 / 180.0
# Fixed-point inverse stops when the forward image is within this many degrees (about 1 mm).
_INVERSE_TOL_DEG = 1e-8
_INVERSE_MAX_ITER = 30


def parse_crs(value: str | CoordinateSystem) -> CoordinateSystem:
    """Normalise a pin CRS of the vocabulary :data:`CRS_NAMES` to a :class:`CoordinateSystem`.

    Parameters
    ----------
    value
        ``"wgs84"``, ``"gcj02"``, ``"bd09"``, ``"cgcs2000"``, ``"EPSG:4326"`` (= wgs84), ``"EPSG:4490"``
        (= cgcs2000) or ``"bd09ll"``; case-insensitive, ``-`` and ``_`` ignored (``"GCJ-02"``, ``"epsg:4490"``).

    Returns
    -------
    CoordinateSystem
        The normalised member.

    Raises
    ------
    CrsUnsupportedError
        For any other value (a projected CRS too, see :func:`crs_refusal`); ``details`` names the field
        ``crs`` and lists the ``allowed`` values.

    Examples
    --------
    >>> parse_crs("GCJ-02")
    <CoordinateSystem.GCJ02: 'gcj02'>
    >>> parse_crs("epsg:4490").value
    'cgcs2000'
    """
    if isinstance(value, CoordinateSystem):
        return value
    if isinstance(value, str):
        system = _CRS_BY_KEY.get(_crs_key(value))
        if system is not None:
            return system
    raise CrsUnsupportedError(crs_refusal(value), field="crs", value=str(value)[:100], allowed=list(CRS_NAMES))


def out_of_china(lon: float, lat: float) -> bool:
    """Tell whether GCJ-02 leaves this point unchanged (outside the rectangle :data:`CHINA_BOX_WGS84`).

    Examples
    --------
    >>> out_of_china(2.35, 48.85), out_of_china(106.55, 29.56)
    (True, False)
    """
    min_lon, min_lat, max_lon, max_lat = CHINA_BOX_WGS84
    return not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat)


def _gcj_offset_deg(lon: float, lat: float) -> tuple[float, float]:
    """Return the GCJ-02 offset (d_lon_deg, d_lat_deg) at a WGS-84 point inside China."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = math.sqrt(abs(x))
    common = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
    d_lat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    d_lat += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
    d_lon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    d_lon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _KRASOVSKY_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_KRASOVSKY_A_M * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_KRASOVSKY_A_M / sqrt_magic * math.cos(rad_lat) * math.pi)
    return d_lon, d_lat


def _fixed_point_inverse(
    forward: Callable[[float, float], tuple[float, float]],
    lon: float,
    lat: float,
    start_lon: float,
    start_lat: float,
) -> tuple[float, float]:
    """Solve ``forward(p) == (lon, lat)`` by ``p ← p + ((lon, lat) − forward(p))`` from ``(start_lon, start_lat)``.

    Stops when the forward image is within :data:`_INVERSE_TOL_DEG` on both axes, or after
    :data:`_INVERSE_MAX_ITER` steps. Both datum offsets are small and smooth, so it converges in a few steps.

    Examples
    --------
    >>> _fixed_point_inverse(lambda x, y: (x + 0.5, y - 0.25), 10.5, 19.75, 10.5, 19.75)
    (10.0, 20.0)
    """
    p_lon, p_lat = start_lon, start_lat
    for _ in range(_INVERSE_MAX_ITER):
        f_lon, f_lat = forward(p_lon, p_lat)
        e_lon, e_lat = lon - f_lon, lat - f_lat
        if abs(e_lon) < _INVERSE_TOL_DEG and abs(e_lat) < _INVERSE_TOL_DEG:
            break
        p_lon += e_lon
        p_lat += e_lat
    return p_lon, p_lat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert WGS-84 lon/lat to GCJ-02 with the public closed form (Krasovsky constants).

    Outside :data:`CHINA_BOX_WGS84` the point is returned unchanged.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.404, 39.915)
    >>> round(lon, 6), round(lat, 6)
    (116.410244, 39.916404)
    """
    if out_of_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _gcj_offset_deg(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 lon/lat back to WGS-84 exactly, by fixed-point iteration on the forward form.

    Solves ``wgs84_to_gcj02(w) == (lon, lat)`` with ``w ← w + (g − f(w))``, starting at ``w = g``;
    it converges in 2–5 steps to about 1 mm (< 0.5 m guaranteed inside China). A point that the
    forward form leaves unchanged (outside China) is returned unchanged.

    Examples
    --------
    >>> lon, lat = gcj02_to_wgs84(116.410244, 39.916404)
    >>> round(lon, 6), round(lat, 6)
    (116.404, 39.915)
    >>> gcj02_to_wgs84(2.35, 48.85)
    (2.35, 48.85)
    """
    return _fixed_point_inverse(wgs84_to_gcj02, lon, lat, lon, lat)


def _gcj02_to_bd09_closed(lon: float, lat: float) -> tuple[float, float]:
    z = math.hypot(lon, lat) + 2e-5 * math.sin(lat * _BD_X_PI)
    theta = math.atan2(lat, lon) + 3e-6 * math.cos(lon * _BD_X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert GCJ-02 lon/lat to Baidu BD-09 (closed form; applied everywhere, as Baidu does).

    Examples
    --------
    >>> lon, lat = gcj02_to_bd09(116.404, 39.915)
    >>> round(lon, 6), round(lat, 6)
    (116.410369, 39.921337)
    """
    return _gcj02_to_bd09_closed(lon, lat)


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert BD-09 lon/lat to GCJ-02: the public closed form, refined by fixed point on the forward.

    The published one-step inverse is off by up to about 1e-6°; two refinement steps make
    ``gcj02_to_bd09(bd09_to_gcj02(p)) == p`` to about 1 mm.

    Examples
    --------
    >>> lon, lat = bd09_to_gcj02(116.410369, 39.921337)
    >>> round(lon, 6), round(lat, 6)
    (116.404, 39.915)
    """
    x = lon - 0.0065
    y = lat - 0.006
    z = math.hypot(x, y) - 2e-5 * math.sin(y * _BD_X_PI)
    theta = math.atan2(y, x) - 3e-6 * math.cos(x * _BD_X_PI)
    return _fixed_point_inverse(_gcj02_to_bd09_closed, lon, lat, z * math.cos(theta), z * math.sin(theta))


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert BD-09 to WGS-84 (BD-09 → GCJ-02 → WGS-84).

    Examples
    --------
    >>> lon, lat = bd09_to_wgs84(*wgs84_to_bd09(116.404, 39.915))
    >>> round(lon, 7), round(lat, 7)
    (116.404, 39.915)
    """
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """Convert WGS-84 to BD-09 (WGS-84 → GCJ-02 → BD-09).

    Examples
    --------
    >>> lon, lat = wgs84_to_bd09(116.404, 39.915)
    >>> round(lon, 4), round(lat, 4)
    (116.4166, 39.9227)
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def to_wgs84(lon: float, lat: float, crs: CoordinateSystem | str) -> tuple[float, float]:
    """Convert a lon/lat pair in ``crs`` to WGS-84 lon/lat (CGCS2000 is taken as WGS-84).

    Parameters
    ----------
    lon, lat
        Coordinates in degrees, in the system ``crs``.
    crs
        A :class:`CoordinateSystem` or a name accepted by :func:`parse_crs`.

    Returns
    -------
    tuple of float
        ``(lon_wgs84, lat_wgs84)``.

    Examples
    --------
    >>> to_wgs84(106.55, 29.56, "cgcs2000")
    (106.55, 29.56)
    >>> lon, lat = to_wgs84(106.5537, 29.5572, "gcj02")
    >>> round(lon, 3), round(lat, 3)
    (106.55, 29.56)
    """
    system = parse_crs(crs)
    if system is CoordinateSystem.GCJ02:
        return gcj02_to_wgs84(lon, lat)
    if system is CoordinateSystem.BD09:
        return bd09_to_wgs84(lon, lat)
    # WGS-84, and CGCS2000 which differs by a few centimetres (DOMAIN §9.2).
    return lon, lat


@lru_cache(maxsize=32)
def cached_transformer(source: str, target: str) -> pyproj.Transformer:
    """Return the cached ``always_xy`` transformer for one (source, target) CRS pair.

    pyproj gives every thread its own PROJ object, created on the thread's first call. Created from
    the CRS pair that costs ~100 ms (a lookup in PROJ's database); from the resolved pipeline string,
    ~0.3 ms. A web server's request threads come and go, so the pipeline form is returned whenever
    PROJ resolved the pair to a single operation (otherwise the CRS-pair transformer).
    """
    by_crs = pyproj.Transformer.from_crs(source, target, always_xy=True)
    definition = by_crs.definition or ""
    if not definition.startswith(("proj=", "+proj=")):
        return by_crs
    return pyproj.Transformer.from_pipeline(definition)


def _metre_projected_crs(projected_crs: str) -> pyproj.CRS:
    try:
        crs = pyproj.CRS.from_user_input(projected_crs)
    except pyproj.exceptions.CRSError as exc:
        raise CrsUnsupportedError(
            f"Unknown projected CRS {projected_crs!r}.", field="projected_crs", value=projected_crs
        ) from exc
    units = {axis.unit_name.lower() for axis in crs.axis_info}
    if not crs.is_projected or not units <= {"metre", "meter"}:
        raise CrsUnsupportedError(
            f"{projected_crs!r} is not a projected CRS in metres.",
            field="projected_crs",
            value=projected_crs,
            units=sorted(units),
        )
    return crs


class Projector:
    """WGS-84 lon/lat ↔ the deployment's local metric CRS, with transformers built once.

    Parameters
    ----------
    projected_crs
        A projected CRS in metres, e.g. ``"EPSG:4545"`` (CGCS2000 / 3-degree Gauss-Krüger CM 108°E).
    service_area_wgs84
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS-84 degrees; pins outside it are refused by
        :func:`pin_to_local`. ``None`` accepts any valid coordinate.

    Raises
    ------
    CrsUnsupportedError
        If ``projected_crs`` is unknown, geographic, or not in metres.
    InvalidInputError
        If the service-area box is not a valid lon/lat box.

    Examples
    --------
    >>> p = Projector("EPSG:4545")
    >>> x_m, y_m = p.project(108.0, 30.0)
    >>> round(x_m, 3), round(y_m / 1000)
    (500000.0, 3320)
    >>> lon, lat = p.unproject(x_m, y_m)
    >>> round(lon, 9), round(lat, 9)
    (108.0, 30.0)
    """

    def __init__(
        self,
        projected_crs: str = "EPSG:4545",
        service_area_wgs84: tuple[float, float, float, float] | None = None,
    ) -> None:
        crs = _metre_projected_crs(projected_crs)
        self.projected_crs: str = projected_crs
        self.crs: pyproj.CRS = crs
        if service_area_wgs84 is not None:
            min_lon, min_lat, max_lon, max_lat = (float(v) for v in service_area_wgs84)
            valid = (
                all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat))
                and -180.0 <= min_lon < max_lon <= 180.0
                and -90.0 <= min_lat < max_lat <= 90.0
            )
            if not valid:
                raise InvalidInputError(
                    "The service area must be (min_lon, min_lat, max_lon, max_lat) in degrees.",
                    field="service_area_wgs84",
                    value=[str(v) for v in service_area_wgs84],
                )
            service_area_wgs84 = (min_lon, min_lat, max_lon, max_lat)
        self.service_area_wgs84: tuple[float, float, float, float] | None = service_area_wgs84
        self._forward = cached_transformer("EPSG:4326", crs.srs)
        self._inverse = cached_transformer(crs.srs, "EPSG:4326")

    def __repr__(self) -> str:
        return f"Projector({self.projected_crs!r}, service_area_wgs84={self.service_area_wgs84!r})"

    def project(self, lon_wgs84: float, lat_wgs84: float) -> tuple[float, float]:
        """Project one WGS-84 lon/lat to local ``(x_m, y_m)``."""
        x_m, y_m = self._forward.transform(lon_wgs84, lat_wgs84)
        return float(x_m), float(y_m)

    def unproject(self, x_m: float, y_m: float) -> tuple[float, float]:
        """Return the WGS-84 ``(lon, lat)`` of one local point."""
        lon, lat = self._inverse.transform(x_m, y_m)
        return float(lon), float(lat)

    def project_many(
        self, lon_wgs84: npt.ArrayLike, lat_wgs84: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Project arrays of WGS-84 lon/lat to local ``(x_m, y_m)`` arrays (vectorised).

        Examples
        --------
        >>> x_m, y_m = Projector("EPSG:4545").project_many([108.0, 108.0], [30.0, 30.001])
        >>> x_m.round(3).tolist(), round(float(y_m[1] - y_m[0]), 1)
        ([500000.0, 500000.0], 110.9)
        """
        lon = np.asarray(lon_wgs84, dtype=np.float64)
        lat = np.asarray(lat_wgs84, dtype=np.float64)
        x_m, y_m = self._forward.transform(lon, lat)
        return np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64)

    def unproject_many(
        self, x_m: npt.ArrayLike, y_m: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return WGS-84 ``(lon, lat)`` arrays of local coordinate arrays (vectorised)."""
        lon, lat = self._inverse.transform(np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64))
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def geometry_to_local(self, geometry_wgs84: BaseGeometry) -> BaseGeometry:
        """Reproject a shapely geometry from WGS-84 lon/lat to local metres.

        Examples
        --------
        >>> from shapely import LineString
        >>> line_local = Projector("EPSG:4545").geometry_to_local(LineString([(108, 30), (108, 30.001)]))
        >>> round(line_local.length, 1)
        110.9
        """
        return shapely.transform(geometry_wgs84, self._forward_xy, interleaved=False)

    def geometry_to_wgs84(self, geometry_local: BaseGeometry) -> BaseGeometry:
        """Reproject a shapely geometry from local metres to WGS-84 lon/lat."""
        return shapely.transform(geometry_local, self._inverse_xy, interleaved=False)

    def geojson_wgs84(self, geometry_local: BaseGeometry) -> dict[str, Any]:
        """Return the RFC 7946 GeoJSON geometry (WGS-84 lon/lat) of a local geometry.

        Examples
        --------
        >>> from shapely import Point
        >>> g = Projector("EPSG:4545").geojson_wgs84(Point(500000.0, 3320000.0))
        >>> g["type"], [round(v, 3) for v in g["coordinates"]]
        ('Point', [108.0, 29.999])
        """
        # Points and LineStrings (every access point, transformer and route of a design) go straight through
        # the transformer: ~5x faster than shapely.transform + mapping, which build a new geometry first.
        geometry_type = geometry_local.geom_type
        if geometry_type in ("Point", "LineString") and not geometry_local.is_empty:
            xy = shapely.get_coordinates(geometry_local)
            lon, lat = self._inverse.transform(xy[:, 0], xy[:, 1])
            coordinates = np.column_stack((lon, lat)).tolist()
            return {"type": geometry_type, "coordinates": coordinates[0] if geometry_type == "Point" else coordinates}
        mapping: dict[str, Any] = shapely.geometry.mapping(self.geometry_to_wgs84(geometry_local))
        return _listify(mapping)

    def geojson_point_wgs84(self, x_m: float, y_m: float) -> dict[str, Any]:
        """Return the GeoJSON Point (WGS-84 lon/lat) of one local point; same as ``geojson_wgs84(Point(x_m, y_m))``."""
        lon, lat = self._inverse.transform(x_m, y_m)
        return {"type": "Point", "coordinates": [float(lon), float(lat)]}

    def _forward_xy(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return self.project_many(x, y)

    def _inverse_xy(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return self.unproject_many(x, y)


def _listify(value: Any) -> Any:
    """Turn the tuples of a shapely ``mapping`` into lists so the result is plain JSON."""
    if isinstance(value, dict):
        return {key: _listify(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_listify(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class LocalPin:
    """A validated meter-box location: WGS-84 lon/lat and local metric coordinates."""

    lon_wgs84: float
    lat_wgs84: float
    x_m: float
    y_m: float


def _json_number(value: Any) -> Any:
    """Return ``value`` as a JSON-safe detail (NaN and infinities become strings)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else str(value)
    return str(value)


def _check_coordinate(name: str, value: Any, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise CoordinateInvalidError(f"{name} must be a number.", field=name, value=_json_number(value))
    number = float(value)
    if not math.isfinite(number):
        raise CoordinateInvalidError(f"{name} must be a finite number.", field=name, value=_json_number(number))
    if not -limit <= number <= limit:
        raise CoordinateInvalidError(
            f"{name} must lie between {-limit:g} and {limit:g} degrees.", field=name, value=number
        )
    return number


def pin_to_local(lon: float, lat: float, crs: CoordinateSystem | str, projector: Projector) -> LocalPin:
    """Validate a meter-box pin, convert it to WGS-84 and project it to local metres (R2.1).

    Parameters
    ----------
    lon, lat
        The pin in degrees, in the system ``crs``.
    crs
        The system the pin was captured in (:class:`CoordinateSystem` or an alias).
    projector
        The deployment's :class:`Projector`; its service area, if any, is enforced on the WGS-84 point.

    Returns
    -------
    LocalPin
        WGS-84 lon/lat and local ``x_m``/``y_m``.

    Raises
    ------
    CrsUnsupportedError
        Unknown ``crs`` (``details["field"] == "crs"``).
    CoordinateInvalidError
        NaN, infinite, non-numeric or out-of-range ``lon``/``lat`` (``details["field"]`` names which).
    OutOfServiceAreaError
        The WGS-84 point lies outside ``projector.service_area_wgs84`` (``details["field"]`` is the
        coordinate that falls outside).

    Examples
    --------
    >>> p = Projector("EPSG:4545", service_area_wgs84=(106.3, 29.4, 106.8, 29.8))
    >>> pin = pin_to_local(106.55, 29.56, "wgs84", p)
    >>> round(pin.x_m), round(pin.y_m)
    (359474, 3272217)
    """
    system = parse_crs(crs)
    lon_in = _check_coordinate("lon", lon, 180.0)
    lat_in = _check_coordinate("lat", lat, 90.0)
    lon_wgs84, lat_wgs84 = to_wgs84(lon_in, lat_in, system)
    area = projector.service_area_wgs84
    if area is not None:
        min_lon, min_lat, max_lon, max_lat = area
        outside_lon = not min_lon <= lon_wgs84 <= max_lon
        outside_lat = not min_lat <= lat_wgs84 <= max_lat
        if outside_lon or outside_lat:
            raise OutOfServiceAreaError(
                field="lon" if outside_lon else "lat",
                lon_wgs84=lon_wgs84,
                lat_wgs84=lat_wgs84,
                service_area_wgs84=list(area),
            )
    x_m, y_m = projector.project(lon_wgs84, lat_wgs84)
    if not (math.isfinite(x_m) and math.isfinite(y_m)):
        raise OutOfServiceAreaError(
            f"The location cannot be projected to {projector.projected_crs}.",
            field="lon",
            lon_wgs84=lon_wgs84,
            lat_wgs84=lat_wgs84,
        )
    return LocalPin(lon_wgs84=lon_wgs84, lat_wgs84=lat_wgs84, x_m=x_m, y_m=y_m)
