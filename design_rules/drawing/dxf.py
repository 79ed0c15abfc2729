"""The sketch as DXF (R2010, metres) on named layers, for CAD users."""

from __future__ import annotations

import io
from collections.abc import Callable

import ezdxf
from ezdxf import bbox

from design_rules.catalogue import TypicalDesigns, load_typical_designs
from design_rules.drawing.layout import (
    BOUNDARY_LABEL,
    EQUIPMENT_LEGEND_ZH,
    LINE_KIND_ZH,
    PROPERTY_LABEL,
    access_label,
    all_points,
    equipment_label,
    inward_unit,
    longest_segment_mid,
    property_line_of,
    route_label,
)
from design_rules.drawing.model import DrawingInput, PointM

DXF_LAYERS: dict[str, int] = {
    "EXISTING": 7,
    "NEW_WORKS": 5,
    "PROPERTY_LINE": 1,
    "LABELS": 7,
    "METER_BOX": 5,
    "LEGEND": 7,
}
"""DXF layer names and their ACI colours (7 black/white, 5 blue, 1 red); legend symbols take the colour of
the layer they stand for."""


def render_dxf(d: DrawingInput, *, designs: TypicalDesigns | None = None) -> bytes:
    """Render the sketch as DXF (R2010, units metres) on named layers, for CAD users.

    Layers: ``EXISTING`` (black/white), ``NEW_WORKS`` (blue), ``PROPERTY_LINE`` (red, DASHED),
    ``LABELS``, ``METER_BOX`` (blue) and ``LEGEND``. Lines are LWPOLYLINEs in local metres, poles and transformers
    circles, boxes closed polylines, a cable riser a triangle at its pole and a transformer to uprate a
    ring round it (on ``NEW_WORKS``); texts use the style ``SANLING_CJK`` (font ``simsun.ttc``). A
    legend (图例) of every symbol stands beside the title rows; ``$EXTMIN``/``$EXTMAX`` hold the
    drawing's extents and the active viewport shows them, so CAD opens on the whole sheet.

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
    >>> import io, ezdxf
    >>> doc = ezdxf.read(io.StringIO(render_dxf(d).decode()))
    >>> doc.header["$EXTMIN"][0] < 20 < doc.header["$EXTMAX"][0]
    True
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

    def box(at: PointM, half_w: float, half_h: float, layer: str, **attributes: object) -> None:
        x, y = at
        corners = [
            (x - half_w, y - half_h),
            (x + half_w, y - half_h),
            (x + half_w, y + half_h),
            (x - half_w, y + half_h),
        ]
        msp.add_lwpolyline(corners, close=True, dxfattribs={"layer": layer, **attributes})

    def symbol(kind: str, at: PointM, layer: str, **extra: object) -> None:
        x, y = at
        attributes = {"layer": layer, **extra}
        if kind in ("transformer", "new_transformer"):
            msp.add_circle((x - 0.3 * text_m, y), 0.6 * text_m, dxfattribs=attributes)
            msp.add_circle((x + 0.3 * text_m, y), 0.6 * text_m, dxfattribs=attributes)
        elif kind == "pole":
            msp.add_circle((x, y), 0.4 * text_m, dxfattribs=attributes)
        elif kind == "branch_box":
            box((x, y), 0.6 * text_m, 0.4 * text_m, layer, **extra)
        elif kind == "pole_riser":  # cable terminal (终端头) hanging from the pole
            top, base = y - 0.3 * text_m, y - 1.1 * text_m
            triangle = [(x, top), (x - 0.5 * text_m, base), (x + 0.5 * text_m, base)]
            msp.add_lwpolyline(triangle, close=True, dxfattribs=attributes)
        elif kind == "transformer_uprate":
            msp.add_circle((x, y), 1.2 * text_m, dxfattribs=attributes)
        elif kind == "meter_box":
            box((x, y), 0.5 * text_m, 0.4 * text_m, layer, **extra)

    msp.add_lwpolyline(prop.corners_m(), close=True, dxfattribs={"layer": "PROPERTY_LINE", "ltscale": text_m})
    text(PROPERTY_LABEL, (prop.x_min_m + text_m, prop.y_max_m - 1.5 * text_m))
    for line in d.existing_lines:
        msp.add_lwpolyline(line.points_m, dxfattribs={"layer": "EXISTING"})
        (mx, my), _ = longest_segment_mid(line.points_m)
        text(f"{LINE_KIND_ZH[line.kind]} {line.label}".strip(), (mx, my + text_m / 2))
    for t in d.transformers:
        symbol("transformer", (t.x_m, t.y_m), "EXISTING")
        kva = f" {t.rated_kva:g} kVA" if t.rated_kva else ""
        text(f"既有配变 {t.label}{kva}", (t.x_m + text_m, t.y_m + text_m))
    for a in d.access_points:
        if a.derived:  # issue 20 item 1a: dashed outline, labelled 待核实
            symbol(a.kind, (a.x_m, a.y_m), "EXISTING", linetype="DASHED", ltscale=text_m / 4)
        else:
            symbol(a.kind, (a.x_m, a.y_m), "EXISTING")
        text(access_label(a), (a.x_m + text_m / 2, a.y_m + text_m / 2))
    for route in d.new_routes:
        msp.add_lwpolyline(route.points_m, dxfattribs={"layer": "NEW_WORKS"})
        (mx, my), _ = longest_segment_mid(route.points_m)
        text(route_label(route), (mx, my + text_m / 2))
    for pole in d.new_poles:
        symbol("pole", (pole.x_m, pole.y_m), "NEW_WORKS")
    for item in d.new_equipment:
        symbol(item.kind, (item.x_m, item.y_m), "NEW_WORKS")
        text(equipment_label(item), (item.x_m + text_m / 2, item.y_m - 1.8 * text_m))
    bx, by = d.meter_box.x_m, d.meter_box.y_m
    symbol("meter_box", (bx, by), "METER_BOX")
    text(f"{d.meter_box.label}（外墙）", (bx + text_m / 2, by - 1.5 * text_m), "METER_BOX")
    ux, uy = inward_unit(d, prop)
    mark = (bx + ux * text_m, by + uy * text_m)
    msp.add_line((bx, by), mark, dxfattribs={"layer": "METER_BOX"})
    msp.add_circle(mark, 0.2 * text_m, dxfattribs={"layer": "METER_BOX"})
    text(BOUNDARY_LABEL, (mark[0] + text_m / 2, mark[1] + text_m / 2))
    title_x, title_y = min(p[0] for p in points), min(p[1] for p in points) - 3 * text_m
    _dxf_title(d, designs, text, title_x, title_y, text_m)
    legend_x = max(title_x + 30 * text_m, max(p[0] for p in points) - 14 * text_m)
    for index, (kind, layer, label) in enumerate(_LEGEND):
        x, y = legend_x + text_m, title_y - (index + 1) * 1.6 * text_m
        colour = {"color": DXF_LAYERS[layer]}
        if kind == "line":
            msp.add_line((x - 0.8 * text_m, y), (x + 0.8 * text_m, y), dxfattribs={"layer": "LEGEND", **colour})
        elif kind == "property":
            box((x, y), 0.8 * text_m, 0.4 * text_m, "LEGEND", linetype="DASHED", ltscale=text_m / 4, **colour)
        else:
            symbol(kind, (x, y + (0.6 * text_m if kind == "pole_riser" else 0)), "LEGEND", **colour)
        text(label, (x + 2 * text_m, y - text_m / 2), "LEGEND")
    text("图例", (legend_x, title_y), "LEGEND")
    extents = bbox.extents(msp, fast=True)
    if extents.has_data:
        msp.reset_extents(extents.extmin, extents.extmax)  # written to $EXTMIN/$EXTMAX on save
        doc.set_modelspace_vport(height=extents.size.y * 1.05, center=extents.center)
    stream = io.StringIO()
    doc.write(stream)
    return stream.getvalue().encode("utf-8")


#: The DXF legend: symbol kind, layer and text of every convention (existing black, new blue, red line).
_LEGEND: tuple[tuple[str, str, str], ...] = (
    ("transformer", "EXISTING", "既有配变"),
    ("pole", "EXISTING", "既有电杆"),
    ("branch_box", "EXISTING", "既有电缆分支箱"),
    ("line", "EXISTING", "既有低压线路"),
    ("line", "NEW_WORKS", "新建线路（注长度、掘路）"),
    ("pole", "NEW_WORKS", "新建电杆"),
    *((kind, "NEW_WORKS", text) for kind, text in EQUIPMENT_LEGEND_ZH.items()),
    ("meter_box", "METER_BOX", "计量箱（外墙）"),
    ("property", "PROPERTY_LINE", "客户红线"),
)


def _dxf_title(
    d: DrawingInput, designs: TypicalDesigns, text: Callable[..., None], x_m: float, y_m: float, text_m: float
) -> None:
    title = d.title
    design = designs.designs.get(title.job_class)
    customer = f"客户：{title.customer}  " if title.customer else ""  # no placeholder when none is named
    rows = [
        f"工程建设简图  工单号：{title.job_id}",
        f"{customer}工程类别：{design.name_zh if design else title.job_class}",
        f"日期：{title.drawing_date.isoformat()}",
        *title.works_summary,
    ]
    if title.total_cost_cny is not None:
        rows.append(f"建设资金（供电企业出资）：{title.total_cost_cny:,.2f} 元")
    for index, row in enumerate(rows):
        text(row, (x_m, y_m - index * 1.6 * text_m))
