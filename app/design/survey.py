"""The survey package a project manager's terminal downloads per job (R5): compact JSON for a weak network.

Everything comes from the worker's in-memory network snapshot and the stored design, so building it costs
no spatial SQL. Coordinates are WGS-84 lon/lat rounded to 1e-6° (about 0.1 m), enough for a phone map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from app.design.service import design_etag, stored_drawing
from app.network.siting import NetworkSnapshot, SitingEngine
from app.platform.models import Application, Design
from design_rules.drawing import render_geojson
from design_rules.profiles import StepCode

#: Assets within this distance of the meter box are in the package (issue 5 item 5).
SURVEY_RADIUS_M = 300.0
#: Decimal places of WGS-84 degrees in the package (1e-6° ≈ 0.11 m).
COORDINATE_DECIMALS = 6

def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, COORDINATE_DECIMALS)
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def round_geojson(obj: Any) -> Any:
    """Round every coordinate of a GeoJSON object (geometry, Feature or FeatureCollection) to 1e-6°."""
    if isinstance(obj, dict):
        return {k: (_round(v) if k == "coordinates" else round_geojson(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [round_geojson(v) for v in obj]
    return obj


def _feature(geometry_local: BaseGeometry, engine: SitingEngine, properties: dict[str, Any]) -> dict[str, Any]:
    geometry = mapping(engine.projector.geometry_to_wgs84(geometry_local))
    return {"type": "Feature", "geometry": round_geojson(dict(geometry)), "properties": properties}


def assets_near(snapshot: NetworkSnapshot, engine: SitingEngine, x_m: float, y_m: float,
                radius_m: float = SURVEY_RADIUS_M) -> dict[str, Any]:
    """Existing transformers, access points, LV lines, roads and no-overhead zones within ``radius_m``.

    Access points include the branch boxes derived from cables (``derived: true``, to be confirmed on site).

    Lines, roads and zones are clipped to the circle, so the package stays small in a dense city.
    """
    data = snapshot.data
    circle = shapely.Point(x_m, y_m).buffer(radius_m, quad_segs=8)
    features: list[dict[str, Any]] = []
    near = np.flatnonzero(np.hypot(data.transformer_x_m - x_m, data.transformer_y_m - y_m) <= radius_m)
    # loads from the index, which bookings and load readings keep current in place (``data`` is as first read)
    loads = snapshot.index.transformers
    for i in near:
        rated, peak, reserved = float(data.rated_kva[i]), float(loads.peak_kva[i]), float(loads.reserved_kva[i])
        features.append(_feature(shapely.Point(data.transformer_x_m[i], data.transformer_y_m[i]), engine, {
            "layer": "transformers", "asset_id": str(data.transformer_asset_id[i]),
            "name": str(data.transformer_name[i]), "rated_kva": rated, "peak_kva": peak,
            "reserved_kva": round(reserved, 3), "load_rate_pct": round((peak + reserved) / rated * 100.0, 1)}))
    for i in np.flatnonzero(np.hypot(data.access_x_m - x_m, data.access_y_m - y_m) <= radius_m):
        features.append(_feature(shapely.Point(data.access_x_m[i], data.access_y_m[i]), engine, {
            "layer": "access_points", "asset_id": str(data.access_asset_id[i]), "kind": str(data.access_kind[i]),
            "transformer_asset_id": str(data.access_transformer_asset_id[i])}))
    derived = snapshot.derived_access  # branch boxes derived from cables (issue 20 item 1a): to be confirmed
    for i in sorted(int(h) for h in snapshot.derived_tree.query(circle, predicate="intersects")):
        features.append(_feature(shapely.Point(derived.x_m[i], derived.y_m[i]), engine, {
            "layer": "access_points", "asset_id": str(derived.asset_id[i]), "kind": str(derived.kind[i]),
            "transformer_asset_id": str(snapshot.index.transformers.asset_id[derived.transformer_pos[i]]),
            "derived": True}))
    for i in sorted(int(h) for h in snapshot.line_tree.query(circle, predicate="intersects")):
        features.append(_feature(data.line_local[i].intersection(circle), engine, {
            "layer": "lv_lines", "asset_id": str(data.line_asset_id[i]), "kind": str(data.line_kind[i]),
            "transformer_asset_id": str(data.line_transformer_asset_id[i])}))
    for i in sorted(int(h) for h in snapshot.road_tree.query(circle, predicate="intersects")):
        features.append(_feature(data.road_local[i].intersection(circle), engine, {
            "layer": "roads", "asset_id": data.road_asset_id[i], "name": data.road_name[i],
            "road_class": data.road_class[i]}))
    for i in sorted(int(h) for h in snapshot.zone_tree.query(circle, predicate="intersects")):
        features.append(_feature(data.zone_local[i].intersection(circle), engine, {"layer": "no_overhead_zones"}))
    return {"type": "FeatureCollection", "features": features}


def _candidate(candidate: dict[str, Any]) -> dict[str, Any]:
    return {
        "transformer_asset_id": candidate["transformer_asset_id"],
        "access_point": {"asset_id": candidate["access_point"]["asset_id"],
                         "kind": candidate["access_point"]["kind"],
                         # derived from the cable network's junctions and ends: to be confirmed (issue 20 item 1a)
                         "derived": bool(candidate["access_point"].get("derived", False))},
        "straight_to_access_point_m": round(candidate["straight_to_access_point_m"], 1),
        "route_length_m": round(candidate["route"]["length_m"], 1) if candidate.get("route") else None,
        "load_rate_before_pct": round(candidate["load_rate_before_pct"], 1),
        "load_rate_after_pct": round(candidate["load_rate_after_pct"], 1),
        "transformer_geometry": round_geojson(candidate["transformer_geometry"]),
    }


def survey_package(snapshot: NetworkSnapshot, engine: SitingEngine, application: Application,
                   design: Design) -> dict[str, Any]:
    """The package: job, design summary with its ETag, route, candidates, drawing, BOM and assets within 300 m."""
    result = design.result
    pin = result["pin"]
    source = result["source"]
    route = source.get("route") or {}
    drawing = render_geojson(stored_drawing(design), engine.projector.unproject)
    bom = result["bom"]
    steps = result["schedule"]["steps"]
    return {
        "application": {"id": application.id, "status": application.status,
                        "applicant_name": application.applicant_name, "address": application.address,
                        "contact_phone": application.contact_phone, "kw": application.requested_kw,
                        "phases": application.phases, "grid_area_code": application.grid_area_code,
                        "promised_power_on": str(application.promised_power_on),
                        "confirmed_design_version": application.confirmed_design_version},
        "design": {"design_id": design.design_id, "version": design.version, "etag": design_etag(design),
                   "job_class": design.job_class,
                   "job_class_reasons": [{"code": r["code"], "message": r["message"]}
                                         for r in result.get("job_class_reasons", [])],
                   "excavation": result.get("excavation"), "needs_outage": result.get("needs_outage"),
                   "feasible_source": result.get("feasible_source"),
                   "conductor": result["sizing"].get("conductor"),
                   "meter": result["sizing"].get("meter_designation"),
                   "total_cost_cny": result["total_cost_cny"],
                   "steps": [{"step_code": s["step_code"], "name_zh": StepCode(s["step_code"]).label_zh,
                              "deadline": s["deadline"]} for s in steps]},
        "meter_box": {"type": "Point", "coordinates": _round([pin["lon_wgs84"], pin["lat_wgs84"]])},
        "source": _candidate(source),
        "route": {"type": "Feature", "geometry": round_geojson(route.get("geometry")),
                  "properties": {"length_m": round(route.get("length_m", 0.0), 1), "method": route.get("method"),
                                 "crossings": route.get("crossings", [])}},
        "candidates": [_candidate(c) for c in result.get("alternatives", [])],
        "drawing": round_geojson(drawing),
        "bom": {"currency": "CNY", "total_cny": bom["total_cny"],
                "columns": ["material_code", "name_zh", "unit", "quantity", "amount_cny"],
                "lines": [[line["material_code"], line["name_zh"], line["unit"], line["quantity"],
                           line["amount_cny"]] for line in bom["lines"]]},
        "assets": assets_near(snapshot, engine, float(pin["x_m"]), float(pin["y_m"])),
    }
