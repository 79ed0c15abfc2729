"""Designs on a real third-party LV network: pandapower's ``lv_schutterwald`` (issue 20 items 1a and 3).

The network (14 MV/LV transformers, 3,000 NAYY cables, no branch boxes, no roads) is exported with its own
column names (``tests/importdata.py``), moved into Chongqing keeping metres, and imported through the importer
with mapping files; ``lv_lines.transformer_asset_id`` is the feeding transformer's name. Then seeded requests
of 20–160 kW near its load buses are designed through the API. The cable network has no branch boxes, so the
access candidates are derived from the cables' junctions and free ends (``derived: true``).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.identity.auth import Role
from app.main import create_app
from app.network.loading import import_layer_file
from gis.crs import Projector
from gis.importing import FieldMapping
from gis.index import AccessPointSnapshot, TransformerSnapshot, derive_cable_access
from tests.app.auth_helpers import auth_headers, make_user, settings_for_tests
from tests.importdata import export_schutterwald

pytest.importorskip("pandapower")

#: Seeded requests: count, the seed, the load range (kW) and how far from a load bus the meter box stands (m).
REQUESTS, SEED, KW_RANGE, OFFSET_M = 120, 20, (20.0, 160.0), (5.0, 25.0)
#: A meter box this close to a cable of the network is "near the cable network" (m).
NEAR_CABLE_M = 60.0


@pytest.fixture(scope="module")
def schutterwald(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return export_schutterwald(tmp_path_factory.mktemp("schutterwald"))


@pytest.fixture(scope="module")
def sw_engine(backend: str, migrated_engine, schutterwald: dict[str, Any]) -> Engine:  # type: ignore[no-untyped-def]
    """A database with only the moved Schutterwald network, imported with its mapping files."""
    engine = migrated_engine(backend)
    with engine.begin() as conn:
        trafos = import_layer_file(conn, "transformers", schutterwald["transformers"],
                                   mapping=FieldMapping.from_file(schutterwald["transformers.toml"]))
        lines = import_layer_file(conn, "lv_lines", schutterwald["lv_lines"],
                                  mapping=FieldMapping.from_file(schutterwald["lv_lines.toml"]))
    assert trafos.inserted == trafos.rows_read == 14 and not trafos.issue_counts
    assert lines.inserted == lines.rows_read == 3000 and not lines.issue_counts
    return engine


@pytest.fixture(scope="module")
def sw_client(sw_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = sw_engine.url.render_as_string(hide_password=False)
    app = create_app(settings_for_tests(url, data_dir=tmp_path_factory.mktemp("data")))
    with TestClient(app) as client:
        yield client


def _requests(schutterwald: dict[str, Any]) -> list[dict[str, Any]]:
    """Seeded meter boxes 5–25 m from random load buses, 20–160 kW, three-phase small enterprises."""
    rng = np.random.default_rng(SEED)
    projector = Projector("EPSG:4545")
    buses = schutterwald["load_buses"]
    out = []
    for bus in rng.choice(len(buses), REQUESTS, replace=False).tolist():
        x, y = projector.project_many(np.array([buses[bus][0]]), np.array([buses[bus][1]]))
        angle, reach = rng.uniform(0, 2 * math.pi), rng.uniform(*OFFSET_M)
        lon, lat = projector.unproject_many(np.asarray(x) + reach * math.cos(angle),
                                            np.asarray(y) + reach * math.sin(angle))
        out.append({"lon": float(np.asarray(lon)[0]), "lat": float(np.asarray(lat)[0]), "crs": "wgs84",
                    "kw": round(float(rng.uniform(*KW_RANGE)), 1), "phases": 3, "category": "small_enterprise",
                    "customer_name": f"Schutterwald {bus}"})
    return out


@pytest.fixture(scope="module")
def outcomes(sw_client: TestClient, sw_engine: Engine, schutterwald: dict[str, Any]) -> list[dict[str, Any]]:
    """Every seeded request posted once: status, time, and the design's rung, job class and access point."""
    headers = auth_headers(sw_client, make_user(sw_engine, Role.PLANNER))
    sw_client.post("/api/v1/designs", json=_requests(schutterwald)[0], headers=headers)  # warm the snapshot
    results = []
    for request in _requests(schutterwald):
        started = time.perf_counter()
        response = sw_client.post("/api/v1/designs", json=request, headers=headers)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        body = response.json()
        result: dict[str, Any] = {"status": response.status_code, "ms": elapsed_ms, "request": request}
        if response.status_code == 201:
            access = body["source"]["access_point"]
            result.update(design_id=body["design_id"], job_class=body["job_class"],
                          upgrade_kind=body.get("upgrade_kind"), access_kind=access["kind"],
                          access_id=access["asset_id"],
                          derived=access.get("derived", False), feasible=body["feasible_source"],
                          reasons=[r["code"] for r in body["job_class_reasons"]])
        else:
            result["code"] = body.get("code") or body.get("error", {}).get("code")
        results.append(result)
    return results


