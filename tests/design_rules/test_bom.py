"""Bill of materials (R4.3): invariants, quantity rules from DOMAIN §4.2–4.3, exports."""

from __future__ import annotations

import csv
import io
import math
from contextlib import nullcontext
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from design_rules.bom import Bom, bom_to_csv, bom_to_xlsx, build_bom, quantity_drivers
from design_rules.catalogue import QUANTITY_DRIVERS, load_typical_designs
from design_rules.sizing import SizingResult, size_conductor, size_service_drop
from gis.errors import InvalidInputError

POLE_URBAN, POLE_RURAL = "500201012", "500201010"
UPRATE_LOT, BRANCH_BOX, RISER = "500601001", "500403001", "500404001"
TRENCH_VERGE, TRENCH_ROAD, TRENCHLESS, PIPE = "500901007", "500901010", "500902001", "500402160"
ASPHALT, IPC = "500903001", "500208001"


def overhead(kw: float = 50, length_m: float = 120, phases: int = 3) -> SizingResult:
    return size_conductor(kw, 0.85, phases, length_m, "overhead", 5.0)


def cable(kw: float = 100, length_m: float = 150) -> SizingResult:
    return size_conductor(kw, 0.85, 3, length_m, "cable", 5.0)


def qty(bom: Bom, code: str) -> float:
    return sum(line.quantity for line in bom.lines if line.material_code == code)


def assert_bom_invariants(bom: Bom) -> None:
    assert bom.lines
    assert bom.total_cny == sum((line.amount_cny for line in bom.lines), Decimal(0))
    assert bom.total_cny == sum(bom.by_assembly.values(), Decimal(0))
    for line in bom.lines:
        assert line.quantity > 0
        assert line.amount_cny == (Decimal(repr(line.quantity)) * line.unit_price_cny).quantize(Decimal("0.01"))


@pytest.mark.parametrize(
    ("length_m", "span_m", "expected_poles"),
    [(120, 50, 4), (100, 50, 3), (101, 50, 4), (30, 60, 2), (360, 60, 7)],
)
def test_poles_are_ceil_length_over_span_plus_one(length_m: float, span_m: float, expected_poles: int) -> None:
    bom = build_bom("overhead", overhead(length_m=length_m), length_m, [], False, "urban", span_m)
    assert qty(bom, POLE_URBAN) == math.ceil(length_m / span_m) + 1
    assert qty(bom, POLE_URBAN) == expected_poles
    assert_bom_invariants(bom)


def test_overhead_conductor_length_and_pole_type_by_area() -> None:
    sizing = overhead(length_m=120)
    bom = build_bom("overhead", sizing, 120, [], False, "rural", 60.0, angle_poles=1)
    conductor = next(line for line in bom.lines if line.name_en.startswith("Overhead insulated"))
    # DOMAIN §4.2: L × 4 × 1.02 + 3 m per conductor at each strain end (2 ends + 2 at the angle pole)
    assert conductor.quantity == math.ceil(120 * 4 * 1.02 + 3 * 4 * 4)
    assert qty(bom, POLE_RURAL) == 3 and qty(bom, POLE_URBAN) == 0
    assert qty(bom, "500207035") == 2 * 1 + 2  # stays: 1 per terminal pole, 2 at the angle pole
    assert qty(bom, IPC) == 4


def test_single_phase_overhead_uses_two_conductors() -> None:
    bom = build_bom("overhead", overhead(kw=8, phases=1), 100, [], False, "urban", 50.0)
    assert qty(bom, IPC) == 2
    assert "500301001" in {line.material_code for line in bom.lines}  # single-phase meter box


