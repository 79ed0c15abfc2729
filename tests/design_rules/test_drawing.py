"""The works sketch 工程建设简图 (R4.4; CQ-32 annex 3): SVG, GeoJSON and DXF."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from itertools import pairwise

import ezdxf
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from design_rules.drawing import (
    DXF_LAYERS,
    DrawingInput,
    ExistingAccessPoint,
    ExistingLine,
    ExistingTransformer,
    MeterBox,
    NewEquipment,
    NewPole,
    NewRoute,
    PropertyLine,
    TitleBlock,
    property_line_of,
    render_dxf,
    render_geojson,
    render_svg,
)
from design_rules.drawing.layout import EQUIPMENT_LEGEND_ZH
from design_rules.drawing.svg import labelled_poles

SVG_NS = {"svg": "http://www.w3.org/2000/svg"}
BLUE, BLACK, RED = "#0000FF", "#000000", "#FF0000"


def sketch(*, road_dug: bool = True, property_line: PropertyLine | None = None) -> DrawingInput:
    """A cable job: transformer → pole P12 → new cable 150 m (north, then east) → meter box at (140, 60)."""
    return DrawingInput(
        title=TitleBlock(
            job_id="CQ-2024-000123",
            customer="重庆某某餐饮店",
            job_class="underground_cable",
            drawing_date=date(2024, 5, 6),
            total_cost_cny=Decimal("89627.00"),
            works_summary=("新建电缆 YJV22-0.6/1kV-4x70 150 m",),
        ),
        meter_box=MeterBox(x_m=140, y_m=60),
        transformers=(ExistingTransformer(label="人民路1号", x_m=-30, y_m=-10, rated_kva=400),),
        access_points=(ExistingAccessPoint(kind="pole", x_m=0, y_m=0, label="P12"),),
        existing_lines=(ExistingLine(kind="overhead", points_m=((-30, -10), (0, 0), (80, 0))),),
        new_routes=(
            NewRoute(
                kind="cable", points_m=((0, 0), (0, 60), (140, 60)), length_m=150, road_dug=road_dug, label="YJV22"
            ),
        ),
        new_poles=(NewPole(x_m=0, y_m=30, label="N1"),),
        property_line=property_line,
    )


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode("utf-8"))


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_svg_is_xml_with_colours_dash_and_labels() -> None:
    root = parse(render_svg(sketch()))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "Noto Sans CJK SC" in root.get("font-family", "") and "WenQuanYi Micro Hei" in root.get("font-family", "")
    groups = {g.get("id"): g for g in root.iterfind(".//svg:g", SVG_NS)}
    assert groups["existing"].get("stroke") == BLACK
    assert groups["new-works"].get("stroke") == BLUE
    assert groups["property-line"].get("stroke") == RED and groups["property-line"].get("stroke-dasharray")
    assert groups["new-works"].find("svg:polyline", SVG_NS) is not None
    labels = texts(root)
    assert any("150 m" in t and "掘路" in t and "不掘路" not in t for t in labels)
    assert any("产权分界点" in t for t in labels)
    assert any("客户红线" in t for t in labels)
    assert {"north-arrow", "scale-bar", "legend", "title-block", "ownership-boundary"} <= set(groups)


def test_svg_marks_undug_routes_and_title_block() -> None:
    labels = texts(parse(render_svg(sketch(road_dug=False))))
    assert any("不掘路" in t for t in labels)
    assert "工单号：CQ-2024-000123" in labels and "客户：重庆某某餐饮店" in labels
    assert any(t.startswith("工程类别：") and "电缆" in t for t in labels)
    assert "日期：2024-05-06" in labels
    assert any("89,627.00" in t for t in labels)


def test_svg_escapes_markup_in_names() -> None:
    d = sketch().model_copy(update={"meter_box": MeterBox(x_m=140, y_m=60, label="<表箱 & 1>")})
    root = parse(render_svg(d))
    assert any("<表箱 & 1>" in t for t in texts(root))


def test_default_property_line_puts_meter_box_on_the_outside_wall() -> None:
    prop = property_line_of(sketch())
    # last route segment heads east into the meter box, so the property extends east of it
    assert prop.x_min_m == 140 and prop.x_max_m > 140
    assert prop.y_min_m < 60 < prop.y_max_m


def test_given_property_line_is_kept() -> None:
    given = PropertyLine(x_min_m=140, y_min_m=40, x_max_m=180, y_max_m=90)
    assert property_line_of(sketch(property_line=given)) == given


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(ValidationError):
        PropertyLine(x_min_m=10, y_min_m=0, x_max_m=5, y_max_m=10)
    with pytest.raises(ValidationError):
        NewRoute(kind="cable", points_m=((0, 0),), length_m=10, road_dug=False)


def to_wgs84(x_m: float, y_m: float) -> tuple[float, float]:
    return 106.55 + x_m / 97_000, 29.56 + y_m / 111_000


def test_geojson_is_a_valid_feature_collection() -> None:
    fc = render_geojson(sketch(), to_wgs84)
    assert fc["type"] == "FeatureCollection"
    for feature in fc["features"]:
        assert feature["type"] == "Feature"
        assert feature["properties"]["status"] in {"existing", "new"}
        assert feature["properties"]["label"]
        geometry = feature["geometry"]
        assert geometry["type"] in {"Point", "LineString", "Polygon"}
        if geometry["type"] == "Polygon":
            ring = geometry["coordinates"][0]
            assert ring[0] == ring[-1] and len(ring) == 5
            area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairwise(ring))
            assert area > 0  # RFC 7946: exterior ring counter-clockwise
        for lon, lat in _positions(geometry):
            assert 106 < lon < 107 and 29 < lat < 30
    route = next(f for f in fc["features"] if f["properties"]["kind"] == "new_cable")
    assert route["properties"]["length_m"] == 150 and route["properties"]["road_work"] == "掘路"
    kinds = {f["properties"]["kind"] for f in fc["features"]}
    assert {"transformer", "pole", "lv_overhead", "meter_box", "ownership_boundary", "property_line"} <= kinds


def test_geojson_ring_stays_counter_clockwise_under_a_mirroring_transform() -> None:
    fc = render_geojson(sketch(), lambda x_m, y_m: to_wgs84(-x_m, y_m))
    ring = next(f for f in fc["features"] if f["geometry"]["type"] == "Polygon")["geometry"]["coordinates"][0]
    assert sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairwise(ring)) > 0


def _positions(geometry: dict) -> list[list[float]]:  # type: ignore[type-arg]
    coordinates = geometry["coordinates"]
    if geometry["type"] == "Point":
        return [coordinates]
    if geometry["type"] == "LineString":
        return coordinates
    return [p for ring in coordinates for p in ring]


def test_dxf_reopens_with_layers_and_entities() -> None:
    data = render_dxf(sketch())
    doc = ezdxf.read(io.StringIO(data.decode("utf-8")))
    assert set(DXF_LAYERS) <= {layer.dxf.name for layer in doc.layers}
    assert doc.layers.get("PROPERTY_LINE").dxf.linetype == "DASHED"
    assert doc.layers.get("NEW_WORKS").dxf.color == 5
    msp = doc.modelspace()
    by_layer: dict[str, list[str]] = {}
    for entity in msp:
        by_layer.setdefault(entity.dxf.layer, []).append(entity.dxftype())
    assert "LWPOLYLINE" in by_layer["EXISTING"] and "CIRCLE" in by_layer["EXISTING"]
    assert "LWPOLYLINE" in by_layer["NEW_WORKS"] and "CIRCLE" in by_layer["NEW_WORKS"]
    assert by_layer["PROPERTY_LINE"] == ["LWPOLYLINE"]
    assert "LWPOLYLINE" in by_layer["METER_BOX"]
    label_texts = [e.dxf.text for e in msp.query("TEXT")]
    assert any("150 m" in t and "掘路" in t for t in label_texts)
    assert any("产权分界点" in t for t in label_texts)
    route = next(e for e in msp.query("LWPOLYLINE[layer=='NEW_WORKS']"))
    assert [tuple(p[:2]) for p in route.get_points()] == [(0, 0), (0, 60), (140, 60)]


def test_minimal_sketch_with_only_the_meter_box_renders_everywhere() -> None:
    d = DrawingInput(
        title=TitleBlock(job_id="J0", customer="C", job_class="direct_meter", drawing_date=date(2024, 1, 2)),
        meter_box=MeterBox(x_m=0, y_m=0),
    )
    assert parse(render_svg(d)).find(".//svg:g[@id='property-line']", SVG_NS) is not None
    assert ezdxf.read(io.StringIO(render_dxf(d).decode("utf-8"))).modelspace().query("LWPOLYLINE")
    assert len(render_geojson(d, to_wgs84)["features"]) == 3


def test_a_long_line_numbers_every_kth_pole_and_draws_them_all() -> None:
    """A sheet with thousands of new poles stays readable (and renders in well under a second, not minutes).

    Every pole keeps its symbol; at most 40 get a label, the first and the last among them.
    """
    poles = tuple(NewPole(x_m=i * 10.0, y_m=0, label=f"N{i}") for i in range(1, 4_001))
    d = sketch().model_copy(update={"new_poles": poles})
    root = parse(render_svg(d))
    pole_labels = [t for t in texts(root) if t.startswith("新建电杆 ")]  # not the legend
    assert len(pole_labels) == 40
    assert pole_labels[0] == "新建电杆 N1" and pole_labels[-1] == "新建电杆 N4000"
    assert len(root.findall(".//svg:g[@id='new-works']/svg:circle", SVG_NS)) == 4_000  # every pole's symbol


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=2, max_value=60))
def test_labelled_poles_are_bounded_ordered_and_keep_the_ends(count: int, limit: int) -> None:
    poles = [NewPole(x_m=i, y_m=0, label=f"N{i}") for i in range(count)]
    chosen = labelled_poles(poles, limit)
    assert len(chosen) == min(count, limit)
    assert [p.x_m for p in chosen] == sorted({p.x_m for p in chosen})  # in line order, no repeats
    if count:
        assert chosen[0] is poles[0] and chosen[-1] is poles[-1]


# --- issue 17 item 5: every item the BOM charges for at its place; no placeholder; DXF extents -----------------

EQUIPMENT = (
    NewEquipment(kind="branch_box", x_m=0, y_m=60, label="低压电缆分支箱"),
    NewEquipment(kind="pole_riser", x_m=0, y_m=0, label="电缆上杆 P12"),
    NewEquipment(kind="transformer_uprate", x_m=-30, y_m=-10, label="配变增容改造 人民路1号"),
)


def with_equipment() -> DrawingInput:
    return sketch().model_copy(update={"new_equipment": EQUIPMENT})


def test_new_equipment_is_drawn_in_blue_at_its_place_with_label_and_legend_in_svg() -> None:
    """R4.4, CQ-32 annex 3 (new works blue), issue 17 item 5: the new branch box, the riser at the access pole
    and the transformer to uprate each get a blue symbol at their place, their BOM name and a legend entry."""
    frame_d = with_equipment()
    root = parse(render_svg(frame_d))
    new_works = root.find(".//svg:g[@id='new-works']", SVG_NS)
    assert new_works is not None and new_works.get("stroke") == BLUE
    for item in EQUIPMENT:
        group = new_works.find(f"svg:g[@class='new-{item.kind}']", SVG_NS)
        assert group is not None and len(group), item.kind
    labels = texts(root)
    assert {"低压电缆分支箱", "电缆上杆 P12", "配变增容改造 人民路1号"} <= set(labels)
    legend = [t.text for t in root.findall(".//svg:g[@id='legend']/svg:text", SVG_NS)]
    assert set(EQUIPMENT_LEGEND_ZH.values()) <= set(legend)
    assert frame_d.new_item_kinds() == {"meter_box", "cable", "pole", "branch_box", "pole_riser",
                                        "transformer_uprate"}


def test_branch_box_sits_where_the_model_puts_it_in_svg() -> None:
    """The symbol stands at the item's place: the branch box's rectangle is centred on its point."""
    root = parse(render_svg(with_equipment()))
    box_at = root.find(".//svg:g[@class='new-branch_box']/svg:rect", SVG_NS)
    assert box_at is not None
    centre = (float(box_at.get("x")) + 7, float(box_at.get("y")) + 5)
    route = root.find(".//svg:g[@id='new-works']/svg:polyline", SVG_NS)
    assert route is not None
    corner = tuple(float(v) for v in route.get("points").split()[1].split(","))  # (0, 60): the route's bend
    assert centre == pytest.approx(corner, abs=0.02)


def test_new_equipment_is_a_new_feature_in_geojson_with_drawn_as_and_legend() -> None:
    """Issue 17 item 5: the web map gets the same new items, each tagged with the catalogue's drawn_as."""
    features = render_geojson(with_equipment(), to_wgs84)["features"]
    new = [f["properties"] for f in features if f["properties"]["status"] == "new"]
    assert {p["drawn_as"] for p in new if "drawn_as" in p} == with_equipment().new_item_kinds()
    riser = next(p for p in new if p.get("drawn_as") == "pole_riser")
    assert riser["kind"] == "new_pole_riser" and riser["label"] == "电缆上杆 P12" and riser["legend"]
    box = next(f for f in features if f["properties"].get("drawn_as") == "branch_box")
    assert box["geometry"]["coordinates"] == [round(c, 8) for c in to_wgs84(0, 60)]


