"""Stage schedule (R3, R5.2): sums, 2026 holidays and make-up days, backwards scheduling (BS 4.1.3), properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from design_rules.calendar import WorkCalendar
from design_rules.profiles import JobClass, ScheduleRules, StepCode, get_profile, profile_ids
from design_rules.schedule import CHINA_TZ, Schedule, build_schedule
from gis.errors import InvalidInputError

CAL = WorkCalendar()
CQ = get_profile("chongqing-2019")
DUG = {JobClass.UNDERGROUND_CABLE, JobClass.TRANSFORMER_UPGRADE}  # classes with 行政审批 time in every profile


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CHINA_TZ)


def _check_invariants(s: Schedule) -> None:
    """STYLE 13: run after every schedule."""
    profile = get_profile(s.profile_id)
    assert s.total_days == sum(x.duration_days for x in s.steps) == profile.total_days(s.job_class)
    assert s.promised_power_on == s.steps[-1].deadline
    assert [x.step_code for x in s.steps] == [c for c in StepCode if c in {x.step_code for x in s.steps}]
    for before, after in pairwise(s.steps):
        assert before.deadline <= after.starts_on <= after.deadline
    for step in s.steps:
        assert CAL.is_workday(step.deadline), step


@pytest.mark.parametrize("profile_id", profile_ids())
@pytest.mark.parametrize("job_class", list(JobClass))
def test_r5_2_step_durations_sum_to_the_profile_total(profile_id: str, job_class: JobClass) -> None:
    for excavation in ([False, True] if job_class in DUG else [False]):
        s = build_schedule(job_class, _at(date(2026, 3, 2)), get_profile(profile_id), CAL, excavation)
        _check_invariants(s)
        assert (StepCode.ADMIN_APPROVAL in [x.step_code for x in s.steps]) is excavation


@pytest.mark.parametrize(
    ("accepted", "job_class", "power_on"),
    [
        # National Day 2026: 1–7 Oct off, Saturday 10 Oct worked. 8, 9, 10, 12 Oct = days 1–4.
        (date(2026, 9, 30), JobClass.DIRECT_METER, date(2026, 10, 12)),
        # 29 Sep: 30 Sep, 8, 9, 10, 12, 13, 14, 15, 16, 19 Oct = 10 working days.
        (date(2026, 9, 29), JobClass.OVERHEAD, date(2026, 10, 19)),
        # Spring Festival 2026: Saturday 14 Feb worked, 15–23 Feb off.
        (date(2026, 2, 13), JobClass.DIRECT_METER, date(2026, 2, 26)),
        # Saturday 28 Feb worked: 27, 28 Feb, 2, 3 Mar.
        (date(2026, 2, 26), JobClass.DIRECT_METER, date(2026, 3, 3)),
        # New Year: Sunday 4 Jan worked: 4, 5, 6, 7 Jan.
        (date(2025, 12, 31), JobClass.DIRECT_METER, date(2026, 1, 7)),
        # Labour Day: 1–5 May off, Saturday 9 May worked: 6, 7, 8, 9 May.
        (date(2026, 4, 30), JobClass.DIRECT_METER, date(2026, 5, 9)),
        # Sunday 20 Sep worked: 20, 21, 22, 23 Sep.
        (date(2026, 9, 18), JobClass.DIRECT_METER, date(2026, 9, 23)),
    ],
)
def test_r3_2026_holidays_and_make_up_days(accepted: date, job_class: JobClass, power_on: date) -> None:
    s = build_schedule(job_class, _at(accepted), CQ, CAL, excavation=False)
    assert s.promised_power_on == power_on
    assert s.calendar_covered and not s.warnings
    _check_invariants(s)


def test_r5_2_excavation_adds_the_two_day_approval_step() -> None:
    dug = build_schedule(JobClass.UNDERGROUND_CABLE, _at(date(2026, 3, 2)), CQ, CAL, excavation=True)
    undug = build_schedule(JobClass.UNDERGROUND_CABLE, _at(date(2026, 3, 2)), CQ, CAL, excavation=False)
    approval = next(x for x in dug.steps if x.step_code is StepCode.ADMIN_APPROVAL)
    assert (approval.duration_days, approval.name_zh) == (2, "行政审批")  # CQ-45 措施7
    construction = next(x for x in undug.steps if x.step_code is StepCode.CONSTRUCTION)
    assert construction.duration_days == 7 + 2
    assert dug.promised_power_on == undug.promised_power_on  # same 15-day promise
    assert "NO_EXCAVATION_NO_APPROVAL" in [r.code for r in undug.reasons]


def test_excavation_on_a_class_without_approval_time_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        build_schedule(JobClass.OVERHEAD, _at(date(2026, 3, 2)), CQ, CAL, excavation=True)


def test_accepted_at_must_be_aware_and_is_read_in_asia_shanghai() -> None:
    with pytest.raises(InvalidInputError):
        build_schedule(JobClass.OVERHEAD, datetime(2026, 3, 2, 10), CQ, CAL, excavation=False)
    late_utc = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 01:00 on 3 March in Shanghai
    assert build_schedule(JobClass.OVERHEAD, late_utc, CQ, CAL, False).accepted_on == date(2026, 3, 3)


def test_bs_4_1_3_backwards_from_the_wanted_power_on_date() -> None:
    forward = build_schedule(JobClass.OVERHEAD, _at(date(2026, 3, 2)), CQ, CAL, False)
    wanted = date(2026, 4, 30)
    s = build_schedule(JobClass.OVERHEAD, _at(date(2026, 3, 2)), CQ, CAL, False, wanted_power_on=wanted)
    assert s.scheduled_backwards and s.promised_power_on == wanted
    assert s.earliest_power_on == forward.promised_power_on < wanted
    assert s.steps[:3] == forward.steps[:3]  # acceptance, survey and design stay early
    prep = next(x for x in s.steps if x.step_code is StepCode.CONSTRUCTION_PREP)
    assert prep.starts_on > s.steps[2].deadline  # slack before the works
    assert CAL.count_working_days(prep.starts_on, wanted) == 2 + 5 + 0  # prep + construction + meter
    _check_invariants(s)


def test_bs_4_1_3_wanted_date_on_a_holiday_is_moved_to_the_working_day_before() -> None:
    s = build_schedule(JobClass.OVERHEAD, _at(date(2026, 3, 2)), CQ, CAL, False, wanted_power_on=date(2026, 5, 3))
    assert s.promised_power_on == date(2026, 4, 30)
    assert [w.code for w in s.warnings] == ["WANTED_DATE_NOT_WORKDAY"]


def test_bs_4_1_3_wanted_date_earlier_than_possible_is_ignored_with_a_warning() -> None:
    s = build_schedule(JobClass.OVERHEAD, _at(date(2026, 3, 2)), CQ, CAL, False, wanted_power_on=date(2026, 3, 5))
    assert not s.scheduled_backwards
    assert s.promised_power_on == s.earliest_power_on
    assert [w.code for w in s.warnings] == ["WANTED_DATE_TOO_EARLY"]


def test_uncovered_year_is_flagged_never_silent() -> None:
    s = build_schedule(JobClass.UNDERGROUND_CABLE, _at(date(2026, 12, 24)), CQ, CAL, excavation=True)
    assert s.promised_power_on.year == 2027
    assert not s.calendar_covered
    assert [w.code for w in s.warnings] == ["CALENDAR_NOT_COVERED"]


def test_calendar_day_profile_and_acceptance_day_convention() -> None:
    raw = CQ.schedule.model_dump() | {"day_kind": "calendar", "count_from": "acceptance_day"}
    calendar_cq = CQ.model_copy(update={"schedule": ScheduleRules.model_validate(raw)})
    raw_keep = raw | {"non_workday_deadline": "keep"}
    keep_cq = CQ.model_copy(update={"schedule": ScheduleRules.model_validate(raw_keep)})
    accepted = date(2026, 3, 2)  # Monday; day 1 is the acceptance day itself
    kept = build_schedule(JobClass.OVERHEAD, _at(accepted), keep_cq, CAL, False)
    assert kept.promised_power_on == accepted + timedelta(days=9)  # Wednesday 11 March
    rolled = build_schedule(JobClass.DIRECT_METER, _at(accepted), calendar_cq, CAL, False)
    assert rolled.promised_power_on == date(2026, 3, 5)  # 2, 3, 4, 5 March
    weekend = build_schedule(JobClass.DIRECT_METER, _at(date(2026, 3, 5)), calendar_cq, CAL, False)
    assert weekend.promised_power_on == date(2026, 3, 9)  # Sunday 8 March rolls to Monday
    assert kept.total_days == rolled.total_days + 6 == 10


@settings(max_examples=150, deadline=None)
@given(
    profile_id=st.sampled_from(profile_ids()),
    job_class=st.sampled_from(list(JobClass)),
    dug=st.booleans(),
    accepted=st.datetimes(datetime(2004, 1, 1), datetime(2026, 11, 30), timezones=st.just(CHINA_TZ)),
    wanted_offset=st.one_of(st.none(), st.integers(min_value=-10, max_value=120)),
)
def test_r5_2_property_deadlines_monotone_and_on_working_days(
    profile_id: str, job_class: JobClass, dug: bool, accepted: datetime, wanted_offset: int | None
) -> None:
    excavation = dug and job_class in DUG
    wanted = None if wanted_offset is None else accepted.date() + timedelta(days=wanted_offset)
    s = build_schedule(job_class, accepted, get_profile(profile_id), CAL, excavation, wanted)
    _check_invariants(s)
    assert s.steps[0].starts_on == s.accepted_on < s.steps[0].deadline
    assert s.promised_power_on >= s.earliest_power_on
    if wanted is not None and s.scheduled_backwards:
        assert s.promised_power_on <= wanted
