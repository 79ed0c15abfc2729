"""Web-mercator tile maths: tile bounds, the EPSG:3857 transform, selection, clipping and quantisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.errors import InvalidInputError, NotFoundError

__all__ = [
    "DEFAULT_BUFFER_PX",
    "DEFAULT_EXTENT",
    "MAX_ZOOM",
    "TileBounds",
    "TileOutOfRangeError",
    "TileZoomInvalidError",
    "lonlat_to_mercator",
    "mercator_to_lonlat",
    "quantise_points",
    "select_points",
    "tile_bounds",
    "tile_geometries",
    "tiles_covering",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Earth radius of the spherical web-mercator projection EPSG:3857, metres.
EARTH_RADIUS_M = 6378137.0
#: Half the width of the projected world, metres (x runs from −this to +this).
HALF_WORLD_M = math.pi * EARTH_RADIUS_M
#: Latitude where web mercator is cut off so that the world is square.
MAX_LAT_DEG = 85.05112877980659
#: Highest zoom served (about 2.4 cm per pixel of a 4096-unit tile at z22).
MAX_ZOOM = 22
#: Tile coordinate range of a Mapbox Vector Tile (MVT spec 2.1 §4.3.2 default).
DEFAULT_EXTENT = 4096
#: Features this many tile units beyond the edge are kept, so symbols at tile edges are not cut (as ST_AsMVTGeom).
DEFAULT_BUFFER_PX = 64


class TileZoomInvalidError(InvalidInputError):
    """The zoom level is outside ``0 .. MAX_ZOOM``."""

    code = "TILE_ZOOM_INVALID"
    default_message = f"The zoom level must be between 0 and {MAX_ZOOM}."


class TileOutOfRangeError(NotFoundError):
    """The tile column or row does not exist at that zoom (``0 .. 2**z − 1``)."""

    code = "TILE_OUT_OF_RANGE"
    default_message = "No tile has this column and row at this zoom level."


@dataclass(frozen=True, slots=True)
class TileBounds:
    """A tile's square in EPSG:3857 metres (``min_x_m``, ``min_y_m``, ``max_x_m``, ``max_y_m``) and its address."""

    z: int
    x: int
    y: int
    min_x_m: float
    min_y_m: float
    max_x_m: float
    max_y_m: float

    @property
    def size_m(self) -> float:
        """Width (= height) of the tile in metres."""
        return self.max_x_m - self.min_x_m

    def buffered(self, buffer_px: float, extent: int = DEFAULT_EXTENT) -> tuple[float, float, float, float]:
        """Return the square grown by ``buffer_px`` tile units on every side, EPSG:3857 metres."""
        margin_m = self.size_m * buffer_px / extent
        return (self.min_x_m - margin_m, self.min_y_m - margin_m, self.max_x_m + margin_m, self.max_y_m + margin_m)

    def wgs84(self) -> tuple[float, float, float, float]:
        """Return the tile as ``(min_lon, min_lat, max_lon, max_lat)`` in WGS-84 degrees."""
        lons, lats = mercator_to_lonlat(np.array([self.min_x_m, self.max_x_m]), np.array([self.min_y_m, self.max_y_m]))
        return float(lons[0]), float(lats[0]), float(lons[1]), float(lats[1])


def tile_bounds(z: int, x: int, y: int) -> TileBounds:
    """Return the EPSG:3857 square of XYZ tile ``z/x/y`` (row 0 at the north, as slippy maps and MVT use).

    Raises
    ------
    TileZoomInvalidError
        ``z`` is outside ``0 .. MAX_ZOOM`` (``TILE_ZOOM_INVALID``).
    TileOutOfRangeError
        ``x`` or ``y`` is outside ``0 .. 2**z − 1`` (``TILE_OUT_OF_RANGE``).

    Examples
    --------
    >>> b = tile_bounds(0, 0, 0)
    >>> round(b.min_x_m), round(b.max_y_m)
    (-20037508, 20037508)
    >>> tile_bounds(1, 1, 0).min_x_m
    0.0
    >>> tile_bounds(2, 4, 0)
    Traceback (most recent call last):
    ...
    gis.tiles.TileOutOfRangeError: No tile has this column and row at this zoom level.
    """
    if not 0 <= z <= MAX_ZOOM:
        raise TileZoomInvalidError(field="z", value=z, max_zoom=MAX_ZOOM)
    count = 1 << z
    for name, value in (("x", x), ("y", y)):
        if not 0 <= value < count:
            raise TileOutOfRangeError(field=name, value=value, z=z, max_index=count - 1)
    size_m = 2.0 * HALF_WORLD_M / count
    min_x_m = -HALF_WORLD_M + x * size_m
    max_y_m = HALF_WORLD_M - y * size_m
    return TileBounds(z, x, y, min_x_m, max_y_m - size_m, min_x_m + size_m, max_y_m)


