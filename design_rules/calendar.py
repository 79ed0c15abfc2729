"""Chinese statutory working-day calendar (工作日/调休) with a local override file (DOMAIN §9.1)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Self

import chinese_calendar
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gis.errors import SanlingError

__all__ = [
    "CalendarDataError",
    "CalendarNotCoveredError",
    "CalendarOverrides",
    "OverrideYear",
    "WorkCalendar",
    "WorkdayResult",
    "load_calendar_overrides",
]

OVERRIDES_FILE = ("data", "calendar_overrides.toml")
_SATURDAY = 5


class CalendarDataError(SanlingError):
    """The calendar override file is malformed; ``details`` name the file, field and reason."""

    code = "CALENDAR_DATA_INVALID"
    default_message = "The working-day calendar override file is invalid."


class CalendarNotCoveredError(SanlingError):
    """A strict calendar was asked about a year it has no holiday data for."""

    code = "CALENDAR_NOT_COVERED"
    default_message = "No statutory holiday data for this year; add it to calendar_overrides.toml."


class OverrideYear(BaseModel):
    """Holidays (放假) and make-up working days (调休上班) of one year, from the State Council notice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    year: int = Field(ge=2000, le=2100)
    complete: bool = Field(
        description="True when the lists hold the whole notice, so the year counts as covered; "
        "False for known corrections only (the year stays as covered as it was)."
    )
    source: str = Field(min_length=3, description="Notice title / number (国务院办公厅关于…节假日安排的通知).")
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        outside = [d.isoformat() for d in (*self.holidays, *self.workdays) if d.year != self.year]
        if outside:
            raise ValueError(f"dates outside {self.year}: {outside}")
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"dates listed as both holiday and workday: {[d.isoformat() for d in both]}")
        weekdays = [d.isoformat() for d in self.workdays if d.weekday() < _SATURDAY]
        if weekdays:
            raise ValueError(f"make-up workdays must fall on a Saturday or Sunday: {weekdays}")
        return self


class CalendarOverrides(BaseModel):
    """Content of ``design_rules/data/calendar_overrides.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    years: tuple[OverrideYear, ...] = ()

    @model_validator(mode="after")
    def _unique_years(self) -> Self:
        seen = [y.year for y in self.years]
        dupes = sorted({y for y in seen if seen.count(y) > 1})
        if dupes:
            raise ValueError(f"years listed more than once: {dupes}")
        return self


def load_calendar_overrides(text: str, filename: str) -> CalendarOverrides:
    """Parse and validate an override file.

    Raises
    ------
    CalendarDataError
        ``CALENDAR_DATA_INVALID``, with ``details['file']`` and ``details['errors']`` (field, reason).

    Examples
    --------
    >>> text = '''
    ... [[years]]
    ... year = 2030
    ... complete = false
    ... source = "example"
    ... workdays = [2030-01-07]
    ... '''
    >>> load_calendar_overrides(text, "x.toml")
    Traceback (most recent call last):
    ...
    design_rules.calendar.CalendarDataError: x.toml: years.0: Value error, make-up workdays must ...
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        errors = [{"field": "<toml>", "reason": str(exc)}]
        raise CalendarDataError(f"{filename}: not valid TOML: {exc}", file=filename, errors=errors) from exc
    try:
        return CalendarOverrides.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])) or "<root>", "reason": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        raise CalendarDataError(f"{filename}: {summary}", file=filename, errors=errors) from exc