def _near_cable(schutterwald: dict[str, Any], outcomes: list[dict[str, Any]]) -> list[bool]:
    import pyogrio

    lines = pyogrio.read_dataframe(schutterwald["lv_lines"])
    projector = Projector("EPSG:4545")
    local = shapely.transform(lines.geometry.to_numpy(),
                              lambda xy: np.column_stack(projector.project_many(xy[:, 0], xy[:, 1])))
    tree = shapely.STRtree(local)
    near = []
    for o in outcomes:
        x, y = projector.project_many(np.array([o["request"]["lon"]]), np.array([o["request"]["lat"]]))
        pin = shapely.Point(float(np.asarray(x)[0]), float(np.asarray(y)[0]))
        near.append(len(tree.query(pin, predicate="dwithin", distance=NEAR_CABLE_M)) > 0)
    return near


def summary(outcomes: list[dict[str, Any]], near: list[bool]) -> dict[str, Any]:
    """The figures the issue's closing note asks for."""
    designed = [o for o in outcomes if o["status"] == 201]
    times = sorted(o["ms"] for o in designed)
    p99 = times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)] if times else math.nan
    near_designed = [o for o, n in zip(outcomes, near, strict=True) if n and o["status"] == 201]
    return {
        "requests": len(outcomes), "statuses": dict(Counter(o["status"] for o in outcomes)),
        "codes_not_201": dict(Counter(o.get("code") for o in outcomes if o["status"] != 201)),
        "by_job_class": dict(Counter((o["job_class"], o["upgrade_kind"]) for o in designed)),
        "access": dict(Counter("cable network (derived)" if o["derived"] else o["access_kind"] for o in designed)),
        "near_cable": sum(near), "near_cable_designed": len(near_designed),
        "near_cable_tap_cable": sum(1 for o in near_designed if o["derived"]),
        "p50_ms": statistics.median(times) if times else math.nan, "p99_ms": p99,
        "ms_by_job_class": {f"{k[0]}/{k[1]}": (round(statistics.median(v)), round(max(v))) for k, v in _ms_by_class(
            designed).items()},
    }


def _ms_by_class(designed: list[dict[str, Any]]) -> dict[tuple[str, str | None], list[float]]:
    out: dict[tuple[str, str | None], list[float]] = {}
    for o in designed:
        out.setdefault((o["job_class"], o["upgrade_kind"]), []).append(o["ms"])
    return out


def test_schutterwald_designs_tap_the_cable_network(outcomes: list[dict[str, Any]],
                                                   schutterwald: dict[str, Any]) -> None:
    """No 5xx; most requests get a design; the designs near the cables tap the cable network at a derived box."""
    near = _near_cable(schutterwald, outcomes)
    figures = summary(outcomes, near)
    print("\nSchutterwald:", figures)  # the closing note's figures (pytest -s)
    assert all(o["status"] < 500 for o in outcomes), figures
    assert set(figures["statuses"]) <= {201, 422}, figures
    designed = figures["statuses"].get(201, 0)
    assert designed / len(outcomes) >= 0.99, figures  # measured 120 of 120 (issue 20 asks >= 99 %)
    assert figures["near_cable"] >= 0.9 * len(outcomes), figures
    # every feasible design near the cables taps the cable network, none the transformer itself
    feasible_near = [o for o, n in zip(outcomes, near, strict=True) if n and o["status"] == 201 and o["feasible"]]
    assert feasible_near and all(o["derived"] and o["access_kind"] == "branch_box" for o in feasible_near), figures
    # measured 108 of 120 (the other 12 are new transformers by the load, whose LV run starts at the new unit)
    assert figures["near_cable_tap_cable"] >= 0.85 * figures["near_cable_designed"], figures
    for o in feasible_near:
        assert "DERIVED_ACCESS_POINT" in o["reasons"]
        assert o["job_class"] in ("direct_meter", "underground_cable")  # a branch box is a cable job


