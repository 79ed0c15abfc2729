"""The drawing shows what the BOM charges for, on the demo district through the API (R4.4; CQ-32 annex 3;
issue 17 item 5).

One design of each job class: the set of new-item kinds drawn (the GeoJSON export's ``drawn_as``, the stored
drawing input, the SVG's symbols) equals the set of the BOM's placeable assemblies (their ``drawn_as`` in
typical_designs.toml); the source transformer's line reaches it; no placeholder customer name; DXF extents set.
"""

from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import ezdxf
import pytest
from fastapi.testclient import TestClient

from design_rules.catalogue import load_typical_designs
from design_rules.drawing import DrawingInput

SAMPLES = list(csv.DictReader((Path(__file__).parents[2] / "fixtures" / "sample_applications.csv").open()))
JOB_CLASSES = ("direct_meter", "overhead", "underground_cable", "transformer_upgrade")
SVG_NS = {"svg": "http://www.w3.org/2000/svg"}
Designs = dict[str, dict[str, Any]]


def _request(sample: dict[str, str]) -> dict[str, Any]:
    """The sample as a design request that names no customer (the title block must not show a placeholder)."""
    return {"lon": float(sample["lon"]), "lat": float(sample["lat"]), "crs": sample["crs"], "kw": float(sample["kw"]),
            "phases": int(sample["phases"]), "category": sample["category"], "area_type": sample["area_type"]}


