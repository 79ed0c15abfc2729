"""Shared geometry, tolerances and assertions for the gis tests."""

from __future__ import annotations

import math

from shapely.geometry.base import BaseGeometry

#: Tolerance of the exact GCJ-02/BD-09 inverses (the requirement is < 0.5 m inside China).
ROUND_TRIP_TOL_M = 0.5
#: Metres per degree of latitude on a sphere of radius 6,371 km (good enough for tolerances).
M_PER_DEG = math.pi * 6_371_000.0 / 180.0


def ground_distance_m(lon_a: float, lat_a: float, lon_b: float, lat_b: float) -> float:
    """Equirectangular ground distance in metres between two nearby lon/lat points."""
    mean_lat_rad = math.radians((lat_a + lat_b) / 2.0)
    return math.hypot((lon_a - lon_b) * math.cos(mean_lat_rad), lat_a - lat_b) * M_PER_DEG


def assert_geoms_close(a: BaseGeometry, b: BaseGeometry, tol_m: float = 0.01) -> None:
    """Assert two local geometries are equal within ``tol_m`` (Hausdorff distance)."""
    assert a.geom_type == b.geom_type, (a.geom_type, b.geom_type)
    assert a.hausdorff_distance(b) <= tol_m, (a.wkt, b.wkt)