def test_a_derived_tap_is_marked_in_the_drawing_and_its_exports(sw_client: TestClient, sw_engine: Engine,
                                                                outcomes: list[dict[str, Any]]) -> None:
    """The drawing shows the derived box dashed and labelled 待核实; GeoJSON says derived; DXF and BOM export."""
    headers = auth_headers(sw_client, make_user(sw_engine, Role.PLANNER))
    tapped = next(o for o in outcomes if o.get("derived") and o["job_class"] == "underground_cable")
    design_id = tapped["design_id"]
    svg = sw_client.get(f"/api/v1/designs/{design_id}/drawing.svg", headers=headers)
    assert svg.status_code == 200 and "待核实" in svg.text and 'class="derived"' in svg.text
    # only the derived boxes near the meter box are drawn (the source has hundreds), the tap among them
    assert 0 < svg.text.count('class="derived"') <= 80, svg.text.count('class="derived"')
    assert tapped["access_id"] in svg.text
    assert "推定电缆分支箱（虚框，待核实）" in svg.text  # the legend
    geojson = sw_client.get(f"/api/v1/designs/{design_id}/drawing.geojson", headers=headers).json()
    derived = [f for f in geojson["features"] if f["properties"].get("derived")]
    assert derived and all("待核实" in f["properties"]["label"] for f in derived)
    for export in ("drawing.dxf", "bom.csv", "bom.xlsx"):
        assert sw_client.get(f"/api/v1/designs/{design_id}/{export}", headers=headers).status_code == 200, export


def test_the_survey_package_marks_derived_points(sw_client: TestClient, sw_engine: Engine,
                                                outcomes: list[dict[str, Any]]) -> None:
    """The survey package's source/candidates say ``derived`` and its assets list the derived boxes nearby."""
    from sqlalchemy.orm import Session

    from app.design.survey import _candidate, assets_near
    from app.network.siting import SitingEngine
    from app.platform.models import Design

    engine = SitingEngine(Projector("EPSG:4545"))
    with sw_engine.connect() as conn:
        snapshot = engine.snapshot(conn)
    tapped = next(o for o in outcomes if o.get("derived"))
    with Session(sw_engine) as session:
        design = session.query(Design).filter_by(design_id=tapped["design_id"]).order_by(Design.version.desc()).first()
        assert design is not None
        result = design.result
    assert _candidate(result["source"])["access_point"]["derived"] is True
    pin = result["pin"]
    assets = assets_near(snapshot, engine, float(pin["x_m"]), float(pin["y_m"]))["features"]
    derived = [f["properties"] for f in assets if f["properties"].get("derived")]
    assert derived and all(p["layer"] == "access_points" and p["kind"] == "branch_box" for p in derived)
    assert result["source"]["access_point"]["asset_id"] in {p["asset_id"] for p in derived}


def test_derived_points_are_junctions_and_free_ends_of_one_transformers_cables() -> None:
    """Three or more ends meeting and single ends are candidates; a straight joint and the transformer are not;
    a transformer whose GIS has branch boxes gets none derived."""
    t = TransformerSnapshot.from_lists(["T1", "T2"], [0.0, 500.0], [0.0, 0.0], [400.0] * 2, [0.0] * 2, [0.0] * 2,
                                       [None, None])
    lines = [shapely.LineString([(0, 0), (10, 0)]), shapely.LineString([(10, 0), (20, 0)]),
             shapely.LineString([(20, 0), (30, 0)]), shapely.LineString([(20, 0.01), (20, 8)]),
             shapely.MultiLineString([[(500, 0), (510, 0)], [(520, 0), (530, 0)]])]
    d = derive_cable_access(["A", "B", "C", "D", "E"], ["T1", "T1", "T1", "T1", "T2"], lines, t)
    assert sorted(zip(d.asset_id.tolist(), d.x_m.tolist(), d.y_m.tolist(), strict=True)) == [
        ("B@end", 20.0, 0.0), ("C@end", 30.0, 0.0), ("D@end", 20.0, 8.0),
        ("E@end", 510.0, 0.0), ("E@end", 530.0, 0.0), ("E@start", 520.0, 0.0)]
    assert d.kind.tolist() == ["branch_box"] * 6 and d.derived.all()
    boxes = AccessPointSnapshot.from_lists(["BB"], ["T2"], ["branch_box"], [505.0], [1.0], t)
    only_t1 = derive_cable_access(["A", "B", "C", "D", "E"], ["T1", "T1", "T1", "T1", "T2"], lines, t,
                                  except_transformer_pos=np.unique(boxes.transformer_pos))
    assert sorted(only_t1.asset_id.tolist()) == ["B@end", "C@end", "D@end"]
    junctions = derive_cable_access(["A", "B", "C", "D", "E"], ["T1", "T1", "T1", "T1", "T2"], lines, t,
                                    free_ends=False)
    assert junctions.asset_id.tolist() == ["B@end"]


def test_mapping_files_are_in_the_docs(schutterwald: dict[str, Any]) -> None:
    """docs/import.md shows the Schutterwald lv_lines mapping with transformer_asset_id from the transformer."""
    docs = (Path(__file__).parents[2] / "docs" / "import.md").read_text(encoding="utf-8")
    assert 'transformer_asset_id = "trafo"' in docs
