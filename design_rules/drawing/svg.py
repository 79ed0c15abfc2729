"""The sketch as an SVG sheet: map frame (north up), greedy label placement, legend and title block."""

from __future__ import annotations

import heapq
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

from design_rules.catalogue import DrawingStyle, TypicalDesigns, load_typical_designs
from design_rules.drawing.layout import (
    BOUNDARY_LABEL,
    DERIVED_LEGEND_ZH,
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
from design_rules.drawing.model import DrawingInput, NewPole, PointM, PropertyLine

# Page layout in px: map frame, legend column and title block (presentation only).
_MARGIN_PX = 20.0
_LEGEND_WIDTH_PX = 250.0
_TITLE_HEIGHT_PX = 150.0
_TEXT_PX = 12.0
_CALLOUT_WIDTH_PX = 190.0
# More pole labels than this would cover the sheet: the first, the last and evenly spaced ones between.
_MAX_POLE_LABELS = 40
# Existing access points and lines labelled at most, the nearest to the meter box first: a frame grown to a
# source transformer's whole network holds hundreds, and their labels piled into a few cells of the placer.
_MAX_EXISTING_LABELS = 40


class _Frame:
    """Local metres → page pixels (north up) for the map frame."""

    def __init__(self, points: list[PointM], left: float, top: float, width: float, height: float) -> None:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        span_x = max(max(xs) - min(xs), 30.0)
        span_y = max(max(ys) - min(ys), 30.0)
        self.cx, self.cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        self.scale = min(width / (span_x * 1.45), height / (span_y * 1.45))
        self.ox, self.oy = left + width / 2, top + height / 2
        self.left, self.top, self.width, self.height = left, top, width, height

    def px(self, point: PointM) -> PointM:
        return (
            round(self.ox + (point[0] - self.cx) * self.scale, 2),
            round(self.oy - (point[1] - self.cy) * self.scale, 2),
        )

    def path(self, points: Iterable[PointM]) -> str:
        return " ".join(f"{x},{y}" for x, y in (self.px(p) for p in points))


def _sub(parent: ET.Element, tag: str, **attributes: Any) -> ET.Element:
    return ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attributes.items()})


def _text(parent: ET.Element, x: float, y: float, content: str, **attributes: Any) -> ET.Element:
    attributes.setdefault("font_size", _TEXT_PX)
    element = _sub(parent, "text", x=round(x, 2), y=round(y, 2), **attributes)
    element.text = content
    return element


def _nice_scale_m(scale_px_per_m: float, max_px: float) -> float:
    best = 1.0
    for length_m in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000):
        if length_m * scale_px_per_m <= max_px:
            best = float(length_m)
    return best


def _svg_symbols(group: ET.Element, kind: str, x: float, y: float, colour: str) -> None:
    if kind in ("transformer", "new_transformer"):
        _sub(group, "circle", cx=x - 4, cy=y, r=7, fill="none", stroke=colour, stroke_width=1.5)
        _sub(group, "circle", cx=x + 4, cy=y, r=7, fill="none", stroke=colour, stroke_width=1.5)
    elif kind == "pole":
        _sub(group, "circle", cx=x, cy=y, r=4.5, fill="white", stroke=colour, stroke_width=1.5)
    elif kind == "branch_box":
        _sub(group, "rect", x=x - 7, y=y - 5, width=14, height=10, fill="white", stroke=colour, stroke_width=1.5)
    elif kind == "meter_box":
        _sub(group, "rect", x=x - 6, y=y - 5, width=12, height=10, fill=colour, stroke=colour, stroke_width=1.5)
    elif kind == "pole_riser":  # cable terminal (终端头): a triangle hanging from the pole
        _sub(group, "polygon", points=f"{x},{y + 3} {x - 6},{y + 13} {x + 6},{y + 13}", fill="white", stroke=colour,
             stroke_width=1.5)
    elif kind == "transformer_uprate":  # a ring around the transformer symbol
        _sub(group, "circle", cx=x, cy=y, r=13, fill="none", stroke=colour, stroke_width=2)