@pytest.fixture(scope="module")
def designs(client: TestClient, planner_headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The first demo sample of each job class, designed through the API."""
    out = {}
    for job_class in JOB_CLASSES:
        sample = next(s for s in SAMPLES if s["expected_job_class"] == job_class)
        response = client.post("/api/v1/designs", json=_request(sample), headers=planner_headers)
        assert response.status_code == 201, response.text
        assert response.json()["job_class"] == job_class
        out[job_class] = response.json()
    return out


def placeable_assemblies(design: dict[str, Any]) -> set[str]:
    """The drawn kinds of the assemblies the BOM charges for (``drawn_as`` other than ``none``)."""
    assemblies = load_typical_designs().assemblies
    return {assemblies[a].drawn_as for a in design["bom"]["by_assembly"]} - {"none"}


@pytest.mark.parametrize("job_class", JOB_CLASSES)
def test_the_drawing_shows_every_placeable_item_the_bom_charges_for(
        client: TestClient, planner_headers: dict[str, str], designs: Designs, job_class: str) -> None:
    """R4.4, CQ-32 annex 3, issue 17 item 5: drawn new-item kinds == the BOM's placeable assemblies, in the stored
    drawing input and in the GeoJSON export; the SVG draws a symbol of each new-equipment kind."""
    design = designs[job_class]
    expected = placeable_assemblies(design)
    assert DrawingInput.model_validate(design["drawing_input"]).new_item_kinds() == expected
    base = f"/api/v1/designs/{design['design_id']}"
    features = client.get(f"{base}/drawing.geojson", headers=planner_headers).json()["features"]
    drawn = {f["properties"]["drawn_as"] for f in features
             if f["properties"]["status"] == "new" and "drawn_as" in f["properties"]}
    assert drawn == expected, f"BOM assemblies {sorted(design['bom']['by_assembly'])}"
    svg = ET.fromstring(client.get(f"{base}/drawing.svg", headers=planner_headers).content)
    for kind in expected & {"branch_box", "pole_riser", "transformer_uprate", "new_transformer"}:
        assert svg.find(f".//svg:g[@id='new-works']/svg:g[@class='new-{kind}']", SVG_NS) is not None, kind


def test_the_cable_job_draws_its_branch_box_and_riser(designs: dict[str, dict[str, Any]]) -> None:
    """Issue 17 item 5: the underground job from a pole is charged a branch box and a riser; both are drawn,
    the riser at the access pole and the branch box on the new cable route."""
    design = designs["underground_cable"]
    assert {"cable_branch_box", "pole_riser"} <= set(design["bom"]["by_assembly"])
    drawing = DrawingInput.model_validate(design["drawing_input"])
    equipment = {e.kind: e for e in drawing.new_equipment}
    route = drawing.new_routes[0].points_m
    assert (equipment["pole_riser"].x_m, equipment["pole_riser"].y_m) == pytest.approx(route[0])
    assert (equipment["branch_box"].x_m, equipment["branch_box"].y_m) in [pytest.approx(p) for p in route]


@pytest.mark.parametrize("job_class", JOB_CLASSES)
def test_the_existing_line_reaches_the_source_transformer(designs: dict[str, dict[str, Any]], job_class: str) -> None:
    """Issue 17 item 5: lines were clipped to a box round the meter box and stopped ~80 m short of the source
    transformer; now a line of the drawing ends at the source transformer and the access point lies on one."""
    design = designs[job_class]
    drawing = DrawingInput.model_validate(design["drawing_input"])
    source = next(t for t in drawing.transformers if t.label == design["source"]["transformer_asset_id"])
    ends = [p for line in drawing.existing_lines for p in (line.points_m[0], line.points_m[-1])]
    assert min(math.dist(p, (source.x_m, source.y_m)) for p in ends) < 0.01


@pytest.mark.parametrize("job_class", JOB_CLASSES)
def test_no_placeholder_customer_and_dxf_extents(
        client: TestClient, planner_headers: dict[str, str], designs: Designs, job_class: str) -> None:
    """Issue 17 item 5: a request that names no customer showed "客户：客户"; now no customer row (the job id names
    the sheet). The DXF's $EXTMIN/$EXTMAX were unset; now they hold the meter box and the source transformer."""
    design = designs[job_class]
    base = f"/api/v1/designs/{design['design_id']}"
    svg = client.get(f"{base}/drawing.svg", headers=planner_headers).text
    assert "客户：" not in svg and f"工单号：{design['design_id']}" in svg
    doc = ezdxf.read(io.StringIO(client.get(f"{base}/drawing.dxf", headers=planner_headers).content.decode()))
    assert not any("客户" in e.dxf.text for e in doc.modelspace().query("TEXT") if "客户红线" not in e.dxf.text)
    (x0, y0, _), (x1, y1, _) = doc.header["$EXTMIN"], doc.header["$EXTMAX"]
    drawing = DrawingInput.model_validate(design["drawing_input"])
    source = next(t for t in drawing.transformers if t.label == design["source"]["transformer_asset_id"])
    for x, y in ((drawing.meter_box.x_m, drawing.meter_box.y_m), (source.x_m, source.y_m)):
        assert x0 <= x <= x1 and y0 <= y <= y1


def test_a_new_transformer_is_drawn_with_its_10_kv_line_from_the_feeding_transformer(
        client: TestClient, planner_headers: dict[str, str]) -> None:
    """Issue 20 item 1e, R4.4: the rural DEMO-035 becomes a new transformer by the load; the sheet draws exactly
    the BOM's placeable assemblies — the unit (with its JP cabinet and platform) at the start of the LV run and
    the 10 kV line from the feeding transformer, which is drawn as existing — and no uprate ring."""
    sample = next(s for s in SAMPLES if s["app_id"] == "DEMO-035")
    design = client.post("/api/v1/designs", json=_request(sample), headers=planner_headers).json()
    assert design["upgrade_kind"] == "new_transformer", design.get("upgrade_options")
    expected = placeable_assemblies(design)
    assert {"new_transformer", "mv_line"} <= expected and "transformer_uprate" not in expected
    drawing = DrawingInput.model_validate(design["drawing_input"])
    assert drawing.new_item_kinds() == expected
    [unit] = [e for e in drawing.new_equipment if e.kind == "new_transformer"]
    [lv_run] = [r for r in drawing.new_routes if r.kind != "mv_line"]
    [mv] = [r for r in drawing.new_routes if r.kind == "mv_line"]
    assert lv_run.points_m[0] == pytest.approx((unit.x_m, unit.y_m))
    assert mv.points_m[-1] == pytest.approx(lv_run.points_m[0])
    feeder = next(t for t in drawing.transformers if t.label == design["new_transformer"]["feeder_asset_id"])
    assert mv.points_m[0] == pytest.approx((feeder.x_m, feeder.y_m))
    assert mv.length_m == design["new_transformer"]["mv_line_m"]
    base = f"/api/v1/designs/{design['design_id']}"
    svg = ET.fromstring(client.get(f"{base}/drawing.svg", headers=planner_headers).content)
    assert svg.find(".//svg:g[@id='new-works']/svg:g[@class='new-new_transformer']", SVG_NS) is not None
    features = client.get(f"{base}/drawing.geojson", headers=planner_headers).json()["features"]
    assert {f["properties"]["drawn_as"] for f in features if f["properties"]["status"] == "new"
            and "drawn_as" in f["properties"]} == expected
