"""Public capacity disclosure (R6.2): aggregated, no asset data, rate-limited per client (issue 6)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.network.loading import DEMO_DIR
from app.platform.ratelimit import TokenBuckets
from gis.crs import CRS_NAMES, wgs84_to_gcj02
from tests.app.auth_helpers import settings_for_tests

PATH = "/api/v1/public/capacity"
RURAL_PIN = (106.5125, 29.495)  # inside CQ-YB-04, the pre-controlled rural grid area


@pytest.fixture(scope="module")
def client(demo_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = settings_for_tests(demo_db_url, data_dir=tmp_path_factory.mktemp("data"), public_rate_burst=1000,
                                  public_rate_per_minute=6000)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_answers_without_sign_in_and_without_asset_data(client: TestClient) -> None:
    response = client.get(PATH, params={"lon": 106.5, "lat": 29.5})
    assert response.status_code == 200
    body = response.json()
    assert body["grid_area"]["name"] == "金山网格" and not body["grid_area"]["precontrol"]
    assert len(body["cells"]) == 7 and sum(cell["is_location_cell"] for cell in body["cells"]) == 1
    assert {cell["capacity_class"] for cell in body["cells"]} <= {"none", "limited", "ample"}
    assert all(cell["available_kva"] % 10 == 0 and cell["largest_connection_kva"] <= 160 for cell in body["cells"])
    text = response.text
    transformers = json.loads((DEMO_DIR / "transformers.geojson").read_text(encoding="utf-8"))["features"]
    for feature in transformers:  # neither ids, names nor coordinates of any transformer
        lon, lat = feature["geometry"]["coordinates"]
        assert feature["properties"]["asset_id"] not in text and feature["properties"]["name"] not in text
        assert str(lon) not in text and str(lat) not in text


def test_answer_has_no_internal_generation_counter(client: TestClient) -> None:
    """Issue 13 item 13: the public answer exposed the asset generation, an internal counter (it moves with every
    booking, so it told outsiders how busy the service is)."""
    body = client.get(PATH, params={"lon": 106.5, "lat": 29.5}).json()
    assert "generation" not in body and "cells" in body
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PublicCapacity"]
    assert "generation" not in schema["properties"]


def test_the_public_pin_speaks_the_one_crs_vocabulary(client: TestClient) -> None:
    """Issue 20 item 5: the disclosure takes the EPSG codes the other pins take, and declares the same list."""
    answers = [client.get(PATH, params={"lon": 106.5, "lat": 29.5, "crs": crs}).json()
               for crs in ("wgs84", "EPSG:4326", "epsg:4326")]
    assert answers[0] == answers[1] == answers[2]
    crs = next(p for p in client.get("/openapi.json").json()["paths"][PATH]["get"]["parameters"] if p["name"] == "crs")
    assert crs["schema"]["enum"] == list(CRS_NAMES)


def test_pre_controlled_rural_area_and_gcj02_pin(client: TestClient) -> None:
    lon, lat = wgs84_to_gcj02(*RURAL_PIN)
    body = client.get(PATH, params={"lon": lon, "lat": lat, "crs": "gcj02"}).json()
    assert body["grid_area"]["area_type"] == "rural" and body["grid_area"]["precontrol"] is True
    assert abs(body["lon_wgs84"] - RURAL_PIN[0]) < 1e-6 and abs(body["lat_wgs84"] - RURAL_PIN[1]) < 1e-6


@pytest.mark.parametrize(("params", "code"), [
    ({"lon": 106.5, "lat": 29.5, "crs": "mars"}, "CRS_UNSUPPORTED"),
    ({"lon": 106.5, "lat": 95.0}, "COORDINATE_INVALID"),
    ({"lon": 116.4, "lat": 39.9}, "OUT_OF_SERVICE_AREA"),   # Beijing, outside the service area
    ({"lon": "east", "lat": 29.5}, "REQUEST_INVALID"),
    ({"lat": 29.5}, "REQUEST_INVALID"),
])
def test_bad_pins_are_422_with_codes(client: TestClient, params: dict[str, object], code: str) -> None:
    response = client.get(PATH, params=params)
    assert (response.status_code, response.json()["code"]) == (422, code)


def test_rate_limited_per_client_with_retry_after(demo_db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for_tests(demo_db_url, data_dir=tmp_path, public_rate_burst=2, public_rate_per_minute=1)
    with TestClient(create_app(settings)) as limited:
        assert [limited.get(PATH, params={"lon": 106.5, "lat": 29.5}).status_code for _ in range(2)] == [200, 200]
        refused = limited.get(PATH, params={"lon": 106.5, "lat": 29.5})
        assert refused.status_code == 429 and refused.json()["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        with TestClient(limited.app, client=("203.0.113.9", 5000)) as other_client:  # another IP has its own bucket
            assert other_client.get(PATH, params={"lon": 106.5, "lat": 29.5}).status_code == 200


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate_per_minute=60, burst=2, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert buckets.take("a") == pytest.approx(0.5)  # a refused request takes nothing
    now[0] = 1.0
    assert buckets.take("a") == 0.0 and buckets.take("b") == 0.0
