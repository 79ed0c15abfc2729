"""The sketch as a GeoJSON FeatureCollection (RFC 7946, lon/lat WGS-84) for the web map."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from design_rules.catalogue import TypicalDesigns, load_typical_designs
from design_rules.drawing.layout import (
    BOUNDARY_LABEL,
    EQUIPMENT_LEGEND_ZH,
    LINE_KIND_ZH,
    PROPERTY_LABEL,
    access_label,
    equipment_label,
    property_line_of,
    route_label,
)
from design_rules.drawing.model import DrawingInput, PointM

ToWgs84 = Callable[[float, float], tuple[float, float]]
"""Maps local ``(x_m, y_m)`` to ``(lon, lat)`` WGS-84."""


def render_geojson(d: DrawingInput, to_wgs84: ToWgs84, *, designs: TypicalDesigns | None = None) -> dict[str, Any]:
    """Render the sketch as a GeoJSON FeatureCollection (RFC 7946, lon/lat WGS-84).

    Every feature carries ``status`` (``existing`` or ``new``), ``kind`` and a Chinese ``label``;
    new routes also carry ``length_m`` and ``road_dug``. Every new item the BOM charges for also
    carries ``drawn_as`` (the typical designs' vocabulary: ``meter_box``, the route kind, ``pole``,
    ``branch_box``, ``pole_riser``, ``transformer_uprate``) and ``legend`` (its legend text); new
    equipment has ``kind = "new_<drawn_as>"``. The property red line is a polygon (counter-clockwise
    exterior ring) with ``kind = "property_line"``.

    Parameters
    ----------
    d : DrawingInput
        The sketch content in local metres.
    to_wgs84 : callable
        ``(x_m, y_m) -> (lon, lat)``; e.g. a pyproj transformer from the projected CRS.
    designs : TypicalDesigns, optional
        Default property size; the packaged file when omitted.

    Returns
    -------
    dict
        A FeatureCollection.

    Examples
    --------
    >>> from datetime import date
    >>> from design_rules.drawing import DrawingInput, MeterBox, TitleBlock
    >>> d = DrawingInput(
    ...     title=TitleBlock(job_id="J1", customer="C", job_class="direct_meter", drawing_date=date(2024, 5, 6)),
    ...     meter_box=MeterBox(x_m=20, y_m=0))
    >>> fc = render_geojson(d, lambda x, y: (106.5 + x / 1e5, 29.6 + y / 1e5))
    >>> [f["properties"]["kind"] for f in fc["features"]]
    ['property_line', 'meter_box', 'ownership_boundary']
    """
    style = (designs or load_typical_designs()).drawing
    prop = property_line_of(d, style)

    def lonlat(point: PointM) -> list[float]:
        lon, lat = to_wgs84(point[0], point[1])
        return [round(lon, 8), round(lat, 8)]

    def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
        return {"type": "Feature", "geometry": geometry, "properties": properties}

    def point(p: PointM) -> dict[str, Any]:
        return {"type": "Point", "coordinates": lonlat(p)}

    def linestring(points: Iterable[PointM]) -> dict[str, Any]:
        return {"type": "LineString", "coordinates": [lonlat(p) for p in points]}

    ring = [lonlat(p) for p in prop.corners_m()]
    if _signed_area(ring) < 0:
        ring.reverse()
    ring.append(ring[0])
    features = [
        feature(
            {"type": "Polygon", "coordinates": [ring]}, status="existing", kind="property_line", label=PROPERTY_LABEL
        )
    ]
    for t in d.transformers:
        features.append(
            feature(
                point((t.x_m, t.y_m)),
                status="existing",
                kind="transformer",
                label=f"既有配变 {t.label}",
                rated_kva=t.rated_kva,
            )
        )
    for a in d.access_points:
        extra = {"derived": True} if a.derived else {}  # issue 20 item 1a: to be confirmed on site
        features.append(feature(point((a.x_m, a.y_m)), status="existing", kind=a.kind, label=access_label(a), **extra))
    for line in d.existing_lines:
        label = f"{LINE_KIND_ZH[line.kind]} {line.label}".strip()
        features.append(feature(linestring(line.points_m), status="existing", kind=f"lv_{line.kind}", label=label))
    for route in d.new_routes:
        features.append(
            feature(
                linestring(route.points_m),
                status="new",
                kind=f"new_{route.kind}",
                drawn_as=route.kind,
                legend="新建线路",
                label=route_label(route),
                length_m=route.length_m,
                road_dug=route.road_dug,
                road_work="掘路" if route.road_dug else "不掘路",
            )
        )
    for pole in d.new_poles:
        label = f"新建电杆 {pole.label}".strip()
        features.append(
            feature(point((pole.x_m, pole.y_m)), status="new", kind="pole", drawn_as="pole", legend="新建电杆",
                    label=label)
        )
    for item in d.new_equipment:
        features.append(
            feature(point((item.x_m, item.y_m)), status="new", kind=f"new_{item.kind}", drawn_as=item.kind,
                    legend=EQUIPMENT_LEGEND_ZH[item.kind], label=equipment_label(item))
        )
    box = (d.meter_box.x_m, d.meter_box.y_m)
    features.append(feature(point(box), status="new", kind="meter_box", drawn_as="meter_box", legend="计量箱（外墙）",
                            label=f"{d.meter_box.label}（外墙）"))
    features.append(feature(point(box), status="new", kind="ownership_boundary", label=BOUNDARY_LABEL))
    return {"type": "FeatureCollection", "features": features}


def _signed_area(ring: list[list[float]]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True)) / 2
