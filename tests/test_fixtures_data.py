"""The demo district in fixtures/demo/ and fixtures/sample_applications.csv keep their promises.

Layers follow the table contracts of docs/architecture.md, the network is physically plausible
(standard ratings, 40-50 m spans, poles on the street side, cables only in the no-overhead zone),
the samples cover every job class, and the seeded generator reproduces the committed files exactly.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import math
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
DEMO = FIXTURES / "demo"
SAMPLES = FIXTURES / "sample_applications.csv"
GENERATOR = FIXTURES / "generate_demo.py"

#: Columns of each layer: the table's columns without ``id`` and ``geom`` (docs/architecture.md).
LAYER_COLUMNS: dict[str, tuple[str, ...]] = {
    "grid_areas": ("code", "name", "area_type", "customer_manager", "project_manager"),
    "transformers": ("asset_id", "name", "rated_kva", "peak_kva", "peak_at", "reserved_kva", "grid_area_code",
                     "status"),
    "lv_lines": ("asset_id", "transformer_asset_id", "kind", "conductor_type"),
    "access_points": ("asset_id", "transformer_asset_id", "kind"),
    "roads": ("asset_id", "name", "road_class", "width_m"),
    "no_overhead_zones": ("asset_id", "name"),
}
GEOMETRY_TYPES = {"grid_areas": "MultiPolygon", "transformers": "Point", "lv_lines": "LineString",
                  "access_points": "Point", "roads": "LineString", "no_overhead_zones": "MultiPolygon"}
CSV_COLUMNS = ["app_id", "lon", "lat", "crs", "kw", "phases", "category", "area_type", "expected_job_class",
               "reason"]
JOB_CLASSES = ("direct_meter", "overhead", "underground_cable", "transformer_upgrade")
STANDARD_RATINGS = {100, 200, 315, 400, 500, 630, 800}
EXCAVATION = {"arterial", "secondary"}

_TO_METRES = Transformer.from_crs("EPSG:4326", "EPSG:4545", always_xy=True)


def to_metres(geom: BaseGeometry) -> BaseGeometry:
    """WGS-84 geometry → EPSG:4545."""
    return shapely.transform(geom, lambda x, y: _TO_METRES.transform(x, y), interleaved=False)


@cache
def layer(name: str) -> dict[str, Any]:
    """The parsed FeatureCollection of one layer."""
    return json.loads((DEMO / f"{name}.geojson").read_text(encoding="utf-8"))


def features(name: str) -> list[dict[str, Any]]:
    """The features of one layer."""
    return layer(name)["features"]


@cache
def metric(name: str) -> list[tuple[dict[str, Any], BaseGeometry]]:
    """(properties, EPSG:4545 geometry) of every feature of a layer."""
    return [(f["properties"], to_metres(shape(f["geometry"]))) for f in features(name)]


@cache
def samples() -> list[dict[str, str]]:
    """The rows of sample_applications.csv."""
    with SAMPLES.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@cache
def generator() -> ModuleType:
    """The generator script, imported as a module."""
    spec = importlib.util.spec_from_file_location("generate_demo", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_demo"] = module
    spec.loader.exec_module(module)
    return module


def load_pct(props: dict[str, Any]) -> float:
    """Present peak load rate of a transformer, in percent."""
    return 100.0 * (props["peak_kva"] + props["reserved_kva"]) / props["rated_kva"]


# ------------------------------------------------------------------------------------------- files and format

@pytest.mark.parametrize("name", sorted(LAYER_COLUMNS))
def test_layer_file_is_rfc7946_geojson_with_contract_columns(name: str) -> None:
    fc = layer(name)
    assert fc["type"] == "FeatureCollection"
    assert "crs" not in fc, "RFC 7946 has no crs member (WGS-84 is implied)"
    assert fc["features"], f"{name} is empty"
    for feat in fc["features"]:
        assert feat["type"] == "Feature"
        assert tuple(feat["properties"]) == LAYER_COLUMNS[name]
        assert feat["geometry"]["type"] == GEOMETRY_TYPES[name]


@pytest.mark.parametrize("name", sorted(LAYER_COLUMNS))
def test_layer_file_reads_with_pyogrio_in_wgs84(name: str) -> None:
    frame = gpd.read_file(DEMO / f"{name}.geojson", engine="pyogrio")
    assert frame.crs is not None and frame.crs.to_epsg() == 4326
    assert set(LAYER_COLUMNS[name]) <= set(frame.columns)
    assert len(frame) == len(features(name))
    assert frame.geometry.is_valid.all()
    assert not frame.geometry.is_empty.any()


def _all_coordinates(value: Any) -> list[list[float]]:
    if isinstance(value[0], int | float):
        return [value]
    out: list[list[float]] = []
    for item in value:
        out.extend(_all_coordinates(item))
    return out


@pytest.mark.parametrize("name", sorted(LAYER_COLUMNS))
def test_coordinates_are_lonlat_near_chongqing_rounded_to_7_decimals(name: str) -> None:
    for feat in features(name):
        for lon, lat in _all_coordinates(feat["geometry"]["coordinates"]):
            assert 106.47 < lon < 106.53 and 29.48 < lat < 29.52
            assert round(lon, 7) == lon and round(lat, 7) == lat


@pytest.mark.parametrize("name", ["grid_areas", "no_overhead_zones"])
def test_polygons_are_valid_with_counter_clockwise_exterior_rings(name: str) -> None:
    for feat in features(name):
        geom = shape(feat["geometry"])
        assert geom.is_valid
        for part in geom.geoms:
            assert part.exterior.is_ccw


def test_asset_ids_are_unique_per_layer_and_across_assets() -> None:
    ids = [f["properties"]["asset_id"] for name in ("transformers", "lv_lines", "access_points", "roads",
                                                    "no_overhead_zones") for f in features(name)]
    assert len(ids) == len(set(ids))
    codes = [f["properties"]["code"] for f in features("grid_areas")]
    assert len(codes) == len(set(codes))


# ------------------------------------------------------------------------------------------- transformers

def test_at_least_48_in_service_transformers_of_standard_ratings() -> None:
    trs = [f["properties"] for f in features("transformers")]
    assert len(trs) >= 48
    for t in trs:
        assert t["rated_kva"] in STANDARD_RATINGS
        assert t["status"] == "in_service"
        assert t["reserved_kva"] == 0
        assert 0 < t["peak_kva"] < t["rated_kva"]
        assert t["peak_at"].startswith("2026-08-") and t["peak_at"].endswith("+08:00")


def test_load_rate_spread_covers_every_threshold_class() -> None:
    bands = Counter()
    for f in features("transformers"):
        pct = load_pct(f["properties"])
        bands["<50" if pct < 50 else "50-70" if pct < 70 else "70-80" if pct <= 80 else ">80"] += 1
    total = sum(bands.values())
    assert bands["<50"] > total / 2, bands
    assert bands["50-70"] >= 5, bands
    assert bands["70-80"] >= 3, bands
    assert bands[">80"] >= 5, bands


def test_exactly_one_grid_area_is_under_precontrol() -> None:
    allowable = Counter()
    for f in features("transformers"):
        t = f["properties"]
        allowable[t["grid_area_code"]] += t["rated_kva"] * 0.8 - t["peak_kva"] - t["reserved_kva"]
    under = [code for code in allowable if allowable[code] < 160.0]
    assert len(under) == 1, allowable
    assert all(allowable[code] >= 160.0 for code in allowable if code not in under)


def test_transformers_lie_in_their_grid_area() -> None:
    areas = {p["code"]: g for p, g in metric("grid_areas")}
    for props, geom in metric("transformers"):
        assert areas[props["grid_area_code"]].contains(geom), props["asset_id"]


# ------------------------------------------------------------------------------------------- grid areas and zone

def test_four_grid_areas_with_1_plus_1_teams_covering_the_district() -> None:
    areas = [f["properties"] for f in features("grid_areas")]
    assert len(areas) >= 4
    assert Counter(a["area_type"] for a in areas) == Counter({"urban": len(areas) - 1, "rural": 1})
    people = [a["customer_manager"] for a in areas] + [a["project_manager"] for a in areas]
    assert all(people) and len(set(people)) == len(people), "each grid area has its own 1+1 team"
    geoms = [g for _p, g in metric("grid_areas")]
    for i, a in enumerate(geoms):
        for b in geoms[i + 1:]:
            assert a.intersection(b).area < 1.0, "grid areas overlap"
    union = unary_union(geoms)
    minx, miny, maxx, maxy = union.bounds
    assert 2900 < maxx - minx < 3100 and 2400 < maxy - miny < 2600
    assert union.area > 0.99 * (maxx - minx) * (maxy - miny)


def test_the_rural_grid_area_is_at_the_district_edge() -> None:
    union = unary_union([g for _p, g in metric("grid_areas")])
    rural = next(g for p, g in metric("grid_areas") if p["area_type"] == "rural")
    assert rural.boundary.intersection(union.boundary).length > 1000.0


def test_one_no_overhead_zone_with_cables_inside_and_overhead_lines_outside() -> None:
    zones = metric("no_overhead_zones")
    assert len(zones) == 1
    zone = zones[0][1]
    for props, geom in metric("lv_lines"):
        if props["kind"] == "overhead":
            assert not geom.intersects(zone), props["asset_id"]
        else:
            assert props["kind"] == "cable"
            assert zone.buffer(0.5).contains(geom), props["asset_id"]
    kinds_inside = {p["kind"] for p, g in metric("access_points") if zone.contains(g)}
    assert kinds_inside == {"branch_box"}


# ------------------------------------------------------------------------------------------- LV network

def test_every_line_and_access_point_references_an_existing_transformer() -> None:
    tr_ids = {f["properties"]["asset_id"] for f in features("transformers")}
    for name in ("lv_lines", "access_points"):
        for f in features(name):
            assert f["properties"]["transformer_asset_id"] in tr_ids, f["properties"]["asset_id"]


def test_lines_are_made_of_their_transformer_and_its_supports() -> None:
    tr_at = {p["asset_id"]: g for p, g in metric("transformers")}
    aps: dict[str, list[tuple[str, Point]]] = {}
    for p, g in metric("access_points"):
        aps.setdefault(p["transformer_asset_id"], []).append((p["kind"], g))
    used = set()
    for props, line in metric("lv_lines"):
        tid = props["transformer_asset_id"]
        want = "pole" if props["kind"] == "overhead" else "branch_box"
        coords = list(line.coords)
        first = Point(coords[0])
        own = aps.get(tid, [])
        assert first.distance(tr_at[tid]) < 0.05 or any(first.distance(g) < 0.05 for _k, g in own), props
        for xy in coords[1:]:
            match = [(k, g) for k, g in own if g.distance(Point(xy)) < 0.05]
            assert match and match[0][0] == want, (props["asset_id"], xy)
            used.add((tid, round(xy[0], 1), round(xy[1], 1)))
        expected_conductor = "JKLYJ-1kV-" if props["kind"] == "overhead" else "YJLV22-0.6/1kV-"
        assert props["conductor_type"].startswith(expected_conductor)
    assert len(used) == len(features("access_points")), "every support is a vertex of its transformer's line"


def test_spans_are_40_to_50_m_overhead_and_60_to_90_m_between_branch_boxes() -> None:
    for props, line in metric("lv_lines"):
        coords = list(line.coords)
        spans = [math.dist(a, b) for a, b in itertools.pairwise(coords)]
        lo, hi = (40.0, 50.0) if props["kind"] == "overhead" else (60.0, 90.0)
        assert all(lo - 0.5 <= s <= hi + 0.5 for s in spans), (props["asset_id"], spans)


def test_supports_stand_on_the_street_side_not_in_a_carriageway() -> None:
    roads = metric("roads")
    for props, pt in metric("access_points"):
        distances = [(g.distance(pt), r["width_m"]) for r, g in roads]
        assert all(d >= w / 2 + 1.0 for d, w in distances), props["asset_id"]
        # The street it serves: the centre line is width/2 + 2 m away.
        assert any(abs(d - (w / 2 + 2.0)) < 0.3 for d, w in distances), props["asset_id"]


def test_lines_never_cross_an_arterial_or_secondary_road() -> None:
    excavation = [g for r, g in metric("roads") if r["road_class"] in EXCAVATION]
    for props, line in metric("lv_lines"):
        assert not any(line.intersects(road) for road in excavation), props["asset_id"]


def test_road_classes_widths_and_a_few_bent_streets() -> None:
    widths = {"arterial": (30, 40), "secondary": (20, 24), "branch": (12, 16), "lane": (6, 6)}
    classes = Counter()
    bent = 0
    for props, line in metric("roads"):
        lo, hi = widths[props["road_class"]]
        assert lo <= props["width_m"] <= hi, props
        assert props["name"]
        classes[props["road_class"]] += 1
        ends = LineString([line.coords[0], line.coords[-1]])
        bent += line.hausdorff_distance(ends) > 8.0
    assert classes["arterial"] >= 2 and classes["secondary"] >= 2 and classes["branch"] >= 8
    assert classes["lane"] >= 5
    assert bent >= 3, "not a perfect lattice"


# ------------------------------------------------------------------------------------------- samples

def test_samples_have_the_contract_columns_and_cover_every_job_class() -> None:
    with SAMPLES.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == CSV_COLUMNS
    rows = samples()
    assert len(rows) >= 30
    per_class = Counter(r["expected_job_class"] for r in rows)
    assert set(per_class) == set(JOB_CLASSES)
    assert all(per_class[c] >= 6 for c in JOB_CLASSES), per_class
    assert len({r["app_id"] for r in rows}) == len(rows)


def test_samples_mix_coordinate_systems_and_valid_requests() -> None:
    rows = samples()
    crs = Counter(r["crs"] for r in rows)
    assert set(crs) <= {"wgs84", "gcj02", "bd09", "cgcs2000"}
    assert crs["gcj02"] >= 3 and crs["bd09"] >= 3 and crs["cgcs2000"] >= 1
    assert crs["wgs84"] > len(rows) / 2
    for r in rows:
        kw, phases = int(r["kw"]), int(r["phases"])
        assert 5 <= kw <= 160
        assert phases in (1, 3) and (phases == 3 or kw <= 10)
        assert r["category"] in ("small_enterprise", "individual_business")
        assert r["area_type"] in ("urban", "rural")
        assert r["reason"].strip()


def test_sample_area_type_is_that_of_the_grid_area_under_the_pin() -> None:
    from gis.crs import to_wgs84

    areas = metric("grid_areas")
    for r in samples():
        lon, lat = to_wgs84(float(r["lon"]), float(r["lat"]), r["crs"])
        pin = to_metres(Point(lon, lat))
        holding = [p for p, g in areas if g.contains(pin)]
        assert len(holding) == 1 and holding[0]["area_type"] == r["area_type"], r["app_id"]


def test_every_expected_job_class_is_backed_by_the_recomputed_facts() -> None:
    per_class = generator().verify_samples(DEMO, SAMPLES)
    assert all(per_class[c] >= 6 for c in JOB_CLASSES)


def test_layer_self_check_passes() -> None:
    summary = generator().verify_layers(DEMO)
    assert summary["precontrol"] == [p["code"] for p in (f["properties"] for f in features("grid_areas"))
                                     if p["area_type"] == "rural"]


# ------------------------------------------------------------------------------------------- determinism

def test_generator_reproduces_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    csv_path = tmp_path / "sample_applications.csv"
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(out), "--samples-csv", str(csv_path)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    for name in LAYER_COLUMNS:
        assert (out / f"{name}.geojson").read_bytes() == (DEMO / f"{name}.geojson").read_bytes(), name
    assert csv_path.read_bytes() == SAMPLES.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in DEMO.iterdir())
