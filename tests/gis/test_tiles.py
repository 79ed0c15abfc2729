"""Tile maths, the MVT encoder (checked by mapbox-vector-tile's decoder) and hexagonal cells."""

from __future__ import annotations

from contextlib import nullcontext

import mapbox_vector_tile
import numpy as np
import pyproj
import pytest
from shapely import LineString, MultiLineString, Point, Polygon, box

from gis.hexgrid import hex_cells, hex_centre_m, hex_polygon_m, hex_ring
from gis.mvt import (
    SMALL_LAYER_FEATURES,
    AttributeColumn,
    AttributeTable,
    encode_line_or_polygon_layer,
    encode_point_layer,
)
from gis.tiles import (
    DEFAULT_EXTENT,
    TileOutOfRangeError,
    TileZoomInvalidError,
    lonlat_to_mercator,
    mercator_to_lonlat,
    quantise_points,
    select_points,
    tile_bounds,
    tile_geometries,
    tiles_covering,
)

TOL_M = 1e-6  # closed-form web mercator vs PROJ, metres


def decode(tile: bytes) -> dict:
    return mapbox_vector_tile.decode(tile, default_options={"y_coord_down": True})


def test_mercator_matches_proj() -> None:
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-180, 180, 500), rng.uniform(-85, 85, 500)
    x_m, y_m = lonlat_to_mercator(lon, lat)
    px, py = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
    assert np.max(np.abs(x_m - px)) < TOL_M and np.max(np.abs(y_m - py)) < 1e-3
    back_lon, back_lat = mercator_to_lonlat(x_m, y_m)
    assert np.allclose(back_lon, lon, atol=1e-9) and np.allclose(back_lat, lat, atol=1e-9)


def test_tile_bounds_tile_the_world() -> None:
    b = tile_bounds(14, 13038, 6785)
    right, below = tile_bounds(14, 13039, 6785), tile_bounds(14, 13038, 6786)
    assert right.min_x_m == pytest.approx(b.max_x_m) and below.max_y_m == pytest.approx(b.min_y_m)
    lon0, lat0, lon1, lat1 = b.wgs84()
    assert lon0 < 106.49 < lon1 and lat0 < 29.51 < lat1  # the demo district
    assert (13038, 6785) in tiles_covering(14, 106.49, 29.50, 106.49, 29.50)


@pytest.mark.parametrize(("z", "x", "y", "expected"), [
    (0, 0, 0, nullcontext()),
    (22, (1 << 22) - 1, 0, nullcontext()),
    (-1, 0, 0, pytest.raises(TileZoomInvalidError)),    # below zoom 0
    (23, 0, 0, pytest.raises(TileZoomInvalidError)),    # above MAX_ZOOM
    (3, 8, 0, pytest.raises(TileOutOfRangeError)),      # column past 2**z − 1
    (3, 0, -1, pytest.raises(TileOutOfRangeError)),     # negative row
])
def test_tile_address_checks(z: int, x: int, y: int, expected: object) -> None:
    with expected:  # type: ignore[attr-defined]
        tile_bounds(z, x, y)


def test_select_points_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(2)
    x, y = np.sort(rng.uniform(0, 100, 2000)), rng.uniform(0, 100, 2000)
    for _ in range(50):
        x0, y0 = rng.uniform(0, 90, 2)
        box_m = (x0, y0, x0 + rng.uniform(0, 10), y0 + rng.uniform(0, 10))
        brute = np.flatnonzero((x >= box_m[0]) & (x <= box_m[2]) & (y >= box_m[1]) & (y <= box_m[3]))
        assert select_points(x, y, box_m).tolist() == brute.tolist()