def test_cable_quantities_with_excavated_crossings() -> None:
    crossings = [("人民路", "arterial"), ("小巷", "lane")]
    bom = build_bom("underground_cable", cable(), 150, crossings, True, "urban")
    cable_line = next(line for line in bom.lines if line.name_en.startswith("Armoured"))
    assert cable_line.quantity == math.ceil(150 * 1.04 + 2 * 2.5)
    assert qty(bom, TRENCH_ROAD) == 30 + 6  # crossing lengths of the two road classes (data)
    assert qty(bom, TRENCH_VERGE) == 150 - 36
    assert qty(bom, PIPE) == 36 + 2 * 2 * 1.0  # 1 m past each edge
    assert qty(bom, ASPHALT) == pytest.approx(0.5 * 30)
    assert qty(bom, TRENCHLESS) == 0
    assert qty(bom, BRANCH_BOX) == 1 and qty(bom, RISER) == 1
    assert_bom_invariants(bom)


def test_undug_crossings_go_trenchless_without_restoration() -> None:
    bom = build_bom(
        "underground_cable", cable(), 150, [("人民路", "arterial")], False, "urban", access_kind="branch_box"
    )
    assert qty(bom, TRENCHLESS) == 30 and qty(bom, TRENCH_ROAD) == 0 and qty(bom, ASPHALT) == 0
    assert qty(bom, RISER) == 0  # leaving a branch box needs no pole riser


@pytest.mark.parametrize(
    ("kw", "box_code", "ct_lines"),
    [(8, "500301001", 0), (25, "500301002", 0), (120, "500301003", 3)],  # 1φ / 3φ direct / CT with 3 CTs
)
def test_meter_box_set_follows_meter_wiring(kw: float, box_code: str, ct_lines: int) -> None:
    sizing = size_service_drop(kw, 0.85, 1 if kw < 10 else 3, 20, "overhead", 3.0)
    bom = build_bom("direct_meter", sizing, 20, [], False, "urban")
    assert qty(bom, box_code) == 1
    ct_quantity = sum(line.quantity for line in bom.lines if line.name_en.startswith("LV current transformer"))
    assert ct_quantity == ct_lines
    if ct_lines:
        assert qty(bom, "500304001") == 1  # test terminal block
        assert any(sizing.ct_ratio in line.name_zh for line in bom.lines)  # type: ignore[operator]
    assert_bom_invariants(bom)


def test_transformer_upgrade_gets_the_uprate_lot() -> None:
    bom = build_bom("transformer_upgrade", cable(), 150, [], False, "urban")
    assert qty(bom, UPRATE_LOT) == 1
    assert bom.by_assembly["transformer_uprate"] > 0
    assert "cable_line" in bom.by_assembly
    plain = build_bom("underground_cable", cable(), 150, [], False, "urban")
    assert qty(plain, UPRATE_LOT) == 0


@pytest.mark.parametrize(
    ("job_class", "sizing", "expectation"),
    [
        ("overhead", overhead(), nullcontext()),
        ("overhead", cable(), pytest.raises(InvalidInputError)),  # cable sizing in an overhead design
        ("direct_meter", overhead(), pytest.raises(InvalidInputError)),  # a line is not a service drop
        ("flying", overhead(), pytest.raises(InvalidInputError)),  # unknown job class
        (
            "overhead",
            size_conductor(160, 0.85, 3, 900, "overhead", 5.0),
            pytest.raises(InvalidInputError),
        ),  # infeasible
    ],
)
def test_design_refuses_sizing_that_does_not_fit(job_class: str, sizing: SizingResult, expectation: object) -> None:
    with expectation:  # type: ignore[attr-defined]
        build_bom(job_class, sizing, 120, [], False, "urban")


def test_unknown_road_class_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="road class"):
        build_bom("underground_cable", cable(), 150, [("x", "motorway")], True, "urban")


def test_drivers_cover_exactly_the_declared_names() -> None:
    assert set(quantity_drivers(overhead(), 120, [("a", "branch")], True, 50.0)) == QUANTITY_DRIVERS


def test_every_design_builds_for_every_fitting_sizing() -> None:
    sizings = {
        "service": [
            size_service_drop(kw, 0.85, ph, 20, inst, 3.0)
            for kw, ph in ((8, 1), (30, 3), (120, 3))
            for inst in ("overhead", "cable")
        ],
        "line": [overhead(8, 100, 1), overhead(160, 80), cable(30, 100), cable(160, 200)],
    }
    for job_class, design in load_typical_designs().designs.items():
        for sizing in sizings["service"] + sizings["line"]:
            if all(getattr(sizing, key) in allowed for key, allowed in design.requires.items()):
                assert_bom_invariants(build_bom(job_class, sizing, 100, [("r", "secondary")], True, "rural"))