def render_svg(d: DrawingInput, *, designs: TypicalDesigns | None = None) -> str:
    """Render the 工程建设简图 as SVG text (R4.4; CQ-32 annex 3).

    Existing equipment is black; new works are blue and each new route is labelled with its length in
    metres and 掘路 or 不掘路; the customer's property red line is a red dashed box; the meter box sits
    on the outside wall with the ownership boundary (产权分界点) marked at its outgoing terminals. A north
    arrow, a scale bar, a legend and a title block (job, customer, job class, date, works, funding)
    complete the sheet. Text uses a CJK-capable font-family list.

    Parameters
    ----------
    d : DrawingInput
        The sketch content in local metres.
    designs : TypicalDesigns, optional
        Drawing style and job-class names; the packaged file when omitted.

    Returns
    -------
    str
        A standalone SVG document.

    Examples
    --------
    >>> from datetime import date
    >>> from design_rules.drawing import DrawingInput, ExistingAccessPoint, MeterBox, NewRoute, TitleBlock
    >>> d = DrawingInput(
    ...     title=TitleBlock(job_id="J1", customer="某某商店", job_class="direct_meter", drawing_date=date(2024, 5, 6)),
    ...     meter_box=MeterBox(x_m=20, y_m=0),
    ...     access_points=(ExistingAccessPoint(kind="pole", x_m=0, y_m=0),),
    ...     new_routes=(NewRoute(kind="service_drop", points_m=((0, 0), (20, 0)), length_m=20, road_dug=False),))
    >>> svg = render_svg(d)
    >>> svg.startswith("<?xml") and "不掘路" in svg and "产权分界点" in svg
    True
    """
    designs = designs or load_typical_designs()
    style = designs.drawing
    prop = property_line_of(d, style)
    width, height = style.canvas_width_px, style.canvas_height_px
    map_w = width - _LEGEND_WIDTH_PX - 3 * _MARGIN_PX
    map_h = height - _TITLE_HEIGHT_PX - 3 * _MARGIN_PX
    points = all_points(d, prop)
    frame = _Frame(points, _MARGIN_PX, _MARGIN_PX, map_w, map_h)
    # Reserve room for the customer callouts beyond the far side of the property, then refit.
    ux, uy = inward_unit(d, prop)
    reach_m = _CALLOUT_WIDTH_PX / frame.scale
    far_m = (d.meter_box.x_m + ux * reach_m, d.meter_box.y_m + uy * reach_m)
    frame = _Frame([*points, far_m], _MARGIN_PX, _MARGIN_PX, map_w, map_h)
    fonts = ", ".join(f"'{f}'" if " " in f else f for f in style.font_family)
    black, blue, red = style.existing_colour, style.new_colour, style.property_colour

    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "width": f"{width:g}",
            "height": f"{height:g}",
            "viewBox": f"0 0 {width:g} {height:g}",
            "font-family": fonts,
        },
    )
    _sub(svg, "title").text = f"工程建设简图 {d.title.job_id}"
    _sub(svg, "rect", x=0, y=0, width=f"{width:g}", height=f"{height:g}", fill="white")
    _sub(svg, "rect", x=frame.left, y=frame.top, width=map_w, height=map_h, fill="none", stroke=black)

    group = _sub(svg, "g", id="property-line", fill="none", stroke=red, stroke_width=2)
    group.set("stroke-dasharray", style.property_dasharray)
    _sub(group, "polygon", points=frame.path(prop.corners_m()))

    existing = _sub(svg, "g", id="existing", stroke=black, fill="none")
    for line in d.existing_lines:
        element = _sub(existing, "polyline", points=frame.path(line.points_m), stroke_width=2)
        if line.kind == "cable":
            element.set("stroke-dasharray", "2 3")
    for transformer in d.transformers:
        _svg_symbols(existing, "transformer", *frame.px((transformer.x_m, transformer.y_m)), black)
    for access in d.access_points:
        # a derived branch box (issue 20 item 1a): the same symbol with a dashed outline
        holder = _sub(existing, "g", class_="derived", stroke_dasharray="3 2") if access.derived else existing
        _svg_symbols(holder, access.kind, *frame.px((access.x_m, access.y_m)), black)

    new = _sub(svg, "g", id="new-works", stroke=blue, fill="none")
    for route in d.new_routes:
        element = _sub(new, "polyline", points=frame.path(route.points_m), stroke_width=3)
        if route.kind == "cable":
            element.set("stroke-dasharray", "10 4")
        elif route.kind == "mv_line":  # 10 kV: dash-dot
            element.set("stroke-dasharray", "12 3 2 3")
    for pole in d.new_poles:
        _svg_symbols(new, "pole", *frame.px((pole.x_m, pole.y_m)), blue)
    for item in d.new_equipment:
        _svg_symbols(_sub(new, "g", class_=f"new-{item.kind}"), item.kind, *frame.px((item.x_m, item.y_m)), blue)
    box_x, box_y = frame.px((d.meter_box.x_m, d.meter_box.y_m))
    _svg_symbols(new, "meter_box", box_x, box_y, blue)

    ux, uy = inward_unit(d, prop)
    mark_x, mark_y = box_x + ux * 14, box_y - uy * 14  # page y points down
    boundary = _sub(svg, "g", id="ownership-boundary", stroke=blue, fill=blue)
    _sub(boundary, "line", x1=box_x, y1=box_y, x2=mark_x, y2=mark_y, stroke_width=1.5)
    _sub(boundary, "circle", cx=round(mark_x, 2), cy=round(mark_y, 2), r=3.5)

    labels = _sub(svg, "g", id="labels")
    _svg_labels(labels, d, prop, frame, style, (mark_x, mark_y))
    _svg_north_arrow(svg, frame, black)
    _svg_scale_bar(svg, frame, black)
    _svg_legend(svg, style, width - _LEGEND_WIDTH_PX - _MARGIN_PX, _MARGIN_PX)
    _svg_title_block(svg, d, designs, _MARGIN_PX, height - _TITLE_HEIGHT_PX - _MARGIN_PX, width - 2 * _MARGIN_PX)
    ET.indent(svg)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(svg, encoding="unicode") + "\n"


