"""Job-class decision (R3): the docs/architecture.md rule order, its boundaries and the profile's thresholds."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import pytest

from design_rules.job_class import JobClass, SiteFacts, classify_job
from design_rules.profiles import get_profile
from gis.errors import InvalidInputError

CQ = get_profile("chongqing-2019")

# Named sites: a meter box 20 m from a pole, nothing in the way.
NEAR_POLE = SiteFacts(True, "pole", new_route_length_m=30.0, straight_distance_m=20.0, load_rate_after_pct=40.0)
FAR_POLE = replace(NEAR_POLE, new_route_length_m=120.0, straight_distance_m=95.0)
ARTERIAL = (("人民路", "arterial"),)
LANE = (("幸福巷", "lane"),)


def _classify(site: SiteFacts, **changes: Any) -> Any:
    return classify_job(replace(site, **changes), CQ)


@pytest.mark.parametrize(
    ("changes", "job_class", "first_code"),
    [
        # rule 1: no feasible source, whatever else is true
        ({"feasible_source": False, "access_point_kind": None, "meter_box_in_no_overhead_zone": True},
         JobClass.TRANSFORMER_UPGRADE, "NO_FEASIBLE_SOURCE"),
        # rule 1: the chosen transformer would exceed 80 %
        ({"load_rate_after_pct": 80.1}, JobClass.TRANSFORMER_UPGRADE, "NO_FEASIBLE_SOURCE"),
        # rule 2 beats rule 3 and 4: meter box in a no-overhead zone
        ({"meter_box_in_no_overhead_zone": True, "road_crossings": ARTERIAL}, JobClass.UNDERGROUND_CABLE,
         "NO_OVERHEAD_ZONE"),
        # rule 2: the route enters a no-overhead zone
        ({"enters_no_overhead_zone": True}, JobClass.UNDERGROUND_CABLE, "NO_OVERHEAD_ZONE"),
        # rule 3 beats rule 4: a short drop that crosses an arterial road is dug
        ({"road_crossings": ARTERIAL}, JobClass.UNDERGROUND_CABLE, "ROAD_EXCAVATION"),
        # rule 4: within one service drop
        ({}, JobClass.DIRECT_METER, "SERVICE_DROP_WITHIN_LIMITS"),
        # rule 4 applies to a branch box too (cable in conduit along the wall)
        ({"access_point_kind": "branch_box"}, JobClass.DIRECT_METER, "SERVICE_DROP_WITHIN_LIMITS"),
        # crossing a lane is not dug
        ({"road_crossings": LANE}, JobClass.DIRECT_METER, "SERVICE_DROP_WITHIN_LIMITS"),
    ],
)
def test_r3_decision_order(changes: dict[str, Any], job_class: JobClass, first_code: str) -> None:
    decision = _classify(NEAR_POLE, **changes)
    assert decision.job_class is job_class
    assert decision.reasons[0].code == first_code
    assert decision.reasons[0].source


@pytest.mark.parametrize(
    ("kind", "job_class"),
    [
        ("branch_box", JobClass.UNDERGROUND_CABLE),  # rule 5
        ("pole", JobClass.OVERHEAD),  # rule 6
        ("line_segment", JobClass.OVERHEAD),
        ("transformer", JobClass.OVERHEAD),
    ],
)
def test_r3_beyond_a_service_drop(kind: str, job_class: JobClass) -> None:
    decision = _classify(FAR_POLE, access_point_kind=kind)
    assert decision.job_class is job_class
    assert "BEYOND_SERVICE_DROP" in [r.code for r in decision.reasons]
    assert not decision.excavation


@pytest.mark.parametrize(
    ("span_m", "route_m", "job_class"),
    [
        (25.0, 50.0, JobClass.DIRECT_METER),  # both limits exactly: still a service drop
        (25.01, 26.0, JobClass.OVERHEAD),  # span 1 cm too long: needs a service pole
        (10.0, 50.01, JobClass.OVERHEAD),  # route 1 cm too long
        (0.0, 0.0, JobClass.DIRECT_METER),  # meter box at the pole
    ],
)
def test_r3_service_drop_boundaries(span_m: float, route_m: float, job_class: JobClass) -> None:
    decision = _classify(NEAR_POLE, straight_distance_m=span_m, new_route_length_m=route_m)
    assert decision.job_class is job_class


def test_r3_thresholds_come_from_the_profile() -> None:
    longer = CQ.model_copy(update={"service_drop": CQ.service_drop.model_copy(update={"max_span_m": 30.0})})
    site = replace(NEAR_POLE, straight_distance_m=28.0)
    assert classify_job(site, CQ).job_class is JobClass.OVERHEAD
    assert classify_job(site, longer).job_class is JobClass.DIRECT_METER


def test_r3_excavation_road_classes_come_from_the_profile() -> None:
    lanes_dug = CQ.model_copy(update={"excavation": CQ.excavation.model_copy(update={"road_classes": {"lane"}})})
    assert _classify(NEAR_POLE, road_crossings=LANE).job_class is JobClass.DIRECT_METER
    assert classify_job(replace(NEAR_POLE, road_crossings=LANE), lanes_dug).job_class is JobClass.UNDERGROUND_CABLE


@pytest.mark.parametrize(
    ("changes", "excavation", "needs_outage"),
    [
        ({}, False, False),  # direct meter: 不停电接火 (R4.5)
        ({"road_crossings": ARTERIAL}, True, False),  # dug cable, still live-line connection
        ({"road_crossings": (("建设路", "secondary"),), "enters_no_overhead_zone": True}, True, False),
        ({"feasible_source": False}, False, True),  # transformer upgrade needs an outage
        ({"feasible_source": False, "road_crossings": ARTERIAL}, True, True),
    ],
)
def test_r4_5_excavation_and_outage_flags(changes: dict[str, Any], excavation: bool, needs_outage: bool) -> None:
    decision = _classify(FAR_POLE, **changes)
    assert decision.excavation is excavation
    assert decision.needs_outage is needs_outage


@pytest.mark.parametrize(
    ("rate", "code"),
    [
        (49.9, None),
        (50.0, "LOAD_MAY_START_PROJECT"),  # 达到 50% 可立项 (BS 4.1.4)
        (70.0, "LOAD_MUST_START_PROJECT"),  # 达到 70% 必须立项和出库
        (80.0, "LOAD_MUST_START_PROJECT"),  # 80 % exactly is still feasible
    ],
)
def test_r2_3_load_rate_notes(rate: float, code: str | None) -> None:
    decision = _classify(NEAR_POLE, load_rate_after_pct=rate)
    assert decision.job_class is JobClass.DIRECT_METER
    notes = [r.code for r in decision.reasons if r.code.startswith("LOAD_")]
    assert notes == ([code] if code else [])


@pytest.mark.parametrize(
    ("profile_id", "connect_first"),
    [("shanghai-2019", True), ("baoshan-2021", True), ("chongqing-2019", False), ("wanzhou-2021", False)],
)
def test_r2_3_connect_first_is_noted_where_allowed(profile_id: str, connect_first: bool) -> None:
    decision = classify_job(replace(NEAR_POLE, feasible_source=False), get_profile(profile_id))
    assert ("CONNECT_FIRST_REINFORCE_LATER" in [r.code for r in decision.reasons]) is connect_first


@pytest.mark.parametrize(
    ("changes", "expectation"),
    [
        ({}, nullcontext()),
        ({"new_route_length_m": -1.0}, pytest.raises(InvalidInputError)),  # negative length
        ({"straight_distance_m": float("nan")}, pytest.raises(InvalidInputError)),
        ({"access_point_kind": None}, pytest.raises(InvalidInputError)),  # feasible source needs a point
        ({"access_point_kind": "meter_box"}, pytest.raises(InvalidInputError)),  # not in the vocabulary
        ({"road_crossings": (("x", "motorway"),)}, pytest.raises(InvalidInputError)),
        ({"feasible_source": False, "access_point_kind": None, "new_route_length_m": None}, nullcontext()),
    ],
)
def test_site_facts_validation(changes: dict[str, Any], expectation: Any) -> None:
    with expectation:
        replace(NEAR_POLE, **changes)
