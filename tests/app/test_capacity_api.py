"""Capacity worklists (R2.3), load model reads and cache invalidation, on SpatiaLite and PostGIS (issue 6)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, insert, select, update

from app.identity.auth import Role
from app.main import create_app
from app.network.generations import bump_generation
from app.network.loading import DEMO_DIR
from app.planning.capacity import read_transformer_loads
from app.platform.models import LoadReading, Transformer
from tests.app.auth_helpers import auth_headers, make_user, override_session, settings_for_tests

PROTECTED = [
    "/api/v1/capacity/transformers", "/api/v1/capacity/grid-areas", "/api/v1/capacity/worklists/may-start",
    "/api/v1/capacity/worklists/must-start", "/api/v1/capacity/worklists/start-in-advance",
    "/api/v1/capacity/worklists/pre-control",
]


def demo_expectations() -> dict[str, set[str]]:
    """Worklists computed straight from the demo GeoJSON (an oracle independent of the app)."""
    features = json.loads((DEMO_DIR / "transformers.geojson").read_text(encoding="utf-8"))["features"]
    props = [f["properties"] for f in features if f["properties"]["status"] == "in_service"]
    spare: dict[str, float] = {}
    for p in props:
        spare[p["grid_area_code"]] = spare.get(p["grid_area_code"], 0.0) + (
            p["rated_kva"] * 0.8 - p["peak_kva"] - p["reserved_kva"])
    return {
        "may-start": {p["asset_id"] for p in props if p["peak_kva"] / p["rated_kva"] >= 0.5},
        "must-start": {p["asset_id"] for p in props if p["peak_kva"] / p["rated_kva"] >= 0.7},
        "start-in-advance": {p["asset_id"] for p in props
                             if (p["peak_kva"] + p["reserved_kva"]) / p["rated_kva"] > 0.8},
        "pre-control": {code for code, kva in spare.items() if kva < 160},
    }


@pytest.mark.parametrize("path", PROTECTED)
def test_every_list_refuses_anonymous_and_wrong_roles(client: TestClient, demo_engine: Engine, path: str) -> None:
    anonymous = client.get(path)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHENTICATED"
    for role in (Role.CUSTOMER, Role.CUSTOMER_MANAGER, Role.GIS_ADMIN):
        denied = client.get(path, headers=auth_headers(client, make_user(demo_engine, role)))
        assert denied.status_code == 403 and denied.json()["code"] == "FORBIDDEN", role


@pytest.mark.parametrize("worklist", ["may-start", "must-start", "start-in-advance", "pre-control"])
def test_worklists_match_the_demo_district(client: TestClient, planner_headers: dict[str, str], worklist: str) -> None:
    body = client.get(f"/api/v1/capacity/worklists/{worklist}", headers=planner_headers).json()
    key = "code" if worklist == "pre-control" else "asset_id"
    assert {item[key] for item in body["items"]} == demo_expectations()[worklist] != set()
    assert body["count"] == len(body["items"]) and body["thresholds"]["may_start_pct"] == 50.0
    if worklist == "must-start":
        rates = [item["load_rate_pct"] for item in body["items"]]
        assert rates == sorted(rates, reverse=True) and min(rates) >= 70.0


def test_pre_control_is_the_rural_area(client: TestClient, planner_headers: dict[str, str]) -> None:
    items = client.get("/api/v1/capacity/worklists/pre-control", headers=planner_headers).json()["items"]
    assert [(a["code"], a["area_type"], a["precontrol"]) for a in items] == [("CQ-YB-04", "rural", True)]
    assert items[0]["allowable_kva"] < 160


def test_every_threshold_class_is_present(client: TestClient, planner_headers: dict[str, str]) -> None:
    items = client.get("/api/v1/capacity/transformers", headers=planner_headers).json()["items"]
    assert {item["threshold_class"] for item in items} == {"<50", "50-70", "70-80", ">80"}
    for item in items:
        assert item["spare_kva"] == pytest.approx(item["rated_kva"] * 0.8 - item["peak_kva"] - item["reserved_kva"],
                                                  abs=0.01)


def test_csv_by_query_or_accept_header(client: TestClient, planner_headers: dict[str, str]) -> None:
    by_query = client.get("/api/v1/capacity/worklists/must-start?format=csv", headers=planner_headers)
    by_accept = client.get("/api/v1/capacity/worklists/must-start", headers={**planner_headers, "Accept": "text/csv"})
    assert by_query.status_code == 200 and by_query.headers["content-type"].startswith("text/csv")
    assert by_query.text == by_accept.text and by_query.text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(by_query.text.lstrip("\ufeff"))))
    assert {row["asset_id"] for row in rows} == demo_expectations()["must-start"]
    assert "attachment" in by_query.headers["content-disposition"]


def test_grid_area_filter(client: TestClient, planner_headers: dict[str, str]) -> None:
    items = client.get("/api/v1/capacity/worklists/may-start?grid_area_code=CQ-YB-02",
                       headers=planner_headers).json()["items"]
    assert items and {item["grid_area_code"] for item in items} == {"CQ-YB-02"}


def test_project_manager_sees_only_their_grid_area(client: TestClient, demo_engine: Engine) -> None:
    pm = auth_headers(client, make_user(demo_engine, Role.PROJECT_MANAGER, grid_areas=["CQ-YB-02"]))
    items = client.get("/api/v1/capacity/worklists/may-start", headers=pm).json()["items"]
    assert items and {item["grid_area_code"] for item in items} == {"CQ-YB-02"}
    assert client.get("/api/v1/capacity/worklists/pre-control", headers=pm).json()["items"] == []
    other = client.get("/api/v1/capacity/worklists/may-start?grid_area_code=CQ-YB-01", headers=pm)
    assert other.status_code == 403 and other.json()["code"] == "FORBIDDEN"


def test_latest_reading_wins_over_older_transformer_peak(db_conn: Connection) -> None:
    asset = "T-0001"
    own_at = db_conn.execute(select(Transformer.peak_at).where(Transformer.asset_id == asset)).scalar_one()
    own_at = own_at if own_at.tzinfo else own_at.replace(tzinfo=UTC)
    db_conn.execute(insert(LoadReading).values(transformer_asset_id=asset, read_at=own_at - timedelta(days=30),
                                               peak_kva=700.0))
    loads = read_transformer_loads(db_conn)
    i = loads.asset_id.tolist().index(asset)
    assert (loads.peak_source[i], loads.peak_kva[i]) == ("transformer", 252.6)  # an older reading changes nothing
    db_conn.execute(insert(LoadReading).values(transformer_asset_id=asset, read_at=own_at + timedelta(days=1),
                                               peak_kva=650.0))
    db_conn.execute(insert(LoadReading).values(transformer_asset_id=asset, read_at=own_at + timedelta(hours=1),
                                               peak_kva=600.0))
    loads = read_transformer_loads(db_conn)
    assert (loads.peak_source[i], loads.peak_kva[i]) == ("reading", 650.0)
    assert loads.peak_at[i] == own_at + timedelta(days=1)


def test_figures_follow_the_asset_generation(db_conn: Connection, demo_db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path))
    override_session(app, db_conn)
    client = TestClient(app)
    headers = auth_headers(client, make_user(db_conn, Role.PLANNER))
    path = "/api/v1/capacity/worklists/must-start"
    before = {item["asset_id"] for item in client.get(path, headers=headers).json()["items"]}
    assert "T-0001" not in before
    db_conn.execute(update(Transformer).where(Transformer.asset_id == "T-0001")
                    .values(peak_kva=760.0, peak_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert {i["asset_id"] for i in client.get(path, headers=headers).json()["items"]} == before  # same generation
    bump_generation(db_conn)
    after = client.get(path, headers=headers).json()
    assert {item["asset_id"] for item in after["items"]} == before | {"T-0001"}
    assert next(i for i in after["items"] if i["asset_id"] == "T-0001")["threshold_class"] == ">80"


def test_a_booking_refreshes_capacity_and_keeps_the_network_layers(db_conn: Connection, demo_db_url: str,
                                                                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    """R2.3: a booking shows at once in the capacity figures; lines, poles, roads and zones are not read again."""
    from app.network.generations import record_capacity_changes

    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path))
    override_session(app, db_conn)
    client = TestClient(app)
    headers = auth_headers(client, make_user(db_conn, Role.PLANNER))

    def t0001() -> dict[str, object]:
        items = client.get("/api/v1/capacity/transformers", headers=headers).json()["items"]
        return next(i for i in items if i["asset_id"] == "T-0001")

    before = t0001()
    held = app.state.map_snapshots._value[1]
    reserved = float(before["reserved_kva"]) + 25.0
    db_conn.execute(update(Transformer).where(Transformer.asset_id == "T-0001").values(reserved_kva=reserved))
    record_capacity_changes(db_conn, {"T-0001": reserved})
    after = t0001()
    assert after["reserved_kva"] == pytest.approx(reserved)
    assert after["spare_kva"] == pytest.approx(float(before["spare_kva"]) - 25.0, abs=0.01)
    now = app.state.map_snapshots._value[1]
    assert now is not held and now.capacity is not held.capacity
    for name in ("lv_lines", "access_points", "roads", "no_overhead_zones"):
        assert now.layers[name] is held.layers[name], name  # the network did not move: kept
    bump_generation(db_conn)  # an asset or load change: everything is read again
    assert client.get("/api/v1/capacity/transformers", headers=headers).status_code == 200
    assert app.state.map_snapshots._value[1].layers["roads"] is not held.layers["roads"]
