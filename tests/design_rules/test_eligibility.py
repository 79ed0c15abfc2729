"""Eligibility (R1.2, R1.3): every exclusion, limit and flag returns a code, the seed's reason and a source."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from design_rules.eligibility import Category, EligibilityInput, check_eligibility
from design_rules.profiles import get_profile

CQ = get_profile("chongqing-2019")
BS = get_profile("baoshan-2021")
ON = date(2026, 3, 2)


def _app(**overrides: Any) -> EligibilityInput:
    base: dict[str, Any] = {"kw": 60.0, "category": "small_enterprise", "area_type": "urban"}
    return EligibilityInput(**(base | overrides))


def _codes(result: Any) -> list[str]:
    return [r.code for r in result.reasons]


@pytest.mark.parametrize("profile_id", ["chongqing-2019", "shanghai-2019", "baoshan-2021", "wanzhou-2021"])
def test_r1_3_small_enterprise_at_60_kw_is_eligible_everywhere(profile_id: str) -> None:
    result = check_eligibility(_app(), get_profile(profile_id), ON)
    assert result.eligible
    assert result.reasons == []
    assert result.max_kw == 160


@pytest.mark.parametrize(
    ("category", "sub_kind", "clause"),
    [
        ("temporary", None, "CQ-32 一.1"),
        ("municipal_facility", "base_station", "CQ-32 一.2"),
        ("municipal_facility", "street_lighting", "CQ-32 一.2"),
        ("residential_development", None, "CQ-32 一.3"),
        ("complex_partial", None, "CQ-32 一.4"),
        ("high_reliability", "airport", "CQ-32 一.5"),
        ("hv_to_lv", None, "CQ-32 一.6"),
        ("plot_split", None, "CQ-32 一.7"),
        ("residential", None, "CQ-32 一"),
    ],
)
def test_r1_3_each_cq32_exclusion_is_reported_with_its_clause(category: str, sub_kind: str | None, clause: str) -> None:
    result = check_eligibility(_app(category=category, sub_kind=sub_kind), CQ, ON)
    assert not result.eligible
    assert _codes(result) == ["EXCLUDED_CATEGORY"]
    reason = result.reasons[0]
    assert reason.source.startswith(clause)
    assert Category(category).label_zh in reason.message
    assert "不适用" in reason.message or "非居民" in reason.message


def test_r1_3_sub_kind_is_named_in_the_message() -> None:
    result = check_eligibility(_app(category="municipal_facility", sub_kind="police_camera"), CQ, ON)
    assert "警用摄像头" in result.reasons[0].message


@pytest.mark.parametrize(
    ("kw", "eligible"),
    [
        (160.0, True),  # the limit itself is inside (160 千瓦及以下)
        (160.01, False),  # just above
    ],
)
def test_r1_3_capacity_limit_boundary(kw: float, eligible: bool) -> None:
    result = check_eligibility(_app(kw=kw), CQ, ON)
    assert result.eligible is eligible
    assert _codes(result) == ([] if eligible else ["CAPACITY_ABOVE_LIMIT"])


@pytest.mark.parametrize(
    ("kw", "on_date", "eligible"),
    [
        (100.0, date(2022, 12, 31), True),  # rural 100 kW limit, last day
        (100.5, date(2022, 12, 31), False),  # above it
        (150.0, date(2023, 1, 1), True),  # 160 kW everywhere from 2023 (BS 4.3.3)
    ],
)
def test_r1_3_baoshan_dated_rural_limit(kw: float, on_date: date, eligible: bool) -> None:
    result = check_eligibility(_app(kw=kw, area_type="D", urban_rural="rural"), BS, on_date)
    assert result.eligible is eligible
    if not eligible:
        assert "100 kW" in result.reasons[0].message
        assert result.reasons[0].source.startswith("BS")


def test_r1_3_baoshan_urban_keeps_160_kw_in_2022() -> None:
    assert check_eligibility(_app(kw=150.0, area_type="B", urban_rural="urban"), BS, date(2022, 6, 1)).eligible


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"voltage_kv": 10.0}, "VOLTAGE_ABOVE_LV"),  # 10 kV supply is not LV
        ({"source_is_grid_owned": False}, "SOURCE_NOT_GRID_OWNED"),
        ({"extra_account_at_address": True}, "ONE_ADDRESS_ONE_ACCOUNT"),  # 一址一户
        ({"closed_account_at_address_on": date(2025, 3, 3)}, "REAPPLICATION_WITHIN_BLOCK"),  # CQ-32 一.8
        ({"documents_provided": ["property_proof"]}, "MISSING_REQUIRED_DOCUMENT"),  # ID is never deferrable
    ],
)
def test_r1_3_flag_rules(overrides: dict[str, Any], code: str) -> None:
    result = check_eligibility(_app(**overrides), CQ, ON)
    assert _codes(result) == [code]
    assert result.reasons[0].source


@pytest.mark.parametrize(
    ("closed_on", "on_date", "blocked"),
    [
        (date(2025, 3, 2), date(2026, 3, 1), True),  # one day short of a year
        (date(2025, 3, 2), date(2026, 3, 2), False),  # a full year later
        (date(2024, 2, 29), date(2025, 2, 28), True),  # leap day: the year ends on 1 March
        (date(2024, 2, 29), date(2025, 3, 1), False),
    ],
)
def test_r1_3_reapplication_within_one_year(closed_on: date, on_date: date, blocked: bool) -> None:
    result = check_eligibility(_app(closed_account_at_address_on=closed_on), CQ, on_date)
    assert ("REAPPLICATION_WITHIN_BLOCK" in _codes(result)) is blocked


def test_r1_2_property_proof_may_follow_later() -> None:
    """容缺受理: the ID alone is enough to accept (BS 4.2.4)."""
    result = check_eligibility(_app(documents_provided=["identity"]), BS, ON)
    assert result.eligible
    assert "DOCUMENT_DEFERRED" in [n.code for n in result.notes]


def test_r1_3_individual_business_counts_as_small_enterprise_in_baoshan() -> None:
    result = check_eligibility(_app(category="individual_business"), BS, ON)
    assert result.eligible
    assert [n.source for n in result.notes if n.code == "TREATED_AS_SMALL_ENTERPRISE"] == ["BS 4.3.3"]


def test_r1_3_every_failure_is_reported_not_just_the_first() -> None:
    app = _app(category="temporary", kw=200.0, voltage_kv=10.0, extra_account_at_address=True)
    assert _codes(check_eligibility(app, CQ, ON)) == [
        "EXCLUDED_CATEGORY",
        "CAPACITY_ABOVE_LIMIT",
        "VOLTAGE_ABOVE_LV",
        "ONE_ADDRESS_ONE_ACCOUNT",
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        {"kw": 0.0},  # capacity must be positive
        {"category": "small_enterprise", "sub_kind": "airport"},  # sub-kind only for the two categories
        {"category": "municipal_facility", "sub_kind": "airport"},  # wrong sub-kind list
        {"area_type": "B"},  # a supply-area class needs an explicit urban_rural
        {"category": "farm"},  # not in the vocabulary
    ],
)
def test_invalid_input_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _app(**overrides)