@settings(max_examples=40, deadline=None)
@given(
    length_m=st.floats(min_value=10, max_value=400),
    crossings=st.lists(st.sampled_from(["arterial", "secondary", "branch", "lane"]), max_size=3),
    excavation=st.booleans(),
)
def test_cable_bom_invariants_hold(length_m: float, crossings: list[str], excavation: bool) -> None:
    sizing = size_conductor(40, 0.85, 3, length_m, "cable", 7.0)
    bom = build_bom(
        "underground_cable", sizing, length_m, [(f"road {i}", c) for i, c in enumerate(crossings)], excavation, "urban"
    )
    assert_bom_invariants(bom)
    assert qty(bom, TRENCH_ROAD) + qty(bom, TRENCHLESS) == pytest.approx(bom.drivers["crossing_length_m"], abs=1)


def test_csv_export_round_trips_the_total() -> None:
    bom = build_bom("underground_cable", cable(), 150, [("人民路", "arterial")], True, "urban")
    rows = list(csv.DictReader(io.StringIO(bom_to_csv(bom))))
    assert len(rows) == len(bom.lines)
    assert sum(Decimal(row["amount_cny"]) for row in rows) == bom.total_cny
    assert rows[0]["material_code"] == bom.lines[0].material_code


def test_xlsx_export_reopens_with_lines_and_total() -> None:
    bom = build_bom("overhead", overhead(), 120, [], False, "urban")
    workbook = load_workbook(io.BytesIO(bom_to_xlsx(bom)))
    sheet = workbook["BOM"]
    assert sheet.max_row == len(bom.lines) + 2  # header + lines + total
    assert sheet.cell(sheet.max_row, 8).value == pytest.approx(float(bom.total_cny))
    assert sheet.cell(2, 2).value == bom.lines[0].material_code
    assert "By assembly" in workbook.sheetnames


def test_to_dict_is_json_ready() -> None:
    import json

    bom = build_bom("overhead", overhead(), 120, [], False, "urban")
    data = json.loads(json.dumps(bom.to_dict(), ensure_ascii=False))
    assert data["total_cny"] == pytest.approx(sum(line["amount_cny"] for line in data["lines"]))
    assert data["drivers"]["poles"] == 4


# --- issue 17 item 5: every assembly says where the drawing shows it --------------------------------------------


def test_every_assembly_says_where_the_drawing_shows_it() -> None:
    """R4.4, issue 17 item 5: each assembly of the typical designs carries drawn_as (a mandatory column), so a
    new assembly cannot be charged without a decision on where the sketch shows it."""
    from design_rules.catalogue import DRAWN_KINDS

    drawn = {assembly_id: a.drawn_as for assembly_id, a in load_typical_designs().assemblies.items()}
    assert set(drawn.values()) <= DRAWN_KINDS | {"none"}
    assert drawn["cable_branch_box"] == "branch_box" and drawn["pole_riser"] == "pole_riser"
    assert drawn["overhead_poles"] == "pole" and drawn["transformer_uprate"] == "transformer_uprate"


@pytest.mark.parametrize(("access_kind", "expected"), [
    ("pole", {"meter_box", "cable", "branch_box", "pole_riser"}),
    ("branch_box", {"meter_box", "cable", "branch_box"}),
])
def test_drawn_kinds_of_a_cable_bom_follow_its_assemblies(access_kind: str, expected: set[str]) -> None:
    """Issue 17 item 5: the 9,200 CNY branch box and, from a pole, the riser are among the kinds to draw."""
    from design_rules.design import drawn_kinds

    bom = build_bom("underground_cable", cable(), 150, [], False, "urban", access_kind=access_kind)  # type: ignore[arg-type]
    assert set(drawn_kinds(bom)) == expected
    assert drawn_kinds(bom)["branch_box"] == "低压电缆分支箱"
