"""Geometry and labels in local metres shared by the three renderers: default property line, route label.

The names here are the package's internals for :mod:`.svg`, :mod:`.geojson` and :mod:`.dxf`; only
:func:`route_label` and :func:`property_line_of` are re-exported by :mod:`design_rules.drawing`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import pairwise

from design_rules.catalogue import DrawingStyle, load_typical_designs
from design_rules.drawing.model import (
    DrawingInput,
    ExistingAccessPoint,
    NewEquipment,
    NewRoute,
    PointM,
    PropertyLine,
)

ROUTE_KIND_ZH = {
    "overhead": "新建架空线路",
    "cable": "新建电缆线路",
    "service_drop": "新建接户线",
    "service_cable": "新建接户电缆（沿墙穿管）",
    "mv_line": "新建10kV线路",
}
LINE_KIND_ZH = {"overhead": "既有低压架空线", "cable": "既有低压电缆"}
ACCESS_KIND_ZH = {"pole": "既有电杆", "branch_box": "既有电缆分支箱"}
#: A branch box derived from the cable geometry (issue 20 item 1a): named so, and marked to be confirmed.
DERIVED_ACCESS_ZH = "推定电缆分支箱"
DERIVED_MARK_ZH = "待核实"
#: Legend text of a derived branch box (dashed outline).
DERIVED_LEGEND_ZH = "推定电缆分支箱（虚框，待核实）"
#: Legend text of each new-equipment symbol (the symbol's own label is the BOM assembly's name).
EQUIPMENT_LEGEND_ZH = {
    "branch_box": "新建电缆分支箱",
    "pole_riser": "电缆上杆及终端头",
    "transformer_uprate": "配变增容改造（蓝圈）",
    "new_transformer": "新增配变（含JP柜）",
}
BOUNDARY_LABEL = "产权分界点（表箱出线端子）"
PROPERTY_LABEL = "客户红线（客户产权范围）"


def route_label(route: NewRoute) -> str:
    """Label of a new route: kind, designation, length in m and 掘路/不掘路 (CQ-32 annex 3).

    Examples
    --------
    >>> route_label(NewRoute(kind="cable", points_m=((0, 0), (80, 0)), length_m=84.6, road_dug=True,
    ...                      label="YJV22-0.6/1kV-4x95"))
    '新建电缆线路 YJV22-0.6/1kV-4x95 85 m 掘路'
    """
    parts = [ROUTE_KIND_ZH[route.kind]]
    if route.label:
        parts.append(route.label)
    parts.append(f"{route.length_m:.0f} m")
    parts.append("掘路" if route.road_dug else "不掘路")
    return " ".join(parts)


def access_label(access: ExistingAccessPoint) -> str:
    """Label of an existing access point; a derived branch box says so and is marked 待核实.

    Examples
    --------
    >>> access_label(ExistingAccessPoint(kind="branch_box", x_m=0, y_m=0, label="L7@end", derived=True))
    '推定电缆分支箱 L7@end 待核实'
    >>> access_label(ExistingAccessPoint(kind="pole", x_m=0, y_m=0, label="P1"))
    '既有电杆 P1'
    """
    if access.derived:
        return f"{DERIVED_ACCESS_ZH} {access.label} {DERIVED_MARK_ZH}".replace("  ", " ")
    return f"{ACCESS_KIND_ZH[access.kind]} {access.label}".strip()


def equipment_label(item: NewEquipment) -> str:
    """Label of a new-equipment symbol: its own label (the BOM assembly's name), else the legend text."""
    return item.label or EQUIPMENT_LEGEND_ZH[item.kind]


def property_line_of(d: DrawingInput, style: DrawingStyle | None = None) -> PropertyLine:
    """The given property line, or the default rectangle with the meter box on its outer wall.

    The default faces the last segment of the first new route: the property extends beyond the meter
    box in that direction (its dominant axis), ``default_property_depth_m`` deep and
    ``default_property_width_m`` wide, centred on the meter box.

    Examples
    --------
    >>> from datetime import date
    >>> from design_rules.drawing import DrawingInput, MeterBox, NewRoute, TitleBlock
    >>> d = DrawingInput(
    ...     title=TitleBlock(job_id="J1", customer="C", job_class="overhead", drawing_date=date(2024, 5, 6)),
    ...     meter_box=MeterBox(x_m=100, y_m=0),
    ...     new_routes=(NewRoute(kind="overhead", points_m=((0, 0), (100, 0)), length_m=100, road_dug=False),))
    >>> property_line_of(d)
    PropertyLine(x_min_m=100.0, y_min_m=-10.0, x_max_m=115.0, y_max_m=10.0)
    """
    if d.property_line is not None:
        return d.property_line
    style = style or load_typical_designs().drawing
    mx, my = d.meter_box.x_m, d.meter_box.y_m
    dx, dy = 1.0, 0.0
    if d.new_routes:
        (px, py), (qx, qy) = d.new_routes[0].points_m[-2:]
        if (qx, qy) != (px, py):
            dx, dy = qx - px, qy - py
    half_w = style.default_property_width_m / 2
    depth = style.default_property_depth_m
    if abs(dx) >= abs(dy):
        x0, x1 = (mx, mx + depth) if dx > 0 else (mx - depth, mx)
        return PropertyLine(x_min_m=x0, y_min_m=my - half_w, x_max_m=x1, y_max_m=my + half_w)
    y0, y1 = (my, my + depth) if dy > 0 else (my - depth, my)
    return PropertyLine(x_min_m=mx - half_w, y_min_m=y0, x_max_m=mx + half_w, y_max_m=y1)


def all_points(d: DrawingInput, prop: PropertyLine) -> list[PointM]:
    points: list[PointM] = [(d.meter_box.x_m, d.meter_box.y_m), *prop.corners_m()]
    points += [(t.x_m, t.y_m) for t in d.transformers]
    points += [(a.x_m, a.y_m) for a in d.access_points]
    points += [(p.x_m, p.y_m) for p in d.new_poles]
    points += [(e.x_m, e.y_m) for e in d.new_equipment]
    for line in (*d.existing_lines, *d.new_routes):
        points += list(line.points_m)
    return points


def inward_unit(d: DrawingInput, prop: PropertyLine) -> PointM:
    """Unit vector from the meter box toward the inside of the property (customer side)."""
    cx, cy = (prop.x_min_m + prop.x_max_m) / 2, (prop.y_min_m + prop.y_max_m) / 2
    vx, vy = cx - d.meter_box.x_m, cy - d.meter_box.y_m
    norm = math.hypot(vx, vy)
    return (vx / norm, vy / norm) if norm > 1e-9 else (1.0, 0.0)


def longest_segment_mid(points: Iterable[PointM]) -> tuple[PointM, PointM]:
    pts = list(points)
    best = max(pairwise(pts), key=lambda s: math.dist(s[0], s[1]))
    (ax, ay), (bx, by) = best
    return ((ax + bx) / 2, (ay + by) / 2), (bx - ax, by - ay)
