"""The sketch as DXF (R2010, metres) on named layers, for CAD users."""

from __future__ import annotations

import io
from collections.abc import Callable

import ezdxf

from design_rules.catalogue import TypicalDesigns, load_typical_designs
from design_rules.drawing.layout import (
    ACCESS_KIND_ZH,
    BOUNDARY_LABEL,
    LINE_KIND_ZH,
    PROPERTY_LABEL,
    all_points,
    inward_unit,
    longest_segment_mid,
    property_line_of,
    route_label,
)
from design_rules.drawing.model import DrawingInput, PointM

DXF_LAYERS: dict[str, int] = {"EXISTING": 7, "NEW_WORKS": 5, "PROPERTY_LINE": 1, "LABELS": 7, "METER_BOX": 5}
"""DXF layer names and their ACI colours (7 black/white, 5 blue, 1 red)."""


def render_dxf(d: DrawingInput, *, designs: TypicalDesigns | None = None) -> bytes:
    """Render the sketch as DXF (R2010, units metres) on named layers, for CAD users.

    Layers: ``EXISTING`` (black/white), ``NEW_WORKS`` (blue), ``PROPERTY_LINE`` (red, DASHED),
    ``LABELS`` and ``METER_BOX`` (blue). Lines are LWPOLYLINEs in local metres, poles and transformers
    circles, boxes closed polylines; texts use the style ``SANLING_CJK`` (font ``simsun.ttc``).

    Parameters
    ----------
    d : DrawingInput
        The sketch content in local metres.
    designs : TypicalDesigns, optional
        Default property size and job-class names; the packaged file when omitted.

    Returns
    -------
    bytes
        The DXF document, UTF-8.

    Examples
    --------
    >>> from datetime import date
    >>> from design_rules.drawing import DrawingInput, MeterBox, TitleBlock
    >>> d = DrawingInput(
    ...     title=TitleBlock(job_id="J1", customer="C", job_class="direct_meter", drawing_date=date(2024, 5, 6)),
    ...     meter_box=MeterBox(x_m=20, y_m=0))
    >>> render_dxf(d)[:20].decode().split()[:2]
    ['0', 'SECTION']
    """
    designs = designs or load_typical_designs()
    prop = property_line_of(d, designs.drawing)
    points = all_points(d, prop)
    extent_m = max(
        max(p[0] for p in points) - min(p[0] for p in points),
        max(p[1] for p in points) - min(p[1] for p in points),
        30.0,
    )
    text_m = round(extent_m / 70, 3)

    doc = ezdxf.new("R2010", setup=True)
    doc.units = ezdxf.units.M
    doc.styles.add("SANLING_CJK", font="simsun.ttc")
    for name, colour in DXF_LAYERS.items():
        doc.layers.add(name, color=colour, linetype="DASHED" if name == "PROPERTY_LINE" else "Continuous")
    msp = doc.modelspace()

    def text(content: str, at: PointM, layer: str = "LABELS") -> None:
        msp.add_text(content, height=text_m, dxfattribs={"layer": layer, "style": "SANLING_CJK", "insert": at})

    def box(at: PointM, half_w: float, half_h: float, layer: str) -> None:
        x, y = at
        corners = [
            (x - half_w, y - half_h),
            (x + half_w, y - half_h),
            (x + half_w, y + half_h),
            (x - half_w, y + half_h),
        ]
        msp.add_lwpolyline(corners, close=True, dxfattribs={"layer": layer})

    msp.add_lwpolyline(prop.corners_m(), close=True, dxfattribs={"layer": "PROPERTY_LINE", "ltscale": text_m})
    text(PROPERTY_LABEL, (prop.x_min_m + text_m, prop.y_max_m - 1.5 * text_m))
    for line in d.existing_lines:
        msp.add_lwpolyline(line.points_m, dxfattribs={"layer": "EXISTING"})
        (mx, my), _ = longest_segment_mid(line.points_m)
        text(f"{LINE_KIND_ZH[line.kind]} {line.label}".strip(), (mx, my + text_m / 2))
    for t in d.transformers:
        msp.add_circle((t.x_m - 0.3 * text_m, t.y_m), 0.6 * text_m, dxfattribs={"layer": "EXISTING"})
        msp.add_circle((t.x_m + 0.3 * text_m, t.y_m), 0.6 * text_m, dxfattribs={"layer": "EXISTING"})
        kva = f" {t.rated_kva:g} kVA" if t.rated_kva else ""
        text(f"既有配变 {t.label}{kva}", (t.x_m + text_m, t.y_m + text_m))
    for a in d.access_points:
        if a.kind == "pole":
            msp.add_circle((a.x_m, a.y_m), 0.4 * text_m, dxfattribs={"layer": "EXISTING"})
        else:
            box((a.x_m, a.y_m), 0.6 * text_m, 0.4 * text_m, "EXISTING")
        text(f"{ACCESS_KIND_ZH[a.kind]} {a.label}".strip(), (a.x_m + text_m / 2, a.y_m + text_m / 2))
    for route in d.new_routes:
        msp.add_lwpolyline(route.points_m, dxfattribs={"layer": "NEW_WORKS"})
        (mx, my), _ = longest_segment_mid(route.points_m)
        text(route_label(route), (mx, my + text_m / 2))
    for pole in d.new_poles:
        msp.add_circle((pole.x_m, pole.y_m), 0.4 * text_m, dxfattribs={"layer": "NEW_WORKS"})
    bx, by = d.meter_box.x_m, d.meter_box.y_m
    box((bx, by), 0.5 * text_m, 0.4 * text_m, "METER_BOX")
    text(f"{d.meter_box.label}（外墙）", (bx + text_m / 2, by - 1.5 * text_m), "METER_BOX")
    ux, uy = inward_unit(d, prop)
    mark = (bx + ux * text_m, by + uy * text_m)
    msp.add_line((bx, by), mark, dxfattribs={"layer": "METER_BOX"})
    msp.add_circle(mark, 0.2 * text_m, dxfattribs={"layer": "METER_BOX"})
    text(BOUNDARY_LABEL, (mark[0] + text_m / 2, mark[1] + text_m / 2))
    _dxf_title(d, designs, text, min(p[0] for p in points), min(p[1] for p in points) - 3 * text_m, text_m)
    stream = io.StringIO()
    doc.write(stream)
    return stream.getvalue().encode("utf-8")


def _dxf_title(
    d: DrawingInput, designs: TypicalDesigns, text: Callable[..., None], x_m: float, y_m: float, text_m: float
) -> None:
    title = d.title
    design = designs.designs.get(title.job_class)
    rows = [
        f"工程建设简图  工单号：{title.job_id}",
        f"客户：{title.customer}  工程类别：{design.name_zh if design else title.job_class}",
        f"日期：{title.drawing_date.isoformat()}",
        *title.works_summary,
    ]
    if title.total_cost_cny is not None:
        rows.append(f"建设资金（供电企业出资）：{title.total_cost_cny:,.2f} 元")
    for index, row in enumerate(rows):
        text(row, (x_m, y_m - index * 1.6 * text_m))
