"""Tests of gis.crs: GCJ-02/BD-09 conversions, the projector and pin validation."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from typing import Any

import numpy as np
import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import LineString

from gis import crs
from gis.crs import (
    CoordinateInvalidError,
    CoordinateSystem,
    CrsUnsupportedError,
    OutOfServiceAreaError,
    Projector,
    pin_to_local,
)
from gis.errors import SanlingError
from tests.gis.common import ROUND_TRIP_TOL_M, ground_distance_m

# Mainland China well inside the GCJ-02 rectangle (0.5° margin so the offset never crosses its edge).
inside_lon = st.floats(min_value=73.0, max_value=135.0)
inside_lat = st.floats(min_value=18.0, max_value=53.0)
# Points outside the rectangle: Europe/Africa and the southern hemisphere.
outside_lon = st.floats(min_value=-170.0, max_value=60.0)
outside_lat = st.floats(min_value=-80.0, max_value=80.0)

CHONGQING_AREA = (106.3, 29.4, 106.8, 29.8)


@pytest.fixture(scope="module")
def projector() -> Projector:
    return Projector("EPSG:4545", service_area_wgs84=CHONGQING_AREA)


# Published reference values (coordtransform README, point near Tiananmen).
@pytest.mark.parametrize(
    ("func", "lon_in", "lat_in", "lon_out", "lat_out", "tol_deg"),
    [
        (crs.wgs84_to_gcj02, 116.404, 39.915, 116.41024449916938, 39.91640428150164, 1e-9),
        (crs.gcj02_to_bd09, 116.404, 39.915, 116.41036949371029, 39.92133699351022, 1e-9),
        # the published one-step inverse; our refined inverse is closer to exact, within 1e-6°
        (crs.bd09_to_gcj02, 116.404, 39.915, 116.39762729119315, 39.90865673957631, 1e-6),
    ],
)
def test_reference_points(
    func: Any, lon_in: float, lat_in: float, lon_out: float, lat_out: float, tol_deg: float
) -> None:
    lon, lat = func(lon_in, lat_in)
    assert lon == pytest.approx(lon_out, abs=tol_deg)
    assert lat == pytest.approx(lat_out, abs=tol_deg)


def test_gcj_offset_in_chongqing_is_hundreds_of_metres() -> None:
    lon, lat = crs.wgs84_to_gcj02(106.55, 29.56)
    assert 100.0 < ground_distance_m(106.55, 29.56, lon, lat) < 1000.0


@settings(max_examples=300, deadline=None)
@given(inside_lon, inside_lat)
def test_gcj_wgs_gcj_round_trip_inside_china(lon: float, lat: float) -> None:
    w_lon, w_lat = crs.gcj02_to_wgs84(lon, lat)
    g_lon, g_lat = crs.wgs84_to_gcj02(w_lon, w_lat)
    assert ground_distance_m(lon, lat, g_lon, g_lat) < ROUND_TRIP_TOL_M
    # and the inverse really moved the point (China applies an offset)
    assert ground_distance_m(lon, lat, w_lon, w_lat) > 1.0


@settings(max_examples=300, deadline=None)
@given(inside_lon, inside_lat)
def test_wgs_gcj_wgs_round_trip_inside_china(lon: float, lat: float) -> None:
    w_lon, w_lat = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    assert ground_distance_m(lon, lat, w_lon, w_lat) < ROUND_TRIP_TOL_M


@settings(max_examples=300, deadline=None)
@given(inside_lon, inside_lat)
def test_bd_wgs_bd_round_trip_inside_china(lon: float, lat: float) -> None:
    b_lon, b_lat = crs.wgs84_to_bd09(*crs.bd09_to_wgs84(lon, lat))
    assert ground_distance_m(lon, lat, b_lon, b_lat) < ROUND_TRIP_TOL_M


@settings(max_examples=200, deadline=None)
@given(outside_lon, outside_lat)
def test_gcj_is_identity_outside_china(lon: float, lat: float) -> None:
    assert crs.wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert crs.gcj02_to_wgs84(lon, lat) == (lon, lat)
    assert crs.to_wgs84(lon, lat, "gcj02") == (lon, lat)


@settings(max_examples=200, deadline=None)
@given(outside_lon, outside_lat)
def test_bd_round_trip_outside_china(lon: float, lat: float) -> None:
    b_lon, b_lat = crs.wgs84_to_bd09(*crs.bd09_to_wgs84(lon, lat))
    assert ground_distance_m(lon, lat, b_lon, b_lat) < ROUND_TRIP_TOL_M


@pytest.mark.parametrize(
    ("value", "expected", "outcome"),
    [
        ("wgs84", CoordinateSystem.WGS84, nullcontext()),
        ("EPSG:4326", CoordinateSystem.WGS84, nullcontext()),
        ("GCJ-02", CoordinateSystem.GCJ02, nullcontext()),
        ("bd-09", CoordinateSystem.BD09, nullcontext()),
        ("EPSG:4490", CoordinateSystem.CGCS2000, nullcontext()),  # CGCS2000 geographic
        (CoordinateSystem.BD09, CoordinateSystem.BD09, nullcontext()),
        ("epsg:4326", CoordinateSystem.WGS84, nullcontext()),  # EPSG codes case-insensitive (issue 20 item 5)
        ("Epsg:4490", CoordinateSystem.CGCS2000, nullcontext()),
        ("BD09LL", CoordinateSystem.BD09, nullcontext()),  # Baidu's own name of BD-09 lon/lat
        ("EPSG:3857", None, pytest.raises(CrsUnsupportedError)),  # web mercator is not a pin CRS
        ("EPSG:4545", None, pytest.raises(CrsUnsupportedError)),  # nor a CGCS2000 Gauss-Krüger zone (x/y)
        ("EPSG:9999", None, pytest.raises(CrsUnsupportedError)),
        ("4326", None, pytest.raises(CrsUnsupportedError)),  # a bare number is not an EPSG code any more
        (" wgs84", None, pytest.raises(CrsUnsupportedError)),
        ("utm", None, pytest.raises(CrsUnsupportedError)),
        ("", None, pytest.raises(CrsUnsupportedError)),
        ("mars", None, pytest.raises(CrsUnsupportedError)),
    ],
)
def test_parse_crs(value: str, expected: CoordinateSystem | None, outcome: Any) -> None:
    with outcome:
        assert crs.parse_crs(value) is expected


def test_the_vocabulary_is_the_names_and_their_epsg_codes() -> None:
    """One vocabulary (issue 20 item 5): the four systems, then the EPSG codes of those that have one."""
    assert crs.CRS_NAMES == ("wgs84", "gcj02", "bd09", "cgcs2000", "EPSG:4326", "EPSG:4490")
    for name in crs.CRS_NAMES:
        assert crs.parse_crs(name) is crs.parse_crs(name.lower()) is crs.parse_crs(name.upper())
    assert {code for code in crs.CRS_EPSG.values() if code} == {"EPSG:4326", "EPSG:4490"}
    for system, code in crs.CRS_EPSG.items():  # the EPSG code is what PROJ calls the system
        if code is not None:
            assert pyproj.CRS.from_user_input(code).is_geographic and crs.parse_crs(code) is system


@pytest.mark.parametrize(("value", "why"), [
    ("utm", "Unsupported coordinate system 'utm'"),
    ("EPSG:9999", "Unsupported coordinate system 'EPSG:9999'"),
    ("EPSG:4545", "'EPSG:4545' is a projected CRS (CGCS2000 / 3-degree Gauss-Kruger CM 108E), not a pin's lon/lat"),
    ("epsg:3857", "'epsg:3857' is a projected CRS"),
    ("EPSG:4214", "'EPSG:4214' is a geographic CRS (Beijing 1954) that pins are not converted from"),
    ("EPSG:4490 ", "Unsupported coordinate system 'EPSG:4490 '"),
    ("x" * 500, "Unsupported coordinate system 'xxxx"),
])
def test_a_refusal_says_why_and_lists_the_accepted_values(value: str, why: str) -> None:
    with pytest.raises(CrsUnsupportedError) as caught:
        crs.parse_crs(value)
    assert caught.value.message.startswith(why)
    assert "use one of wgs84, gcj02, bd09, cgcs2000, EPSG:4326, EPSG:4490" in caught.value.message
    assert len(caught.value.message) < 300
    assert caught.value.details["field"] == "crs" and caught.value.details["allowed"] == list(crs.CRS_NAMES)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=106.3, max_value=106.8), st.floats(min_value=29.4, max_value=29.8),
       st.sampled_from([("EPSG:4326", "wgs84"), ("epsg:4326", "WGS84"), ("EPSG:4490", "cgcs2000"),
                        ("epsg:4490", "CGCS-2000")]))
def test_an_epsg_code_converts_like_its_name(lon: float, lat: float, pair: tuple[str, str]) -> None:
    """A pin given as ``EPSG:4326`` lands on the same local metres as ``wgs84``, ``EPSG:4490`` as ``cgcs2000``
    (R2.1: the meter box, issue 20 item 5)."""
    projector = Projector("EPSG:4545", service_area_wgs84=CHONGQING_AREA)
    by_code, by_name = (pin_to_local(lon, lat, name, projector) for name in pair)
    assert by_code == by_name


def test_cgcs2000_is_wgs84_for_siting() -> None:
    assert crs.to_wgs84(106.55, 29.56, CoordinateSystem.CGCS2000) == (106.55, 29.56)


def test_projector_reference_point() -> None:
    # EPSG:4545 is Gauss-Krüger with central meridian 108°E and false easting 500 km.
    x_m, y_m = Projector("EPSG:4545").project(108.0, 0.0)
    assert x_m == pytest.approx(500_000.0, abs=1e-6)
    assert y_m == pytest.approx(0.0, abs=1e-6)


def test_projector_vectorised_matches_scalar(projector: Projector) -> None:
    lon = np.array([106.3, 106.55, 106.8])
    lat = np.array([29.4, 29.6, 29.8])
    x_m, y_m = projector.project_many(lon, lat)
    for i in range(3):
        assert (x_m[i], y_m[i]) == pytest.approx(projector.project(lon[i], lat[i]), abs=1e-6)
    back_lon, back_lat = projector.unproject_many(x_m, y_m)
    np.testing.assert_allclose(back_lon, lon, atol=1e-9)
    np.testing.assert_allclose(back_lat, lat, atol=1e-9)


@pytest.mark.parametrize(
    ("projected_crs", "outcome"),
    [
        ("EPSG:4545", nullcontext()),  # CGCS2000 GK CM 108E, metres
        ("EPSG:32648", nullcontext()),  # UTM 48N, metres
        ("EPSG:4326", pytest.raises(CrsUnsupportedError)),  # geographic
        ("EPSG:2227", pytest.raises(CrsUnsupportedError)),  # projected, but US survey feet
        ("EPSG:999999", pytest.raises(CrsUnsupportedError)),  # unknown code
    ],
)
def test_projector_requires_metric_projected_crs(projected_crs: str, outcome: Any) -> None:
    with outcome as raised:
        Projector(projected_crs)
    if raised is not None:
        assert raised.value.details["field"] == "projected_crs"


def test_projector_transformers_are_cached() -> None:
    assert Projector("EPSG:4545")._forward is Projector("EPSG:4545")._forward


def test_pin_to_local_wgs84(projector: Projector) -> None:
    pin = pin_to_local(106.55, 29.56, "wgs84", projector)
    assert (pin.lon_wgs84, pin.lat_wgs84) == (106.55, 29.56)
    assert (pin.x_m, pin.y_m) == pytest.approx(projector.project(106.55, 29.56))


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_pin_to_local_converts_offset_datums(projector: Projector, system: str) -> None:
    forward = crs.wgs84_to_gcj02 if system == "gcj02" else crs.wgs84_to_bd09
    lon_in, lat_in = forward(106.55, 29.56)
    pin = pin_to_local(lon_in, lat_in, system, projector)
    assert ground_distance_m(pin.lon_wgs84, pin.lat_wgs84, 106.55, 29.56) < ROUND_TRIP_TOL_M
    x_m, y_m = projector.project(106.55, 29.56)
    assert math.hypot(pin.x_m - x_m, pin.y_m - y_m) < ROUND_TRIP_TOL_M


@pytest.mark.parametrize(
    ("lon", "lat", "system", "error", "code", "field"),
    [
        (math.nan, 29.6, "wgs84", CoordinateInvalidError, "COORDINATE_INVALID", "lon"),
        (106.5, math.inf, "wgs84", CoordinateInvalidError, "COORDINATE_INVALID", "lat"),
        (181.0, 29.6, "wgs84", CoordinateInvalidError, "COORDINATE_INVALID", "lon"),
        (106.5, -90.5, "wgs84", CoordinateInvalidError, "COORDINATE_INVALID", "lat"),
        ("106.5", 29.6, "wgs84", CoordinateInvalidError, "COORDINATE_INVALID", "lon"),  # string
        (106.5, 29.6, "utm", CrsUnsupportedError, "CRS_UNSUPPORTED", "crs"),
        (107.5, 29.6, "wgs84", OutOfServiceAreaError, "OUT_OF_SERVICE_AREA", "lon"),  # east of area
        (106.5, 29.2, "wgs84", OutOfServiceAreaError, "OUT_OF_SERVICE_AREA", "lat"),  # south of area
        # inside the box as typed, but its WGS-84 point (~500 m west) falls outside
        (106.3010, 29.6, "gcj02", OutOfServiceAreaError, "OUT_OF_SERVICE_AREA", "lon"),
    ],
)
def test_pin_to_local_rejects(
    projector: Projector, lon: Any, lat: float, system: str, error: type[SanlingError], code: str, field: str
) -> None:
    with pytest.raises(error) as raised:
        pin_to_local(lon, lat, system, projector)
    assert isinstance(raised.value, SanlingError)
    body = raised.value.to_dict()
    assert body["code"] == code
    assert body["details"]["field"] == field
    # details must be plain JSON (no NaN/inf floats)
    json.dumps(body, allow_nan=False)


def test_pin_without_service_area_accepts_any_valid_point() -> None:
    pin = pin_to_local(2.35, 48.85, "gcj02", Projector("EPSG:4545"))
    assert (pin.lon_wgs84, pin.lat_wgs84) == (2.35, 48.85)


def test_geometry_round_trip(projector: Projector) -> None:
    line_wgs84 = LineString([(106.5, 29.5), (106.51, 29.51)])
    back = projector.geometry_to_wgs84(projector.geometry_to_local(line_wgs84))
    assert back.equals_exact(line_wgs84, 1e-9)
    geojson = projector.geojson_wgs84(projector.geometry_to_local(line_wgs84))
    assert geojson["type"] == "LineString"
    assert isinstance(geojson["coordinates"][0], list)


local_x_m = st.floats(300_000.0, 700_000.0)
local_y_m = st.floats(3_200_000.0, 3_400_000.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(local_x_m, local_y_m), min_size=1, max_size=6))
def test_geojson_fast_paths_equal_the_general_conversion(
        projector: Projector, points: list[tuple[float, float]]) -> None:
    """Points and lines skip shapely.transform + mapping; the GeoJSON must be the same to the last bit."""
    from shapely import Point, geometry

    def general(g: Any) -> dict[str, Any]:
        return json.loads(json.dumps(geometry.mapping(projector.geometry_to_wgs84(g))))

    x_m, y_m = points[0]
    assert projector.geojson_wgs84(Point(x_m, y_m)) == general(Point(x_m, y_m))
    assert projector.geojson_point_wgs84(x_m, y_m) == general(Point(x_m, y_m))
    if len(points) >= 2:
        assert projector.geojson_wgs84(LineString(points)) == general(LineString(points))


@pytest.mark.parametrize(("value", "epsg"), [
    ("EPSG:4545", 4545), ("epsg:4326", 4326), ("wgs84", 4326), ("WGS-84", 4326), ("cgcs2000", 4490),
    ("EPSG:4490", 4490),
])
def test_an_import_crs_takes_any_proj_crs_and_the_pin_names(value: str, epsg: int) -> None:
    """The importer's ``--crs`` (and a mapping's ``crs``) speaks the same names as a pin (issue 20 item 5)."""
    from gis.importing.geometry import _parse_crs

    assert _parse_crs(value, what="--crs").to_epsg() == epsg


@pytest.mark.parametrize("value", ["gcj02", "GCJ-02", "bd09", "bd09ll"])
def test_an_import_in_gcj02_or_bd09_is_refused_with_the_reason(value: str) -> None:
    """GCJ-02 and BD-09 have no PROJ definition: before, ``Unknown CRS 'gcj02'``; now the reason and the way out."""
    from gis.importing import SourceCrsError
    from gis.importing.geometry import _parse_crs

    with pytest.raises(SourceCrsError) as caught:
        _parse_crs(value, what="--crs")
    assert caught.value.code == "IMPORT_CRS_INVALID" and "no EPSG code" in caught.value.message
    assert "EPSG:4326" in caught.value.message and caught.value.details == {"field": "crs", "value": value}