def lonlat_to_mercator(lon_wgs84: npt.ArrayLike, lat_wgs84: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Project WGS-84 lon/lat to EPSG:3857 metres with the closed form of the spherical web mercator.

    Latitudes are clamped to ±``MAX_LAT_DEG``. The closed form agrees with PROJ's EPSG:3857 to well below a
    millimetre (tested against pyproj), and is several times faster for large arrays.

    Examples
    --------
    >>> x_m, y_m = lonlat_to_mercator([180.0, 0.0], [0.0, 0.0])
    >>> round(float(x_m[0]), 3), round(float(y_m[1]), 6)
    (20037508.343, -0.0)
    """
    lon = np.asarray(lon_wgs84, dtype=np.float64)
    lat = np.clip(np.asarray(lat_wgs84, dtype=np.float64), -MAX_LAT_DEG, MAX_LAT_DEG)
    x_m = np.radians(lon) * EARTH_RADIUS_M
    y_m = np.log(np.tan(np.pi / 4.0 + np.radians(lat) / 2.0)) * EARTH_RADIUS_M
    return x_m, y_m


def mercator_to_lonlat(x_m: npt.ArrayLike, y_m: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Inverse of :func:`lonlat_to_mercator`: EPSG:3857 metres to WGS-84 lon/lat degrees.

    Examples
    --------
    >>> lon, lat = mercator_to_lonlat(*lonlat_to_mercator([106.55], [29.56]))
    >>> round(float(lon[0]), 9), round(float(lat[0]), 9)
    (106.55, 29.56)
    """
    x = np.asarray(x_m, dtype=np.float64)
    y = np.asarray(y_m, dtype=np.float64)
    lon = np.degrees(x / EARTH_RADIUS_M)
    lat = np.degrees(2.0 * np.arctan(np.exp(y / EARTH_RADIUS_M)) - np.pi / 2.0)
    return lon, lat


def tiles_covering(z: int, min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> list[tuple[int, int]]:
    """Return the ``(x, y)`` of every zoom-``z`` tile that touches a WGS-84 box, row by row.

    Examples
    --------
    >>> tiles_covering(1, -10.0, -10.0, 10.0, 10.0)
    [(0, 0), (1, 0), (0, 1), (1, 1)]
    """
    x_m, y_m = lonlat_to_mercator([min_lon, max_lon], [max_lat, min_lat])
    count = 1 << z
    size_m = 2.0 * HALF_WORLD_M / count
    cols = np.clip(np.floor((x_m + HALF_WORLD_M) / size_m), 0, count - 1).astype(int)
    rows = np.clip(np.floor((HALF_WORLD_M - y_m) / size_m), 0, count - 1).astype(int)
    return [(col, row) for row in range(rows[0], rows[1] + 1) for col in range(cols[0], cols[1] + 1)]


def select_points(x_sorted_m: FloatArray, y_m: FloatArray, box_m: tuple[float, float, float, float]) -> IntArray:
    """Return the positions of the points inside ``box_m`` (edges included), in increasing order.

    ``x_sorted_m`` must be sorted ascending (snapshots sort their points by x once); a binary search
    narrows the candidates to the box's column before ``y_m`` is tested.

    Examples
    --------
    >>> select_points(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 5.0, 1.0, 1.0]), (0.5, 0.0, 3.0, 2.0))
    array([2, 3])
    """
    min_x, min_y, max_x, max_y = box_m
    start = int(np.searchsorted(x_sorted_m, min_x, side="left"))
    stop = int(np.searchsorted(x_sorted_m, max_x, side="right"))
    column = y_m[start:stop]
    return np.flatnonzero((column >= min_y) & (column <= max_y)).astype(np.int64) + start


def quantise_points(
    x_m: FloatArray, y_m: FloatArray, bounds: TileBounds, extent: int = DEFAULT_EXTENT
) -> tuple[IntArray, IntArray]:
    """Convert EPSG:3857 points to integer tile coordinates (origin top-left, y down, ``extent`` units a side).

    Examples
    --------
    >>> b = tile_bounds(0, 0, 0)
    >>> quantise_points(np.array([0.0, b.min_x_m]), np.array([0.0, b.max_y_m]), b)
    (array([2048,    0]), array([2048,    0]))
    """
    scale = extent / bounds.size_m
    px = np.rint((x_m - bounds.min_x_m) * scale).astype(np.int64)
    py = np.rint((bounds.max_y_m - y_m) * scale).astype(np.int64)
    return px, py


def tile_geometries(
    geometries_m: npt.NDArray[np.object_], bounds: TileBounds, *, extent: int = DEFAULT_EXTENT,
    buffer_px: float = DEFAULT_BUFFER_PX,
) -> npt.NDArray[np.object_]:
    """Clip EPSG:3857 lines or polygons to the buffered tile and map them to tile units (y down, not yet rounded).

    Polygons are oriented for MVT first: exterior rings clockwise in EPSG:3857 become positive-area rings
    once y is flipped (MVT spec 2.1 §4.3.4.4). Empty results stay empty; the encoder rounds and drops
    parts that collapse to fewer than 2 (lines) or 3 (rings) distinct points.

    Examples
    --------
    >>> from shapely import LineString
    >>> b = tile_bounds(0, 0, 0)
    >>> geoms = tile_geometries(np.array([LineString([(0, 0), (4e7, 0)])], dtype=object), b, buffer_px=0)
    >>> np.round(shapely.get_coordinates(geoms[0]), 6).tolist()
    [[2048.0, 2048.0], [4096.0, 2048.0]]
    """
    clipped = shapely.clip_by_rect(geometries_m, *bounds.buffered(buffer_px, extent))
    clipped = shapely.orient_polygons(clipped, exterior_cw=True)
    scale = extent / bounds.size_m
    min_x, max_y = bounds.min_x_m, bounds.max_y_m

    def to_tile(coords: FloatArray) -> FloatArray:
        return np.column_stack(((coords[:, 0] - min_x) * scale, (max_y - coords[:, 1]) * scale))

    return shapely.transform(clipped, to_tile)


def geometry_bounds_m(geometries_m: npt.NDArray[np.object_]) -> FloatArray:
    """Return an ``(n, 4)`` array of the geometries' bounding boxes (for tree queries and extents)."""
    return shapely.bounds(geometries_m)


def geometry_to_mercator(geometry_wgs84: BaseGeometry) -> BaseGeometry:
    """Project one WGS-84 geometry to EPSG:3857 metres (vectorised over its coordinates)."""
    return shapely.transform(geometry_wgs84, lambda xy: np.column_stack(lonlat_to_mercator(xy[:, 0], xy[:, 1])))