def test_new_equipment_is_on_the_new_works_layer_in_dxf_with_label_and_legend() -> None:
    """Issue 17 item 5: CAD users see the same items on NEW_WORKS, named, and the legend lists each symbol."""
    doc = ezdxf.read(io.StringIO(render_dxf(with_equipment()).decode("utf-8")))
    msp = doc.modelspace()
    plain = ezdxf.read(io.StringIO(render_dxf(sketch()).decode("utf-8"))).modelspace()
    assert len(msp.query("*[layer=='NEW_WORKS']")) > len(plain.query("*[layer=='NEW_WORKS']"))
    label_texts = {e.dxf.text for e in msp.query("TEXT")}
    assert {"低压电缆分支箱", "电缆上杆 P12", "配变增容改造 人民路1号"} <= label_texts
    legend = {e.dxf.text for e in msp.query("TEXT[layer=='LEGEND']")}
    assert set(EQUIPMENT_LEGEND_ZH.values()) <= legend and "图例" in legend


def test_dxf_extents_are_set_to_the_drawing_extents() -> None:
    """Issue 17 item 5: $EXTMIN/$EXTMAX were left at ezdxf's ±1e20 defaults; they now hold every entity."""
    doc = ezdxf.read(io.StringIO(render_dxf(with_equipment()).decode("utf-8")))
    (x0, y0, _), (x1, y1, _) = doc.header["$EXTMIN"], doc.header["$EXTMAX"]
    assert -1e6 < x0 < x1 < 1e6 and -1e6 < y0 < y1 < 1e6
    for entity in doc.modelspace().query("LWPOLYLINE CIRCLE"):
        points = ([entity.dxf.center] if entity.dxftype() == "CIRCLE" else list(entity.vertices()))
        for x, y, *_ in points:
            assert x0 - 1e-6 <= x <= x1 + 1e-6 and y0 - 1e-6 <= y <= y1 + 1e-6
    assert x0 <= -30 and x1 >= 140 and y0 <= -10 and y1 >= 60  # the transformer and the meter box


