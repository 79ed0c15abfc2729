"""Design requests that used to answer 500 get a coded 4xx (issue 13: schemathesis found them on POST /designs), and
the pin's ``crs`` of designs and sources speaks the one CRS vocabulary (issue 20 item 5); on SpatiaLite and PostGIS."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from gis.crs import CRS_NAMES

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


# --- one CRS vocabulary (issue 20 item 5, R1.1/R2.1): the EPSG codes an import takes, for a pin too --------------

ACCEPTED = "use one of wgs84, gcj02, bd09, cgcs2000, EPSG:4326, EPSG:4490"
SAME_SYSTEM = [("EPSG:4326", "wgs84"), ("epsg:4326", "wgs84"), ("EPSG:4490", "cgcs2000"), ("Epsg:4490", "cgcs2000"),
               ("WGS-84", "wgs84")]


def _crs_refused(answer: Any, field: str) -> str:
    """The 422 of a crs outside the vocabulary: ``REQUEST_INVALID`` as any undeclared value, the error type
    ``crs_unsupported``, and a message listing the accepted values."""
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == "REQUEST_INVALID", body
    error = next(e for e in body["details"]["errors"] if e["field"] == field)
    assert error["type"] == "crs_unsupported" and ACCEPTED in error["message"], error
    assert ACCEPTED in body["message"]
    return str(error["message"])


@pytest.mark.parametrize(("given", "name"), SAME_SYSTEM)
def test_a_design_takes_an_epsg_code_as_its_system(client: TestClient, planner_headers: dict[str, str],
                                                   given: str, name: str) -> None:
    """``EPSG:4326`` designs like ``wgs84`` (same pin, same source), stored and answered as ``wgs84``."""
    by_code = client.post("/api/v1/designs", json={**PIN, "crs": given, "kw": 10}, headers=planner_headers)
    by_name = client.post("/api/v1/designs", json={**PIN, "crs": name, "kw": 10}, headers=planner_headers)
    assert by_code.status_code == by_name.status_code == 201, (by_code.text, by_name.text)
    code, named = by_code.json(), by_name.json()
    assert code["pin"] == named["pin"] and code["request"]["crs"] == name
    assert code["source"] == named["source"] and code["total_cost_cny"] == named["total_cost_cny"]


@pytest.mark.parametrize(("value", "why"), [
    ("EPSG:9999", "Unsupported coordinate system"), ("utm", "Unsupported coordinate system"),
    ("EPSG:4545", "is a projected CRS"), ("EPSG:4214", "that pins are not converted from"),  # Beijing 1954
    ("4326", "Unsupported coordinate system"), (4326, "Unsupported"),
    (None, "Unsupported"),
])
def test_a_design_in_another_system_is_422_listing_the_accepted_values(
        client: TestClient, planner_headers: dict[str, str], value: Any, why: str) -> None:
    answer = client.post("/api/v1/designs", json={**PIN, "crs": value, "kw": 10}, headers=planner_headers)
    assert why in _crs_refused(answer, "body.crs")


@pytest.mark.parametrize(("given", "name"), SAME_SYSTEM)
def test_sources_take_an_epsg_code_as_the_system(client: TestClient, planner_headers: dict[str, str],
                                                 given: str, name: str) -> None:
    query = {"lon": PIN["lon"], "lat": PIN["lat"], "kw": 10}
    by_code = client.get("/api/v1/sources", params={**query, "crs": given}, headers=planner_headers)
    by_name = client.get("/api/v1/sources", params={**query, "crs": name}, headers=planner_headers)
    assert by_code.status_code == by_name.status_code == 200, (by_code.text, by_name.text)
    code, named = by_code.json(), by_name.json()
    assert code["pin"] == named["pin"] and code["candidates"] == named["candidates"]


@pytest.mark.parametrize(("value", "why"), [
    ("EPSG:9999", "Unsupported coordinate system"), ("utm", "Unsupported coordinate system"),
    ("EPSG:4490 ", "Unsupported coordinate system"), ("EPSG:32648", "is a projected CRS"),
])
def test_sources_in_another_system_are_422_listing_the_accepted_values(
        client: TestClient, planner_headers: dict[str, str], value: str, why: str) -> None:
    answer = client.get("/api/v1/sources", params={"lon": PIN["lon"], "lat": PIN["lat"], "kw": 10, "crs": value},
                        headers=planner_headers)
    assert why in _crs_refused(answer, "query.crs")


def test_the_openapi_declares_the_vocabulary_as_the_enum_of_designs_and_sources(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    design = document["components"]["schemas"]["DesignRequest"]["properties"]["crs"]
    sources = next(p for p in document["paths"]["/api/v1/sources"]["get"]["parameters"] if p["name"] == "crs")
    for schema in (design, sources["schema"]):
        assert schema["enum"] == list(CRS_NAMES) and schema["default"] == "wgs84"
