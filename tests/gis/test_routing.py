"""Tests of gis.routing on a small named street plan (local metres)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import LineString, Point, box

from gis.crs import Projector
from gis.errors import InvalidInputError
from gis.routing import RoadNetwork, route_geojson

# Street plan: arterial A along y=0, secondary S along x=0 (a + junction at the origin),
# lane L along y=100 from S eastwards (a T junction at (0, 100)).
ARTERIAL_A = ("A", "Jiefang Rd", "arterial", LineString([(-200, 0), (200, 0)]))
SECONDARY_S = ("S", "Minzu Rd", "secondary", LineString([(0, -200), (0, 200)]))
LANE_L = ("L", None, "lane", LineString([(0, 100), (150, 100)]))
# A cable-only zone in the south-west quadrant.
ZONE_SW = box(-150, -150, -20, -20)


@pytest.fixture(scope="module")
def city() -> RoadNetwork:
    return RoadNetwork.build([ARTERIAL_A, SECONDARY_S, LANE_L], [ZONE_SW])


def crossing_ids(route: object) -> list[str]:
    return [c.road_id for c in route.crossings]  # type: ignore[attr-defined]


def test_same_side_is_direct(city: RoadNetwork) -> None:
    r = city.route((10.0, 5.0), (60.0, 8.0))
    assert r.method == "direct"
    assert r.length_m == pytest.approx(math.hypot(50, 3))
    assert r.crossings == ()
    assert not r.enters_no_overhead_zone


def test_opposite_side_of_the_street_counts_one_crossing(city: RoadNetwork) -> None:
    r = city.route((50.0, 5.0), (60.0, -5.0))
    assert r.method == "road"
    assert r.length_m == pytest.approx(5 + 10 + 5)
    assert crossing_ids(r) == ["A"]
    assert r.crossings[0].road_class == "arterial"


def test_route_along_a_road_crosses_the_side_street(city: RoadNetwork) -> None:
    # north-east to north-west: along A's north side, across the mouth of S
    r = city.route((50.0, 5.0), (-50.0, 5.0))
    assert r.method == "road"
    assert r.length_m == pytest.approx(110.0)
    assert crossing_ids(r) == ["S"]
    assert Point(0, 0).distance(r.line_local) < 1e-9


def test_turning_into_a_side_street(city: RoadNetwork) -> None:
    # start north of A (east of S), end west of S (north of A): runs along A then up S
    r = city.route((30.0, 4.0), (-6.0, 60.0))
    assert r.method == "road"
    assert r.length_m == pytest.approx(4 + 30 + 60 + 6)
    # the line joins S from the east and leaves it westwards: S is crossed; A is not
    assert crossing_ids(r) == ["S"]


def test_route_ends_are_the_inputs(city: RoadNetwork) -> None:
    r = city.route((120.0, 110.0), (-40.0, -70.0))
    coords = list(r.line_local.coords)
    assert coords[0] == (120.0, 110.0)
    assert coords[-1] == (-40.0, -70.0)
    assert r.length_m == pytest.approx(r.line_local.length)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ((-100.0, -5.0), (-100.0, -100.0), True),  # meter box inside the zone
        ((-10.0, -10.0), (-10.0, -190.0), False),  # along the zone's east side, never entering it
        ((-160.0, -60.0), (-10.0, -60.0), True),  # straight through the zone (crosses S -> road)
    ],
)
def test_no_overhead_zone(
    city: RoadNetwork, start: tuple[float, float], end: tuple[float, float], expected: bool
) -> None:
    assert city.route(start, end).enters_no_overhead_zone is expected


def test_without_roads_uses_detour_factor() -> None:
    r = RoadNetwork.build([], [], detour_factor=1.3).route((0.0, 0.0), (30.0, 40.0))
    assert (r.method, r.length_m, r.crossings) == ("straight_fallback", pytest.approx(65.0), ())
    assert r.line_local.length == pytest.approx(50.0)


def test_disconnected_roads_fall_back_to_straight_with_crossings() -> None:
    net = RoadNetwork.build(
        [
            ("N", "North", "branch", LineString([(-50, 10), (50, 10)])),
            ("M", "Mid", "branch", LineString([(-50, 0), (50, 0)])),
        ],
        [],
    )
    r = net.route((0.0, 20.0), (0.0, -5.0))
    assert r.method == "straight_fallback"
    assert r.length_m == pytest.approx(25 * 1.3)
    assert crossing_ids(r) == ["N", "M"]


def test_ring_road() -> None:
    ring = LineString([(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)])
    net = RoadNetwork.build([("R", "Ring", "branch", ring)], [])
    r = net.route((50.0, -5.0), (50.0, 105.0))  # south of the ring to north of it, outside
    assert r.method == "road"
    assert r.length_m == pytest.approx(5 + 50 + 100 + 50 + 5)
    assert r.crossings == ()  # runs round the outside: never crosses the ring
    assert crossing_ids(net.route((50.0, -5.0), (50.0, 95.0))) == ["R"]  # outside to inside


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError):
        RoadNetwork.build([("X", None, "lane", Point(0, 0))], [])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        RoadNetwork.build([], [], detour_factor=0.9)
    with pytest.raises(InvalidInputError):
        RoadNetwork.build([], []).route((math.nan, 0.0), (1.0, 1.0))


coordinate = st.floats(-190.0, 190.0)


@settings(max_examples=80, deadline=None)
@given(coordinate, coordinate, coordinate, coordinate)
def test_route_invariants(city: RoadNetwork, x0: float, y0: float, x1: float, y1: float) -> None:
    r = city.route((x0, y0), (x1, y1))
    straight_m = math.hypot(x1 - x0, y1 - y0)
    assert r.length_m >= straight_m - 1e-6
    assert r.method in ("direct", "road")
    if r.method == "direct":
        assert r.crossings == ()
    assert r.line_local.coords[0] == pytest.approx((x0, y0))
    assert r.line_local.coords[-1] == pytest.approx((x1, y1))
    assert len({c.road_id for c in r.crossings}) == len(r.crossings)


def test_route_geojson_is_wgs84() -> None:
    projector = Projector("EPSG:4545")
    x_m, y_m = projector.project(106.55, 29.56)
    r = RoadNetwork.build([], []).route((x_m, y_m), (x_m + 100.0, y_m))
    geojson = route_geojson(r, projector)
    assert geojson["type"] == "LineString"
    lon, lat = geojson["coordinates"][0]
    assert (lon, lat) == pytest.approx((106.55, 29.56), abs=1e-9)
    body = r.to_dict(projector)
    assert body["method"] == "straight_fallback" and body["geometry"] == geojson


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=4), coordinate, coordinate)
def test_route_many_is_route_from_each_start(city: RoadNetwork, starts: list[tuple[float, float]],
                                             x1: float, y1: float) -> None:
    """R4.1: routing a meter box's candidates together gives each candidate's own route."""
    together = city.route_many(starts, (x1, y1))
    for start, route in zip(starts, together, strict=True):
        alone = city.route(start, (x1, y1))
        assert route.line_local.equals_exact(alone.line_local, 0.0)
        assert (route.length_m, route.method, route.crossings, route.enters_no_overhead_zone) == (
            alone.length_m, alone.method, alone.crossings, alone.enters_no_overhead_zone)


vertex = st.tuples(st.floats(-500.0, 500.0), st.floats(-500.0, 500.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(vertex, min_size=2, max_size=8, unique=True), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_oriented_piece_of_a_street_matches_shapely_substring(
        points: list[tuple[float, float]], a: float, b: float) -> None:
    """The hand-written piece of a road edge is shapely's substring, oriented from the first distance.

    (Distances are projections onto the edge, so within [0, length]; shapely reads negative ones from the end.)
    """
    from shapely.ops import substring

    from gis.routing import _oriented_coords

    line = LineString(points)
    if line.length == 0.0:
        return
    from_m, to_m = a * line.length, b * line.length
    ours = LineString(_oriented_coords(line, from_m, to_m))
    reference = substring(line, min(from_m, to_m), max(from_m, to_m))
    expected_length = 0.0 if reference.geom_type == "Point" else reference.length
    assert ours.length == pytest.approx(expected_length, abs=1e-6)
    low_m, high_m = sorted((from_m, to_m))
    first, last = line.interpolate(low_m), line.interpolate(high_m)
    if from_m > to_m:
        first, last = last, first
    assert Point(ours.coords[0]).distance(first) < 1e-6
    assert Point(ours.coords[-1]).distance(last) < 1e-6
    assert line.buffer(1e-6).covers(ours)