@pytest.mark.parametrize("n", [SMALL_LAYER_FEATURES, SMALL_LAYER_FEATURES + 1, 300])  # Python loop, numpy, numpy
def test_point_layer_round_trips_through_the_reference_decoder(n: int) -> None:
    b = tile_bounds(14, 13038, 6785)
    rng = np.random.default_rng(3)
    x_m = rng.uniform(b.min_x_m, b.max_x_m, n)
    y_m = rng.uniform(b.min_y_m, b.max_y_m, n)
    px, py = quantise_points(x_m, y_m, b)
    rates = np.round(rng.uniform(0, 120, n), 2)
    rates[5] = np.nan  # no value: no tag
    columns = [AttributeColumn.from_values("asset_id", [f"T-{i % 40:05d}" for i in range(n)]),  # repeated values
               AttributeColumn.from_values("load_rate_pct", rates),
               AttributeColumn.from_values("in_service", [i % 3 != 0 for i in range(n)]),
               AttributeColumn.from_values("count", [i - 150 for i in range(n)])]
    positions = np.arange(n, dtype=np.int64)[::-1].copy()
    positions[:3] = positions[3]  # one row may appear as several features
    ids = np.arange(n, dtype=np.int64) * 1000 + 7  # multi-byte varints
    tile = encode_point_layer("transformers", px[positions], py[positions], columns, positions,
                              feature_ids=ids[positions])
    table = AttributeTable.from_columns(columns)  # the joint value table a snapshot keeps: the same bytes
    assert encode_point_layer("transformers", px[positions], py[positions], table, positions,
                              feature_ids=ids[positions]) == tile
    features = decode(tile)["transformers"]["features"]
    assert len(features) == n
    for feature, i in zip(features, positions.tolist(), strict=True):
        assert feature["id"] == ids[i]
        assert feature["geometry"]["coordinates"] == [int(px[i]), int(py[i])]
        props = feature["properties"]
        assert props["asset_id"] == f"T-{i % 40:05d}" and props["in_service"] == (i % 3 != 0)
        assert props["count"] == i - 150
        assert ("load_rate_pct" not in props) if i == 5 else props["load_rate_pct"] == rates[i]
    assert px.min() >= 0 and px.max() <= DEFAULT_EXTENT


def test_lines_and_polygons_are_clipped_oriented_and_decoded() -> None:
    b = tile_bounds(0, 0, 0)
    half = b.max_x_m
    shell = [(-half / 2, -half / 2), (half / 2, -half / 2), (half / 2, half / 2), (-half / 2, half / 2)]
    hole = [(-half / 8, -half / 8), (-half / 8, half / 8), (half / 8, half / 8), (half / 8, -half / 8)]
    geoms = np.array([
        Polygon(shell, [hole]),                                          # counter-clockwise shell in EPSG:3857
        MultiLineString([[(-2 * half, 0), (0, 0)], [(0, half / 4), (half / 4, half / 4)]]),
        LineString([(0, 0), (1.0, 1.0)]),                                # collapses to one point when rounded
    ], dtype=object)
    tiled = tile_geometries(geoms, b, buffer_px=64)
    columns = [AttributeColumn.from_values("name", ["area", "line", "tiny"])]
    polygon = decode(encode_line_or_polygon_layer("areas", tiled[:1], "polygon", columns, np.array([0])))
    rings = polygon["areas"]["features"][0]["geometry"]["coordinates"]
    assert polygon["areas"]["features"][0]["geometry"]["type"] == "Polygon" and len(rings) == 2
    assert sorted(map(tuple, rings[0][:-1])) == [(1024, 1024), (1024, 3072), (3072, 1024), (3072, 3072)]
    lines = decode(encode_line_or_polygon_layer("lines", tiled[1:], "linestring", columns, np.array([1, 2])))
    assert [f["properties"]["name"] for f in lines["lines"]["features"]] == ["line"]  # the tiny line is dropped
    first, second = lines["lines"]["features"][0]["geometry"]["coordinates"]
    assert first == [[-64, 2048], [2048, 2048]] and second == [[2048, 1536], [2560, 1536]]  # clipped at the buffer


def test_empty_layer_encodes_to_nothing() -> None:
    column = AttributeColumn.from_values("k", np.empty(0))
    assert encode_point_layer("x", np.empty(0, np.int64), np.empty(0, np.int64), [column],
                              np.empty(0, np.int64)) == b""
    assert encode_line_or_polygon_layer("x", [box(0, 0, 0, 0)], "polygon", [column], np.array([0])) == b""


def test_hex_cells_pick_the_nearest_centre() -> None:
    rng = np.random.default_rng(4)
    size_m = 500.0
    x, y = rng.uniform(-5000, 5000, 3000), rng.uniform(-5000, 5000, 3000)
    q, r = hex_cells(x, y, size_m)
    for i in range(0, 3000, 7):
        candidates = hex_ring(int(q[i]), int(r[i]))
        distances = [np.hypot(x[i] - cx, y[i] - cy) for cx, cy in (hex_centre_m(a, b, size_m) for a, b in candidates)]
        assert distances[0] <= min(distances) + 1e-9
        assert hex_polygon_m(int(q[i]), int(r[i]), size_m).buffer(1e-6).contains(Point(x[i], y[i]))
