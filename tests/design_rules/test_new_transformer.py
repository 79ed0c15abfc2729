"""A new distribution transformer by the load (新增配变/新建台区; issue 20 item 1e; R3, R4; CQ-45 一.2).

The unit comes from the profile's standard series (DOMAIN §6.1) sized for the booking plus the margin, its
10 kV line is bounded by the 10 kV line radius of the area type (DOMAIN §1.1), its BOM has the unit, the JP
cabinet, the 10 kV line per metre and the LV run, and its deadline is the transformer upgrade's.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString

from design_rules.bom import build_bom
from design_rules.calendar import WorkCalendar
from design_rules.design import (
    NEW_TRANSFORMER_ID,
    ApplicationFacts,
    ConnectionDesign,
    DesignNotFeasibleError,
    compose_design,
)
from design_rules.new_transformer import mv_run, size_unit
from design_rules.profiles import AreaType, JobClass, get_profile
from design_rules.siting_policy import siting_params
from design_rules.sizing import SizingResult, size_conductor, size_service_drop
from gis.crs import LocalPin
from gis.errors import InvalidInputError
from gis.index import SourceIndex, TransformerSnapshot
from gis.routing import RoadNetwork
from gis.siting import new_transformer_site, site

CQ = get_profile("chongqing-2019")
RULES = CQ.new_transformer
assert RULES is not None
UPRATE_LOT, UNIT_200, UNIT_400_BOX, JP_200 = "500601001", "500602200", "500603400", "500604200"
PLATFORM, BOX_FOUNDATION, MV_OVERHEAD_M, MV_CABLE_M, MV_TEE = (
    "500605001", "500605002", "500606001", "500606002", "500606003")
#: Monday 2026-06-01, 10:00 in Chongqing.
ACCEPTED = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(("kw", "area_type", "kind", "rated"), [
    (30, AreaType.D, "pole_mounted", 50),     # 35.3 kVA × 1.25 = 44.1 → 50
    (40, AreaType.RURAL, "pole_mounted", 100),  # 58.8 → 100
    (80, AreaType.D, "pole_mounted", 200),    # 117.6 → 200
    (160, AreaType.C, "pole_mounted", 400),   # 235.3 → 400
    (30, AreaType.URBAN, "box", 400),         # box series starts at 400
    (160, AreaType.A, "box", 400),
])
def test_the_unit_is_the_smallest_standard_rating_that_carries_the_booking_plus_the_margin(
        kw: float, area_type: AreaType, kind: str, rated: float) -> None:
    """DOMAIN §6.1 series (pole-mounted 50/100/200/400, box 400/630 kVA); margin 25 % (Sanling's choice)."""
    unit = size_unit(kw / 0.85, area_type, RULES)
    assert unit is not None and (unit.kind, unit.rated_kva) == (kind, rated)
    assert unit.rated_kva >= unit.needed_kva == pytest.approx(kw / 0.85 * 1.25, abs=0.05)
    assert unit.load_rate_after_pct <= CQ.load_thresholds.max_load_after_pct


def test_a_booking_larger_than_the_series_gets_no_unit() -> None:
    assert size_unit(400.0, AreaType.D, RULES) is None  # 500 kVA > the 400 kVA pole-mounted top


@pytest.mark.parametrize(("area_type", "limit_m"), [
    (AreaType.A_PLUS, 3000.0), (AreaType.A, 3000.0), (AreaType.B, 3000.0), (AreaType.URBAN, 3000.0),
    (AreaType.C, 5000.0), (AreaType.D, 15000.0), (AreaType.RURAL, 15000.0),
    (AreaType.E, 15000.0),  # case by case: the profile's limit (Sanling's choice)
])
def test_the_10_kv_line_is_bounded_by_the_radius_of_the_area_type(area_type: AreaType, limit_m: float) -> None:
    """DOMAIN §1.1: ≤3 km A+/A/B, ≤5 km C, ≤15 km D; length = straight × 1.3 (DOMAIN §1.1 detour 1.2–1.4)."""
    inside = mv_run(limit_m / 1.3 - 1.0, area_type, RULES)
    outside = mv_run(limit_m / 1.3 + 1.0, area_type, RULES)
    assert inside.limit_m == outside.limit_m == limit_m
    assert inside.within_limit and not outside.within_limit
    assert inside.length_m == pytest.approx(inside.straight_m * 1.3, abs=0.05)


def _sizing() -> SizingResult:
    return size_conductor(80, 0.85, 3, 100, "overhead", 5.0)


def test_the_bom_of_a_pole_mounted_unit_has_the_unit_jp_cabinet_platform_10_kv_line_and_lv_run() -> None:
    """R4.3, issue 20 item 1e: unit by rating, JP cabinet, platform, 10 kV line per metre + tee-off, LV run."""
    bom = build_bom("transformer_upgrade", _sizing(), 100.0, [], False, "rural", 50.0, access_kind="transformer",
                    upgrade_kind="new_transformer", unit_kind="pole_mounted", rated_kva=200.0, mv_line_m=678.9)
    codes = {line.material_code: line for line in bom.lines}
    assert codes[UNIT_200].quantity == 1 and codes[JP_200].quantity == 1 and codes[PLATFORM].quantity == 1
    assert codes[MV_OVERHEAD_M].quantity == 679.0 and codes[MV_OVERHEAD_M].unit == "m"
    assert codes[MV_TEE].quantity == 1
    assert UPRATE_LOT not in codes and MV_CABLE_M not in codes
    assert {"overhead_poles", "overhead_conductor"} <= set(bom.by_assembly)  # the short LV run
    assert bom.drivers["mv_line_m"] == 678.9
    assert bom.total_cny == sum(line.amount_cny for line in bom.lines)


def test_a_box_unit_has_its_own_switchgear_and_a_10_kv_cable() -> None:
    bom = build_bom("transformer_upgrade", size_service_drop(30, 0.85, 3, 10, "overhead", 5.0), 10.0, [], False,
                    "urban", access_kind="transformer", upgrade_kind="new_transformer", unit_kind="box",
                    rated_kva=400.0, mv_line_m=120.0)
    codes = {line.material_code for line in bom.lines}
    assert {UNIT_400_BOX, BOX_FOUNDATION, MV_CABLE_M, MV_TEE} <= codes
    assert not codes & {JP_200, PLATFORM, MV_OVERHEAD_M, UPRATE_LOT}


def test_an_uprate_keeps_its_lot_and_no_new_transformer_line() -> None:
    bom = build_bom("transformer_upgrade", _sizing(), 100.0, [], False, "rural", 50.0, mv_line_m=500.0)
    codes = {line.material_code for line in bom.lines}
    assert UPRATE_LOT in codes and not codes & {UNIT_200, JP_200, PLATFORM, MV_OVERHEAD_M, MV_TEE}
    assert bom.drivers["mv_line_m"] == 0.0


def test_a_new_unit_without_its_rating_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        build_bom("transformer_upgrade", _sizing(), 100.0, [], False, "rural", 50.0,
                  upgrade_kind="new_transformer", mv_line_m=100.0)


def _compose(pin_xy: tuple[float, float], transformers: list[tuple[str, float, float, float, float]], kw: float,
             area_type: AreaType = AreaType.D, roads: RoadNetwork | None = None) -> ConnectionDesign:
    """Site and compose on a small network: transformers as (id, x, y, rated kVA, peak kVA)."""
    ids, xs, ys, rated, peak = (list(v) for v in zip(*transformers, strict=True))
    index = SourceIndex.build(TransformerSnapshot.from_lists(ids, xs, ys, rated, peak, [0.0] * len(ids),
                                                             ["G"] * len(ids)))
    pin = LocalPin(lon_wgs84=106.5, lat_wgs84=29.5, x_m=pin_xy[0], y_m=pin_xy[1])
    params = siting_params(kw, area_type, CQ, top_k=3)
    siting = site(pin, index, roads, params)
    new_site = new_transformer_site(pin, index, roads, max_lv_run_m=params.upgrade_reach_m)
    return compose_design(job_ref="J-1", facts=ApplicationFacts(kw=kw, phases=3, urban_rural="rural"),
                          siting=siting, area_type=area_type, profile=CQ, power_factor=0.85, accepted_at=ACCEPTED,
                          calendar=WorkCalendar.default(), new_transformer_site=new_site)


ROAD = RoadNetwork.build([("R1", "村道", "lane", LineString([(2000, -500), (2000, 500)]))], [])


def test_no_transformer_within_lv_reach_gets_a_new_transformer_with_the_cq_45_15_working_day_deadline() -> None:
    """R3, CQ-45 一.2 (涉及……中压配变改造的在 15 天内接电): 80 kW 2 km from the only transformer (rural D reach
    500 m): a 200 kVA pole-mounted unit on the road 20 m from the meter box, a 2.6 km 10 kV line (≤ 15 km)."""
    design = _compose((2020.0, 0.0), [("T-1", 0.0, 0.0, 400.0, 100.0)], 80, roads=ROAD)
    assert design.job_class == JobClass.TRANSFORMER_UPGRADE and design.upgrade_kind == "new_transformer"
    assert design.source.transformer_asset_id == NEW_TRANSFORMER_ID
    new = design.new_transformer
    assert (new.x_m, new.y_m) == (2000.0, 0.0) and new.on_road and new.feeder_asset_id == "T-1"
    assert new.unit.rated_kva == 200 and new.mv.length_m == pytest.approx(2600.0)
    assert design.lv_job_class == JobClass.DIRECT_METER  # 20 m from the unit: a service drop
    assert design.schedule.total_days == 15
    assert design.schedule.promised_power_on == date(2026, 6, 23)  # T+1 (2 June) + 15 working days, 端午 19 June off
    assert [(o.summary["upgrade_kind"], o.status) for o in design.options] == [
        ("new_transformer", "chosen"), ("uprate", "not_buildable")]
    assert design.options[1].candidate is None  # no transformer within LV reach to uprate
    assert {"new_transformer", "mv_line"} <= design.drawing.new_item_kinds()


def test_a_new_transformer_beyond_the_10_kv_radius_is_not_feasible_and_lists_the_rungs_tried() -> None:
    """DOMAIN §1.1: class C allows ≤5 km of 10 kV; 6 km from the only transformer no rung is buildable."""
    with pytest.raises(DesignNotFeasibleError) as caught:
        _compose((6000.0, 0.0), [("T-1", 0.0, 0.0, 400.0, 100.0)], 80, area_type=AreaType.C)
    details = caught.value.details
    assert [r["code"] for r in details["reasons"]] == ["NO_FEASIBLE_SOURCE", "MV_LINE_BEYOND_RADIUS"]
    assert details["mv_line_radius_m"] == 5000.0
    assert [o["upgrade_kind"] for o in details["options_tried"]] == ["uprate", "new_transformer"]


def test_an_uprate_whose_lv_run_fails_the_voltage_drop_yields_to_the_new_transformer() -> None:
    """R4.2 (DOMAIN §7.4): 160 kW 450 m from an overloaded transformer within the 500 m reach: no standard
    conductor carries it within 5 %, so the uprate is not buildable and the new transformer is the design."""
    design = _compose((450.0, 0.0), [("T-1", 0.0, 0.0, 200.0, 150.0)], 160)
    assert design.upgrade_kind == "new_transformer" and design.new_transformer.unit.rated_kva == 400
    assert not design.new_transformer.on_road  # no road loaded: the unit stands at the meter box
    [uprate] = [o for o in design.options if o.summary["upgrade_kind"] == "uprate"]
    assert uprate.status == "not_buildable" and uprate.candidate is not None
    assert uprate.candidate.transformer_asset_id == "T-1"
    assert "NO_STANDARD_CONDUCTOR" in [r["code"] for r in uprate.summary["reasons"]]


def test_when_both_rungs_are_buildable_the_cheaper_is_the_design() -> None:
    """Issue 20 item 1e: 30 kW 40 m from an overloaded transformer: the uprate (one lot) against a new 50 kVA
    pole-mounted unit with a short 10 kV line; the cheaper wins, the other is listed with its cost and date."""
    design = _compose((40.0, 0.0), [("T-1", 0.0, 0.0, 100.0, 90.0)], 30)
    chosen, other = (o.summary for o in design.options)
    assert chosen["status"] == "chosen" and other["status"] == "buildable"
    assert chosen["total_cost_cny"] == float(design.bom.total_cny) <= other["total_cost_cny"]
    assert other["promised_power_on"] == design.schedule.promised_power_on.isoformat()
    assert {chosen["upgrade_kind"], other["upgrade_kind"]} == {"uprate", "new_transformer"}


@settings(max_examples=60, deadline=None)
@given(kw=st.floats(1.0, 160.0), distance_m=st.floats(0.0, 20_000.0), peak_kva=st.floats(0.0, 200.0),
       area_type=st.sampled_from([AreaType.URBAN, AreaType.RURAL, AreaType.B, AreaType.C, AreaType.D]))
def test_the_ladder_returns_the_cheapest_buildable_rung_or_lists_both_failures(
        kw: float, distance_m: float, peak_kva: float, area_type: AreaType) -> None:
    """Issue 20 item 1e for any load and distance from one overloaded-or-not transformer: a transformer upgrade
    is the cheapest buildable rung, its new unit carries the booking within the series and its 10 kV line is
    within the radius; otherwise 422 lists both rungs, each not buildable."""
    try:
        design = _compose((distance_m, 0.0), [("T-1", 0.0, 0.0, 200.0, peak_kva)], kw, area_type=area_type)
    except DesignNotFeasibleError as exc:
        assert [o["upgrade_kind"] for o in exc.details["options_tried"]] == ["uprate", "new_transformer"]
        assert all(o["status"] == "not_buildable" and o["reasons"] for o in exc.details["options_tried"])
        return
    if design.job_class != JobClass.TRANSFORMER_UPGRADE:
        assert design.feasible_source and not design.options  # T-1 could take the load: no ladder
        return
    costs = [o.summary["total_cost_cny"] for o in design.options if o.status != "not_buildable"]
    assert design.options[0].status == "chosen" and costs[0] == float(design.bom.total_cny) == min(costs)
    assert design.bom.total_cny == sum(line.amount_cny for line in design.bom.lines)
    assert design.schedule.total_days == 15
    new = design.new_transformer
    if design.upgrade_kind == "new_transformer":
        assert new is not None and new.unit.needed_kva <= new.unit.rated_kva
        assert new.unit.rated_kva in RULES.series(area_type)[1]
        assert new.mv.length_m <= RULES.mv_reach_m(area_type)
    else:
        assert design.upgrade_kind == "uprate" and new is None
