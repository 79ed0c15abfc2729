"""Policy profiles: the four packaged files load, every value is sourced, broken files are named (R1.3, R3, R5.2)."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import date
from importlib import resources
from types import MappingProxyType

import pytest
from pydantic import BaseModel

from design_rules import profiles
from design_rules.profiles import (
    AreaType,
    DayKind,
    JobClass,
    ProfileError,
    StepCode,
    UnknownProfileError,
    UrbanRural,
    get_profile,
    load_profile_text,
    profile_ids,
)

PROFILE_IDS = ("baoshan-2021", "chongqing-2019", "shanghai-2019", "wanzhou-2021")


def _cq_text() -> str:
    entry = resources.files("design_rules").joinpath("data", "profiles", "chongqing-2019.toml")
    return entry.read_text(encoding="utf-8")


def _sourced_models(model: BaseModel, path: str = "") -> list[tuple[str, BaseModel]]:
    """Every nested model of a profile, with its dotted path."""
    found: list[tuple[str, BaseModel]] = []
    for name, value in model:
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, tuple) else []
        if isinstance(value, BaseModel):
            found += [(f"{path}{name}", value), *_sourced_models(value, f"{path}{name}.")]
        for key, child in children:
            if isinstance(child, BaseModel):
                found += [(f"{path}{name}.{key}", child), *_sourced_models(child, f"{path}{name}.{key}.")]
    return found


def test_r1_3_all_four_profiles_load_and_are_registered() -> None:
    assert profile_ids() == PROFILE_IDS
    assert isinstance(profiles.PROFILES, MappingProxyType)
    for profile_id in PROFILE_IDS:
        assert get_profile(profile_id).profile_id == profile_id


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        profiles.PROFILES["x"] = get_profile("chongqing-2019")  # type: ignore[index]


def test_unknown_profile_raises_profile_unknown_with_known_ids() -> None:
    with pytest.raises(UnknownProfileError) as info:
        get_profile("beijing-2018")
    assert info.value.code == "PROFILE_UNKNOWN"
    assert info.value.details["known"] == list(PROFILE_IDS)


@pytest.mark.parametrize("profile_id", PROFILE_IDS)
def test_every_value_group_carries_a_source(profile_id: str) -> None:
    """STYLE 2: every group of numbers names the seed clause or DOMAIN section it comes from."""
    # containers hold only sourced sub-models; the document list is itself the citation
    exempt = {"DocumentRef", "EligibilityRules", "CapacityLimits"}
    for path, model in _sourced_models(get_profile(profile_id)):
        if type(model).__name__ in exempt:
            continue
        assert "source" in type(model).model_fields, path
        assert len(model.source) >= 3, path  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("profile_id", "totals"),
    [
        ("chongqing-2019", (4, 10, 15, 15)),  # CQ-45 一.2, CQ-32 二(二)
        ("shanghai-2019", (10, 10, 10, 10)),  # SH 6: 2020 average ≤10
        ("baoshan-2021", (5, 5, 5, 5)),  # BS 附件: 1 + 4 working days
        ("wanzhou-2021", (7, 7, 7, 7)),  # WZ §1.1: ≤7 working days
    ],
)
def test_r3_totals_per_job_class(profile_id: str, totals: tuple[int, ...]) -> None:
    profile = get_profile(profile_id)
    assert tuple(profile.total_days(j) for j in JobClass) == totals
    assert profile.schedule.day_kind is DayKind.WORKING


@pytest.mark.parametrize("profile_id", PROFILE_IDS)
def test_r5_2_step_durations_sum_to_the_job_class_total(profile_id: str) -> None:
    for job_class, deadline in get_profile(profile_id).deadlines.items():
        assert set(deadline.steps_days) == set(StepCode), job_class
        assert sum(deadline.steps_days.values()) == deadline.total_days, job_class


def test_r1_3_baoshan_rural_limit_is_dated() -> None:
    limits = get_profile("baoshan-2021").eligibility.capacity_kw
    assert limits.limit_on(UrbanRural.RURAL, date(2022, 12, 31)).max_kw == 100  # BS 4.3.3
    assert limits.limit_on(UrbanRural.RURAL, date(2023, 1, 1)).max_kw == 160
    assert limits.limit_on(UrbanRural.URBAN, date(2021, 8, 1)).max_kw == 160


def test_r2_3_thresholds_and_defaults() -> None:
    cq = get_profile("chongqing-2019")
    t = cq.load_thresholds
    assert (t.may_start_pct, t.must_start_pct, t.max_load_after_pct, t.area_precontrol_kva) == (50, 70, 80, 160)
    assert cq.power_factor.value == 0.85
    assert cq.supply_radius_m.radius_m[AreaType.E] is None  # compute case by case (DOMAIN §1.1)
    assert (cq.service_drop.max_span_m, cq.service_drop.max_total_m) == (25, 50)
    assert {str(c) for c in cq.excavation_road_classes} == {"arterial", "secondary"}
    assert cq.voltage_drop_budget_pct == 5


def test_connect_first_flag_follows_the_seeds() -> None:
    allowed = {pid: get_profile(pid).connect_first.allowed for pid in PROFILE_IDS}
    assert allowed == {
        "baoshan-2021": True,  # BS 4.1.1
        "chongqing-2019": False,
        "shanghai-2019": True,  # SH 8
        "wanzhou-2021": False,
    }


def test_vocabulary_members_have_chinese_labels() -> None:
    for enum in (JobClass, StepCode, AreaType, profiles.Category, profiles.RoadClass, profiles.DocumentKind):
        for member in enum:
            assert member.label_zh, member


@pytest.mark.parametrize(
    ("old", "new", "field", "reason_part"),
    [
        # a negative span: pydantic bound
        ("max_span_m = 25.0", "max_span_m = -1.0", "service_drop.max_span_m", "greater than 0"),
        # steps no longer add up to the total
        ("total_days = 4\n", "total_days = 5\n", "deadlines.direct_meter", "sum to 4"),
        # a misspelt key is refused, not ignored
        ("max_total_m = 50.0", "max_total_metres = 50.0", "service_drop.max_total_metres", "Extra inputs"),
        # an unknown road class
        ('road_classes = ["arterial", "secondary"]', 'road_classes = ["motorway"]', "excavation.road_classes", ""),
        # the E class must be present (TOML has no null)
        ('E = "case_by_case"\n', "", "supply_radius_m.radius_m", "missing area types"),
        # thresholds out of order
        ("must_start_pct = 70.0", "must_start_pct = 90.0", "load_thresholds", "may_start_pct <= must_start_pct"),
        # profile_id and file name disagree
        ('profile_id = "chongqing-2019"', 'profile_id = "chongqing-2020"', "profile_id", "file name stem"),
    ],
)
def test_broken_profile_names_file_field_and_reason(old: str, new: str, field: str, reason_part: str) -> None:
    text = _cq_text()
    assert old in text
    with pytest.raises(ProfileError) as info:
        load_profile_text(text.replace(old, new, 1), "data/profiles/chongqing-2019.toml")
    err = info.value
    assert err.code == "PROFILE_INVALID"
    assert err.details["file"] == "data/profiles/chongqing-2019.toml"
    fields = [e["field"] for e in err.details["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert any(reason_part in e["reason"] for e in err.details["errors"])
    assert "chongqing-2019.toml" in err.message


@pytest.mark.parametrize(
    ("extra", "expectation"),
    [
        ("", nullcontext()),  # the packaged file as it is
        ("[[eligibility.capacity_kw.rural]]\nmax_kw = 100.0\nsource = \"overlap\"\n", pytest.raises(ProfileError)),
        ("bad toml = = 1\n", pytest.raises(ProfileError)),
    ],
)
def test_profile_file_variants(extra: str, expectation: object) -> None:
    with expectation:  # type: ignore[attr-defined]
        load_profile_text(_cq_text() + extra, "chongqing-2019.toml")