Box = tuple[float, float, float, float]


def _text_box(x: float, y: float, content: str, anchor: str) -> Box:
    """Approximate page box of a text: CJK glyphs one em wide, others about 0.55 em."""
    width = sum(_TEXT_PX if ord(c) >= 0x2E80 else 0.58 * _TEXT_PX for c in content)
    left = x - width if anchor == "end" else x - width / 2 if anchor == "middle" else x
    return (left, y - 0.9 * _TEXT_PX, left + width, y + 0.25 * _TEXT_PX)


class _Placer:
    """Greedy label placement: try candidate offsets, keep the first that hits nothing placed so far.

    Placed boxes are kept in a uniform grid of ``_CELL_PX`` cells (indices clamped to the frame, so a box
    beyond the edge lands in the edge cells and is still found), so a candidate is tested only against the
    boxes of the cells it covers: a sheet with thousands of blocked points along long lines took seconds
    when every candidate was compared with every box.
    """

    _CELL_PX = 32.0

    def __init__(self, frame: _Frame) -> None:
        self.frame = frame
        self.boxes: list[Box] = []
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._max_i = max(int(frame.width // self._CELL_PX), 0)
        self._max_j = max(int(frame.height // self._CELL_PX), 0)

    def _cell_span(self, box: Box) -> tuple[range, range]:
        f, c = self.frame, self._CELL_PX

        def clamp(value: float, top: int) -> int:
            return min(max(math.floor(value / c), 0), top)

        return (range(clamp(box[0] - f.left, self._max_i), clamp(box[2] - f.left, self._max_i) + 1),
                range(clamp(box[1] - f.top, self._max_j), clamp(box[3] - f.top, self._max_j) + 1))

    def add(self, box: Box) -> None:
        index = len(self.boxes)
        self.boxes.append(box)
        columns, rows = self._cell_span(box)
        for i in columns:
            for j in rows:
                self._cells.setdefault((i, j), []).append(index)

    def block_point(self, x: float, y: float, half_px: float = 7.0) -> None:
        self.add((x - half_px, y - half_px, x + half_px, y + half_px))

    def block_polyline(self, points: Iterable[PointM]) -> None:
        for a, b in pairwise([self.frame.px(p) for p in points]):
            steps = max(int(math.dist(a, b) // 6), 1)
            for i in range(steps + 1):
                self.block_point(a[0] + (b[0] - a[0]) * i / steps, a[1] + (b[1] - a[1]) * i / steps, 1.5)

    def _hits(self, box: Box) -> int:
        f = self.frame
        outside = box[0] < f.left or box[2] > f.left + f.width or box[1] < f.top or box[3] > f.top + f.height
        columns, rows = self._cell_span(box)
        near = {index for i in columns for j in rows for index in self._cells.get((i, j), ())}
        overlaps = 0
        for index in near:
            b = self.boxes[index]
            overlaps += box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
        return overlaps + (100 if outside else 0)

    def place(
        self,
        group: ET.Element,
        x: float,
        y: float,
        content: str,
        fill: str,
        candidates: Iterable[tuple[float, float, str]],
    ) -> None:
        options = [(x + dx, y + dy, anchor) for dx, dy, anchor in candidates]
        scored = [
            (self._hits(_text_box(tx, ty, content, anchor)), index) for index, (tx, ty, anchor) in enumerate(options)
        ]
        tx, ty, anchor = options[min(scored)[1]]  # fewest hits, earliest candidate on ties
        self.add(_text_box(tx, ty, content, anchor))
        _text(group, tx, ty, content, fill=fill, text_anchor=anchor)


_AROUND_POINT = (
    (10, -8, "start"),
    (10, 18, "start"),
    (0, -14, "middle"),
    (0, 26, "middle"),
    (-10, -8, "end"),
    (-10, 18, "end"),
    (16, -24, "start"),
    (16, 34, "start"),
    (-16, -24, "end"),
    (-16, 34, "end"),
)
_ALONG_HORIZONTAL = (
    (0, -10, "middle"),
    (0, 20, "middle"),
    (40, -10, "middle"),
    (-40, -10, "middle"),
    (40, 20, "middle"),
    (-40, 20, "middle"),
)
_ALONG_VERTICAL = ((12, 4, "start"), (-12, 4, "end"), (12, -30, "start"), (12, 38, "start"), (-12, -30, "end"))


def labelled_poles(poles: Iterable[NewPole], limit: int) -> list[NewPole]:
    """The new poles that get a label: all of them up to ``limit``, else ``limit`` evenly spaced along the line.

    The first and the last are always among them (a sheet numbers the poles of a long line every k-th, as a
    drawing office does); poles without a label are skipped.

    >>> poles = [NewPole(x_m=i, y_m=0, label=f"N{i}") for i in range(1, 101)]
    >>> [p.label for p in labelled_poles(poles, 5)]
    ['N1', 'N26', 'N51', 'N75', 'N100']
    >>> len(labelled_poles(poles[:7], 40))
    7
    """
    named = [pole for pole in poles if pole.label]
    if len(named) <= limit:
        return named
    last = len(named) - 1
    return [named[round(k * last / (limit - 1))] for k in range(limit)]


def _svg_labels(
    group: ET.Element, d: DrawingInput, prop: PropertyLine, frame: _Frame, style: DrawingStyle, mark: PointM
) -> None:
    black, blue = style.existing_colour, style.new_colour
    placer = _Placer(frame)
    for line in (*d.existing_lines, *d.new_routes):
        placer.block_polyline(line.points_m)
    placer.block_polyline(prop.corners_m() + prop.corners_m()[:1])
    for x_m, y_m in (
        [(t.x_m, t.y_m) for t in d.transformers]
        + [(a.x_m, a.y_m) for a in d.access_points]
        + [(p.x_m, p.y_m) for p in d.new_poles]
        + [(e.x_m, e.y_m) for e in d.new_equipment]
    ):
        placer.block_point(*frame.px((x_m, y_m)))
    for box in _svg_customer_callouts(group, d, prop, frame, style, mark):
        placer.add(box)
    for route in d.new_routes:
        (mx, my), (dx, dy) = longest_segment_mid(route.points_m)
        candidates = _ALONG_HORIZONTAL if abs(dx) >= abs(dy) else _ALONG_VERTICAL
        placer.place(group, *frame.px((mx, my)), route_label(route), blue, candidates)
    for item in d.new_equipment:
        placer.place(group, *frame.px((item.x_m, item.y_m)), equipment_label(item), blue, _AROUND_POINT)
    for transformer in d.transformers:
        kva = f" {transformer.rated_kva:g} kVA" if transformer.rated_kva else ""
        text = f"既有配变 {transformer.label}{kva}"
        placer.place(group, *frame.px((transformer.x_m, transformer.y_m)), text, black, _AROUND_POINT)
    meter_at = (d.meter_box.x_m, d.meter_box.y_m)
    for access in heapq.nsmallest(_MAX_EXISTING_LABELS, d.access_points,
                                  key=lambda a: math.dist((a.x_m, a.y_m), meter_at)):
        text = access_label(access)
        placer.place(group, *frame.px((access.x_m, access.y_m)), text, black, _AROUND_POINT)
    for pole in labelled_poles(d.new_poles, _MAX_POLE_LABELS):
        placer.place(group, *frame.px((pole.x_m, pole.y_m)), f"新建电杆 {pole.label}", blue, _AROUND_POINT)
    middles = [(line, *longest_segment_mid(line.points_m)) for line in d.existing_lines]
    for line, (mx, my), (dx, dy) in heapq.nsmallest(_MAX_EXISTING_LABELS, middles,
                                                    key=lambda m: math.dist(m[1], meter_at)):
        candidates = _ALONG_HORIZONTAL if abs(dx) >= abs(dy) else _ALONG_VERTICAL
        text = f"{LINE_KIND_ZH[line.kind]} {line.label}".strip()
        placer.place(group, *frame.px((mx, my)), text, black, candidates)


def _svg_customer_callouts(
    group: ET.Element, d: DrawingInput, prop: PropertyLine, frame: _Frame, style: DrawingStyle, mark: PointM
) -> list[Box]:
    """Meter box, ownership boundary and red-line labels stacked beyond the far side of the property.

    The route arrives on the meter-box side, so the far side is free; leader lines tie each label to
    its feature however small the property is on the page.
    """
    blue, red = style.new_colour, style.property_colour
    ux, uy = inward_unit(d, prop)
    cx, cy = (prop.x_min_m + prop.x_max_m) / 2, (prop.y_min_m + prop.y_max_m) / 2
    half_x, half_y = (prop.x_max_m - prop.x_min_m) / 2, (prop.y_max_m - prop.y_min_m) / 2
    far_x, far_y = frame.px((cx + ux * half_x, cy + uy * half_y))
    step = 18.0
    if abs(ux) >= abs(uy):
        anchor = "start" if ux > 0 else "end"
        text_x = far_x + (14 if ux > 0 else -14)
        first_y = far_y - step + 4
    else:
        anchor = "start"
        text_x = far_x + 14
        first_y = far_y - 12 - 2 * step if uy > 0 else far_y + 22
    box = frame.px((d.meter_box.x_m, d.meter_box.y_m))
    callouts = [
        (f"{d.meter_box.label}（外墙）", blue, box),
        (BOUNDARY_LABEL, blue, mark),
        (PROPERTY_LABEL, red, (far_x, far_y)),
    ]
    boxes: list[Box] = []
    for index, (label, colour, (target_x, target_y)) in enumerate(callouts):
        y = first_y + index * step
        _text(group, text_x, y, label, fill=colour, text_anchor=anchor)
        boxes.append(_text_box(text_x, y, label, anchor))
        leader_x = text_x - 3 if anchor == "start" else text_x + 3
        _sub(group, "line", x1=leader_x, y1=y - 4, x2=target_x, y2=target_y, stroke=colour, stroke_width=0.6)
    return boxes


def _svg_north_arrow(svg: ET.Element, frame: _Frame, colour: str) -> None:
    x, y = frame.left + frame.width - 30, frame.top + 20
    group = _sub(svg, "g", id="north-arrow", stroke=colour, fill=colour)
    _sub(group, "polygon", points=f"{x},{y} {x - 8},{y + 26} {x},{y + 20} {x + 8},{y + 26}")
    _text(group, x, y + 42, "N 北", text_anchor="middle", stroke="none")


def _svg_scale_bar(svg: ET.Element, frame: _Frame, colour: str) -> None:
    length_m = _nice_scale_m(frame.scale, frame.width / 4)
    length_px = round(length_m * frame.scale, 2)
    x, y = frame.left + 20, frame.top + frame.height - 20
    group = _sub(svg, "g", id="scale-bar", stroke=colour, fill=colour)
    _sub(group, "rect", x=x, y=y - 4, width=length_px, height=4, fill="none")
    _sub(group, "rect", x=x, y=y - 4, width=round(length_px / 2, 2), height=4)
    _text(group, x, y - 8, "0", stroke="none")
    _text(group, x + length_px, y - 8, f"{length_m:g} m", stroke="none", text_anchor="middle")


def _svg_legend(svg: ET.Element, style: DrawingStyle, left: float, top: float) -> None:
    black, blue, red = style.existing_colour, style.new_colour, style.property_colour
    group = _sub(svg, "g", id="legend")
    entries: list[tuple[str, str, str]] = [
        ("transformer", black, "既有配变（黑）"),
        ("pole", black, "既有电杆"),
        ("branch_box", black, "既有电缆分支箱"),
        ("derived_branch_box", black, DERIVED_LEGEND_ZH),
        ("line", black, "既有低压线路"),
        ("route", blue, "新建线路（蓝，注长度、掘路）"),
        ("mv_route", blue, "新建10kV线路（点划线）"),
        ("pole", blue, "新建电杆"),
        *((kind, blue, text) for kind, text in EQUIPMENT_LEGEND_ZH.items()),
        ("meter_box", blue, "计量箱（外墙）"),
        ("boundary", blue, "产权分界点"),
        ("property", red, "客户红线（红色虚框）"),
    ]
    step = 27
    height = 48 + len(entries) * step - 8
    _sub(group, "rect", x=left, y=top, width=_LEGEND_WIDTH_PX, height=height, fill="none", stroke=black)
    _text(group, left + 10, top + 22, "图例", font_weight="bold", fill=black)
    for index, (kind, colour, text) in enumerate(entries):
        y = top + 48 + index * step
        x = left + 24
        if kind in ("line", "route", "mv_route"):
            element = _sub(
                group, "line", x1=x - 12, y1=y, x2=x + 12, y2=y, stroke=colour, stroke_width=2 if kind == "line" else 3
            )
            if kind == "mv_route":
                element.set("stroke-dasharray", "8 2 2 2")
        elif kind == "property":
            element = _sub(group, "rect", x=x - 12, y=y - 7, width=24, height=14, fill="none", stroke=colour)
            element.set("stroke-dasharray", style.property_dasharray)
        elif kind == "boundary":
            _sub(group, "circle", cx=x, cy=y, r=3.5, fill=colour, stroke=colour)
        elif kind == "derived_branch_box":
            _svg_symbols(_sub(group, "g", stroke_dasharray="3 2"), "branch_box", x, y, colour)
        elif kind in ("pole_riser", "transformer_uprate"):  # drawn as at their place: on a pole, round a transformer
            under = "pole" if kind == "pole_riser" else "transformer"
            _svg_symbols(group, under, x, y - (4 if kind == "pole_riser" else 0), black)
            _svg_symbols(group, kind, x, y - (4 if kind == "pole_riser" else 0), colour)
        else:
            _svg_symbols(group, kind, x, y, colour)
        _text(group, x + 24, y + 4, text, fill=colour)


def _svg_title_block(
    svg: ET.Element, d: DrawingInput, designs: TypicalDesigns, left: float, top: float, width: float
) -> None:
    black = designs.drawing.existing_colour
    title = d.title
    group = _sub(svg, "g", id="title-block", fill=black)
    _sub(group, "rect", x=left, y=top, width=width, height=_TITLE_HEIGHT_PX, fill="none", stroke=black)
    _text(group, left + 12, top + 26, "工程建设简图", font_size=18, font_weight="bold")
    design = designs.designs.get(title.job_class)
    job_class_zh = design.name_zh if design else title.job_class
    rows = [
        f"工单号：{title.job_id}",
        *([f"客户：{title.customer}"] if title.customer else []),  # no placeholder when none is named
        f"工程类别：{job_class_zh}",
        f"日期：{title.drawing_date.isoformat()}",
    ]
    for index, row in enumerate(rows):
        _text(group, left + 12, top + 52 + index * 22, row)
    works = list(title.works_summary)
    if title.total_cost_cny is not None:
        works.append(f"建设资金（供电企业出资）：{title.total_cost_cny:,.2f} 元")
    _text(group, left + width / 2, top + 26, "工程量及建设资金", font_weight="bold")
    for index, row in enumerate(works[:5]):
        _text(group, left + width / 2, top + 52 + index * 20, row)
