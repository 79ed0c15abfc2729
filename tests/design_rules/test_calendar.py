"""WorkCalendar: holidays, make-up days (调休), T+1 counting, uncovered-year fallback (R3, DOMAIN §9.1)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from importlib import resources

import chinese_calendar
import pytest

from design_rules.calendar import (
    CalendarDataError,
    CalendarNotCoveredError,
    WorkCalendar,
    load_calendar_overrides,
)

CAL = WorkCalendar()

# 2026 make-up working days (补班), from the State Council notice of 2025-11-04 (DOMAIN §9.1)
MAKE_UP_2026 = [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
                date(2026, 10, 10)]

OVERRIDE_2027 = """
[[years]]
year = 2027
complete = true
source = "test fixture, not the real 2027 notice"
holidays = [2027-01-01, 2027-02-08, 2027-02-09]
workdays = [2027-02-06]
"""


@pytest.mark.parametrize("day", MAKE_UP_2026)
def test_r3_2026_make_up_days_are_working_days(day: date) -> None:
    assert day.weekday() >= 5  # a Saturday or Sunday
    assert CAL.is_workday(day)


@pytest.mark.parametrize(
    "day",
    [date(2026, 10, 1), date(2026, 10, 7), date(2026, 2, 16), date(2026, 2, 23), date(2026, 5, 5),
     date(2026, 1, 2)],
)
def test_r3_2026_holidays_are_not_working_days(day: date) -> None:
    assert not CAL.is_workday(day)


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 3, 6), 1, date(2026, 3, 9)),  # Friday → Monday (T+1 skips the weekend)
        (date(2026, 3, 7), 1, date(2026, 3, 9)),  # accepted on Saturday → Monday is day 1
        (date(2026, 3, 9), 0, date(2026, 3, 9)),  # n = 0 is the start itself
        (date(2026, 9, 30), 1, date(2026, 10, 8)),  # over National Day
        (date(2026, 10, 8), 2, date(2026, 10, 10)),  # Saturday 10 Oct is a make-up day
        (date(2026, 2, 13), 2, date(2026, 2, 24)),  # 14 Feb make-up, then Spring Festival
        (date(2026, 2, 24), -2, date(2026, 2, 13)),  # backwards over the same break
        (date(2025, 12, 31), 1, date(2026, 1, 4)),  # Sunday 4 Jan is a make-up day
    ],
)
def test_add_working_days_counts_from_the_next_working_day(start: date, n: int, expected: date) -> None:
    result = CAL.add_working_days(start, n)
    assert result.end_date == expected
    assert result.covered


def test_add_then_subtract_is_identity_on_working_days() -> None:
    day = date(2026, 1, 5)
    for n in (1, 4, 10, 15, 40):
        assert CAL.add_working_days(CAL.add_working_days(day, n).end_date, -n).end_date == day


def test_uncovered_year_falls_back_to_weekends_and_says_so() -> None:
    result = CAL.add_working_days(date(2026, 12, 30), 3)  # 31 Dec 2026, then 1 and 4 Jan 2027
    assert result.end_date == date(2027, 1, 4)
    assert not result.covered
    assert result.uncovered_years == (2027,)
    assert not CAL.is_covered(date(2027, 6, 1))
    assert CAL.is_workday(date(2027, 1, 1))  # a Friday: weekends-only guess, flagged above


def test_strict_calendar_raises_outside_coverage() -> None:
    with pytest.raises(CalendarNotCoveredError) as info:
        WorkCalendar(strict=True).is_workday(date(2027, 1, 4))
    assert info.value.code == "CALENDAR_NOT_COVERED"
    assert info.value.details["year"] == 2027


def test_complete_override_year_counts_as_covered() -> None:
    cal = WorkCalendar(load_calendar_overrides(OVERRIDE_2027, "test.toml"), strict=True)
    assert cal.is_covered(date(2027, 3, 1))
    assert not cal.is_workday(date(2027, 1, 1))
    assert cal.is_workday(date(2027, 2, 6))  # Saturday make-up day
    assert not cal.is_workday(date(2027, 2, 8))
    assert cal.add_working_days(date(2027, 2, 5), 1).end_date == date(2027, 2, 6)


def test_packaged_override_file_loads_and_its_example_matches_the_package() -> None:
    assert WorkCalendar.default().is_workday(date(2026, 10, 10))
    text = resources.files("design_rules").joinpath("data", "calendar_overrides.toml").read_text("utf-8")
    lines = [re.sub(r"^# ?", "", line) for line in text.splitlines() if line.startswith("#")]
    example = "\n".join(lines[lines.index("[[years]]"):])
    cal = WorkCalendar(load_calendar_overrides(example, "example"))
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert cal.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "field", "reason_part"),
    [
        # a make-up day must be a weekend day
        ('[[years]]\nyear = 2027\ncomplete = true\nsource = "x y z"\nworkdays = [2027-01-05]\n', "years.0",
         "Saturday or Sunday"),
        # dates must lie in the year
        ('[[years]]\nyear = 2027\ncomplete = true\nsource = "x y z"\nholidays = [2028-01-01]\n', "years.0",
         "outside 2027"),
        # a year once only
        ('[[years]]\nyear = 2027\ncomplete = true\nsource = "x y z"\n' * 2, "<root>", "more than once"),
        # unknown key
        ('[[years]]\nyear = 2027\ncomplete = true\nsource = "x y z"\nholiday = []\n', "years.0.holiday",
         "Extra inputs"),
        # not TOML
        ("years = [", "<toml>", ""),
    ],
)
def test_broken_override_file_names_file_field_and_reason(text: str, field: str, reason_part: str) -> None:
    with pytest.raises(CalendarDataError) as info:
        load_calendar_overrides(text, "calendar_overrides.toml")
    err = info.value
    assert err.code == "CALENDAR_DATA_INVALID"
    assert err.details["file"] == "calendar_overrides.toml"
    assert [e for e in err.details["errors"] if e["field"] == field and reason_part in e["reason"]]


def test_count_working_days_matches_add_working_days() -> None:
    start = date(2026, 9, 28)
    end = CAL.add_working_days(start, 12).end_date
    assert CAL.count_working_days(start, end) == 12