@cache
def _package_covers(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@cache
def _packaged_overrides() -> CalendarOverrides:
    entry = resources.files("design_rules").joinpath(*OVERRIDES_FILE)
    return load_calendar_overrides(entry.read_text(encoding="utf-8"), "data/calendar_overrides.toml")


@dataclass(frozen=True, slots=True)
class WorkdayResult:
    """A date found by counting working days, and whether the count used real holiday data.

    Attributes
    ----------
    end_date : date
        The date reached.
    covered : bool
        False if any day counted lies in a year without holiday data; those days were judged on
        weekends only (Mon–Fri = working day), so the date may be off by the year's holidays.
    uncovered_years : tuple[int, ...]
        The years judged on weekends only.
    """

    end_date: date
    covered: bool
    uncovered_years: tuple[int, ...] = ()


class WorkCalendar:
    """Working days of mainland China: Mon–Fri minus statutory holidays, plus make-up days (补班).

    Wraps ``chinese_calendar`` (data 2004–2026 in the pinned 1.11.0; it raises
    ``NotImplementedError`` outside) and applies ``calendar_overrides.toml`` on top. Outside the
    covered years the calendar falls back to weekends only and says so (``covered=False``), or
    raises ``CalendarNotCoveredError`` when ``strict``.

    Parameters
    ----------
    overrides : CalendarOverrides, optional
        Override data; default: none (use ``WorkCalendar.default()`` for the packaged file).
    strict : bool
        Raise instead of falling back to weekends only.

    Examples
    --------
    >>> cal = WorkCalendar()
    >>> cal.is_workday(date(2026, 10, 10))   # Saturday, make-up working day for National Day
    True
    >>> cal.is_workday(date(2026, 10, 1))
    False
    >>> cal.add_working_days(date(2026, 9, 30), 1).end_date
    datetime.date(2026, 10, 8)
    >>> cal.add_working_days(date(2027, 1, 1), 1).covered
    False
    """

    __slots__ = ("_complete_years", "_holidays", "_package_days", "_strict", "_workdays")

    def __init__(self, overrides: CalendarOverrides | None = None, *, strict: bool = False) -> None:
        years = overrides.years if overrides else ()
        self._holidays = frozenset(d for y in years for d in y.holidays)
        self._workdays = frozenset(d for y in years for d in y.workdays)
        self._complete_years = frozenset(y.year for y in years if y.complete)
        self._strict = strict
        self._package_days: dict[date, bool] = {}

    @classmethod
    def default(cls, *, strict: bool = False) -> WorkCalendar:
        """Return a calendar with the packaged ``data/calendar_overrides.toml`` applied."""
        return cls(_packaged_overrides(), strict=strict)

    def is_covered(self, day: date) -> bool:
        """Return whether real holiday data exists for ``day``'s year (package or complete override)."""
        return day.year in self._complete_years or _package_covers(day.year)

    def is_workday(self, day: date) -> bool:
        """Return whether ``day`` is a working day (工作日).

        Outside the covered years: Mon–Fri, unless overridden (or ``CalendarNotCoveredError`` if strict).
        """
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        if day.year in self._complete_years:
            return day.weekday() < _SATURDAY
        if _package_covers(day.year):
            cached = self._package_days.get(day)
            if cached is None:  # chinese_calendar validates and looks up on every call; a schedule asks ~40 times
                cached = self._package_days[day] = bool(chinese_calendar.is_workday(day))
            return cached
        if self._strict:
            raise CalendarNotCoveredError(
                f"No statutory holiday data for {day.year}; add the year to calendar_overrides.toml.",
                date=day.isoformat(),
                year=day.year,
            )
        return day.weekday() < _SATURDAY

    def add_working_days(self, start_date: date, n: int) -> WorkdayResult:
        """Return the ``n``-th working day after ``start_date`` (before it when ``n`` < 0).

        Counting starts on the day after ``start_date`` (T+1), whatever kind of day ``start_date``
        is, so ``add_working_days(acceptance_date, 1)`` is the first working day after acceptance.
        ``n == 0`` returns ``start_date`` itself.

        Parameters
        ----------
        start_date : date
            Day 0 (not counted).
        n : int
            Number of working days to move; negative moves backwards.

        Returns
        -------
        WorkdayResult
            The date, and ``covered=False`` if a counted day fell in a year without holiday data.

        Examples
        --------
        >>> cal = WorkCalendar()
        >>> cal.add_working_days(date(2026, 2, 13), 1).end_date   # Fri → Sat 14 Feb is a make-up day
        datetime.date(2026, 2, 14)
        >>> cal.add_working_days(date(2026, 2, 14), 1).end_date   # then the Spring Festival break
        datetime.date(2026, 2, 24)
        >>> cal.add_working_days(date(2026, 2, 24), -1).end_date
        datetime.date(2026, 2, 14)
        """
        step = timedelta(days=1 if n >= 0 else -1)
        day = start_date
        uncovered: set[int] = set()
        remaining = abs(n)
        while remaining:
            day += step
            if not self.is_covered(day):
                uncovered.add(day.year)
            if self.is_workday(day):
                remaining -= 1
        return WorkdayResult(day, not uncovered, tuple(sorted(uncovered)))

    def roll_forward(self, day: date) -> WorkdayResult:
        """Return ``day`` if it is a working day, else the next working day."""
        return self.add_working_days(day - timedelta(days=1), 1)

    def roll_back(self, day: date) -> WorkdayResult:
        """Return ``day`` if it is a working day, else the previous working day."""
        return self.add_working_days(day + timedelta(days=1), -1)

    def count_working_days(self, start_date: date, end_date: date) -> int:
        """Count working days in ``(start_date, end_date]`` (start excluded, end included).

        Examples
        --------
        >>> WorkCalendar().count_working_days(date(2026, 9, 30), date(2026, 10, 10))   # 8, 9, 10 Oct
        3
        """
        days = (end_date - start_date).days
        return sum(self.is_workday(start_date + timedelta(days=i)) for i in range(1, days + 1))
