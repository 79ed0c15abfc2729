"""Design requests that used to answer 500 get a coded 4xx (issue 13: schemathesis found them on POST /designs)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

PIN = {"lon": 106.4883433, "lat": 29.499325, "crs": "wgs84"}


@pytest.mark.parametrize("area_type", ["D", "E"])
def test_an_area_class_that_can_be_urban_or_rural_asks_for_urban_rural(
        client: TestClient, planner_headers: dict[str, str], area_type: str) -> None:
    """D and E supply areas are urban or rural (DOMAIN §1.1): the capacity limit (R1.3) needs to know which."""
    answer = client.post("/api/v1/designs", json={**PIN, "kw": 10, "area_type": area_type}, headers=planner_headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "INVALID_INPUT" and answer.json()["details"]["field"] == "urban_rural"
    told = client.post("/api/v1/designs", json={**PIN, "kw": 10, "area_type": area_type, "urban_rural": "rural"},
                       headers=planner_headers)
    assert told.status_code == 201, told.text


@pytest.mark.parametrize("kw", [5e-324, 0.001])
def test_a_load_too_small_for_any_breaker_is_refused(client: TestClient, planner_headers: dict[str, str],
                                                     kw: float) -> None:
    answer = client.post("/api/v1/designs", json={**PIN, "kw": kw}, headers=planner_headers)
    assert answer.status_code == 422 and answer.json()["code"] == "REQUEST_INVALID", answer.text