def test_no_customer_row_when_no_customer_is_named() -> None:
    """Issue 17 item 5: the title block showed "客户：客户" when no name was given; now it has no customer row
    (the job id names the sheet) in the SVG and the DXF, and a named customer still shows."""
    unnamed = sketch().model_copy(update={"title": sketch().title.model_copy(update={"customer": None})})
    svg_rows = texts(parse(render_svg(unnamed)))
    assert "工单号：CQ-2024-000123" in svg_rows and not any(t.startswith("客户：") for t in svg_rows)
    dxf_rows = [e.dxf.text for e in ezdxf.read(io.StringIO(render_dxf(unnamed).decode())).modelspace().query("TEXT")]
    assert not any("客户：" in t for t in dxf_rows) and any(t.startswith("工程类别：") for t in dxf_rows)
    assert any("客户：重庆某某餐饮店" in t for t in
               (e.dxf.text for e in ezdxf.read(io.StringIO(render_dxf(sketch()).decode())).modelspace().query("TEXT")))


def test_a_frame_with_a_whole_network_labels_the_nearest_existing_items_and_renders_at_once() -> None:
    """Issue 17 item 5: the frame now holds the source transformer's whole network; 2,000 existing poles and
    lines took seconds when every label was placed (they piled into a few cells of the placer). Every one keeps
    its symbol; the 40 nearest the meter box get a label, the access point of the job among them."""
    import time

    poles = tuple(NewPole(x_m=i * 10.0, y_m=0, label=f"N{i}") for i in range(1, 4_001))
    points = tuple(ExistingAccessPoint(kind="pole", x_m=i * 10.0, y_m=-20, label=f"P{i}") for i in range(1, 2_001))
    lines = tuple(ExistingLine(kind="overhead", points_m=((i * 10.0, -20), (i * 10.0 + 10, -20)), label=f"L{i}")
                  for i in range(1, 2_001))
    d = with_equipment().model_copy(update={"new_poles": poles, "access_points": (*sketch().access_points, *points),
                                            "existing_lines": lines})
    started = time.perf_counter()
    root = parse(render_svg(d))
    render_dxf(d)
    assert time.perf_counter() - started < 10  # about 1 s here; minutes were the bug this guards against
    labels = texts(root)
    assert len([t for t in labels if t.startswith("既有电杆 ")]) == 40 and "既有电杆 P12" in labels
    assert len([t for t in labels if t.startswith("既有低压架空线 ")]) == 40
    assert len(root.findall(".//svg:g[@id='existing']/svg:circle", SVG_NS)) == 2_001 + 2  # every pole, the transformer
