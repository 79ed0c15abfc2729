"""OGC API – Features as QGIS's OAPIF provider calls it, and the MVT tiles, on SpatiaLite and PostGIS (issue 6)."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.identity.auth import Role
from gis.tiles import tiles_covering
from tests.app.auth_helpers import auth_headers, make_user

BASE = "/api/v1/features"
COLLECTIONS = ["transformers", "lv_lines", "access_points", "grid_areas", "roads", "no_overhead_zones"]
QGIS_ACCEPT = {"Accept": "application/geo+json, application/json"}
DEMO_BBOX = (106.48, 29.48, 106.52, 29.52)


@pytest.fixture(scope="module")
def planner(planner_headers: dict[str, str]) -> dict[str, str]:
    return {**QGIS_ACCEPT, **planner_headers}


def link(document: dict, rel: str) -> str:
    return next(item["href"] for item in document["links"] if item["rel"] == rel)


def test_qgis_discovery_sequence(client: TestClient, planner: dict[str, str]) -> None:
    landing = client.get(BASE, headers=QGIS_ACCEPT)  # the landing page and conformance need no token
    assert landing.status_code == 200
    conformance = client.get(link(landing.json(), "conformance"), headers=QGIS_ACCEPT).json()
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conformance["conformsTo"]
    collections = client.get(link(landing.json(), "data"), headers=planner).json()["collections"]
    assert [c["id"] for c in collections] == COLLECTIONS
    for collection in collections:
        described = client.get(link(collection, "self"), headers=planner).json()
        west, south, east, north = described["extent"]["spatial"]["bbox"][0]
        assert DEMO_BBOX[0] < west < east < DEMO_BBOX[2] and DEMO_BBOX[1] < south < north < DEMO_BBOX[3]
        sample = client.get(link(collection, "items") + "?limit=10", headers=planner)
        assert sample.status_code == 200 and sample.headers["content-type"].startswith("application/geo+json")
        assert sample.json()["numberReturned"] == min(10, sample.json()["numberMatched"]) > 0
        bbox = ",".join(str(v) for v in described["extent"]["spatial"]["bbox"][0])
        everything = client.get(link(collection, "items") + f"?limit=1000&bbox={bbox}", headers=planner).json()
        assert everything["numberMatched"] == everything["numberReturned"] == sample.json()["numberMatched"]


def test_next_links_page_through_every_feature_once(client: TestClient, planner: dict[str, str]) -> None:
    url: str | None = f"{BASE}/collections/access_points/items?limit=70"
    seen: list[str] = []
    pages = 0
    while url:
        page = client.get(url, headers=planner).json()
        seen += [feature["id"] for feature in page["features"]]
        pages += 1
        url = next((item["href"] for item in page["links"] if item["rel"] == "next"), None)
        if pages > 1:
            assert any(item["rel"] == "prev" for item in page["links"])
    assert len(seen) == len(set(seen)) == page["numberMatched"] and pages == -(-len(seen) // 70)


def test_bbox_filters_and_items_are_rfc7946(client: TestClient, planner: dict[str, str]) -> None:
    everything = client.get(f"{BASE}/collections/transformers/items?limit=1000", headers=planner).json()
    west = client.get(f"{BASE}/collections/transformers/items?bbox=106.48,29.48,106.50,29.52",
                      headers=planner).json()
    lons = [f["geometry"]["coordinates"][0] for f in everything["features"]]
    assert west["numberMatched"] == sum(lon <= 106.50 for lon in lons) > 0
    feature = west["features"][0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
    assert {"threshold_class", "projected_class", "load_rate_pct", "spare_kva", "reserved_kva"} <= set(
        feature["properties"])
    one = client.get(f"{BASE}/collections/transformers/items/{feature['id']}", headers=planner)
    assert one.status_code == 200 and one.json()["properties"] == feature["properties"]


@pytest.mark.parametrize(("path", "status", "code"), [
    (f"{BASE}/collections/poles", 404, "COLLECTION_NOT_FOUND"),
    (f"{BASE}/collections/transformers/items/NOPE", 404, "FEATURE_NOT_FOUND"),
    (f"{BASE}/collections/transformers/items?bbox=1,2,3", 422, "BBOX_INVALID"),           # three numbers
    (f"{BASE}/collections/transformers/items?bbox=107,29,106,30", 422, "BBOX_INVALID"),   # min lon > max lon
    (f"{BASE}/collections/transformers/items?limit=0", 422, "REQUEST_INVALID"),
])
def test_feature_errors_carry_codes(client: TestClient, planner: dict[str, str], path: str, status: int,
                                    code: str) -> None:
    response = client.get(path, headers=planner)
    assert (response.status_code, response.json()["code"]) == (status, code)


@pytest.mark.parametrize("path", [f"{BASE}/collections", f"{BASE}/collections/transformers/items",
                                  f"{BASE}/collections/grid_areas/items/CQ-YB-01",
                                  "/tiles/transformers/14/13038/6785.mvt"])
def test_network_data_refuses_anonymous_and_wrong_roles(client: TestClient, demo_engine: Engine, path: str) -> None:
    assert client.get(path).status_code == 401
    for role in (Role.CUSTOMER, Role.PROJECT_MANAGER):
        denied = client.get(path, headers=auth_headers(client, make_user(demo_engine, role)))
        assert denied.status_code == 403 and denied.json()["code"] == "FORBIDDEN"
    gis_admin = client.get(path, headers=auth_headers(client, make_user(demo_engine, Role.GIS_ADMIN)))
    assert gis_admin.status_code == 200


def test_tiles_show_every_threshold_class(client: TestClient, planner: dict[str, str]) -> None:
    classes: set[str] = set()
    ids: set[str] = set()
    for x, y in tiles_covering(14, *DEMO_BBOX):
        response = client.get(f"/tiles/transformers/14/{x}/{y}.mvt", headers=planner)
        if response.status_code == 204:
            continue
        assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        features = mapbox_vector_tile.decode(response.content)["transformers"]["features"]
        classes |= {f["properties"]["threshold_class"] for f in features}
        ids |= {f["properties"]["asset_id"] for f in features}
    assert classes == {"<50", "50-70", "70-80", ">80"} and len(ids) == 54


def test_all_layers_tile_and_etag(client: TestClient, planner: dict[str, str]) -> None:
    response = client.get("/tiles/all/14/13038/6785.mvt", headers=planner)
    layers = mapbox_vector_tile.decode(response.content)
    assert {"transformers", "lv_lines", "access_points", "grid_areas", "roads"} <= set(layers)
    assert layers["grid_areas"]["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    again = client.get("/tiles/all/14/13038/6785.mvt", headers={**planner, "If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/tiles/transformers/3/0/0.mvt", 204, None),                       # no feature there
    ("/tiles/transformers/23/0/0.mvt", 422, "TILE_ZOOM_INVALID"),
    ("/tiles/transformers/3/8/0.mvt", 404, "TILE_OUT_OF_RANGE"),
    ("/tiles/transformers/3/0/-1.mvt", 404, "TILE_OUT_OF_RANGE"),
    ("/tiles/transformers/3/a/0.mvt", 422, "REQUEST_INVALID"),
    ("/tiles/poles/3/0/0.mvt", 404, "LAYER_NOT_FOUND"),
])
def test_tile_errors(client: TestClient, planner: dict[str, str], path: str, status: int, code: str | None) -> None:
    response = client.get(path, headers=planner)
    assert response.status_code == status
    if code:
        assert response.json()["code"] == code
