"""Deadline status of an internal step on the working-day calendar (R5.4: warn before, escalate after)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from design_rules.calendar import WorkCalendar

__all__ = ["DeadlineStatus", "deadline_status", "working_days_left"]


class DeadlineStatus(StrEnum):
    """``on_time``; ``at_risk``: the deadline is near (系统预警); ``overdue``: it passed (催办, escalation)."""

    ON_TIME = "on_time"
    AT_RISK = "at_risk"
    OVERDUE = "overdue"


def working_days_left(today: date, deadline: date, calendar: WorkCalendar) -> int:
    """Working days after ``today`` up to and including ``deadline`` (0 on the deadline day; < 0 never).

    Examples
    --------
    >>> working_days_left(date(2026, 9, 30), date(2026, 10, 9), WorkCalendar())   # National Day holidays
    2
    """
    return calendar.count_working_days(today, deadline) if deadline > today else 0


def deadline_status(deadline: date, today: date, calendar: WorkCalendar, *, completed_on: date | None = None,
                    at_risk_working_days: int = 1) -> DeadlineStatus:
    """Classify one step (R5.4). Deadlines are the last day allowed (end of day, Asia/Shanghai).

    A completed step is ``on_time`` or ``overdue`` by its completion date. An open step is ``overdue``
    after its deadline day and ``at_risk`` when at most ``at_risk_working_days`` working days are left
    after today (the deadline day itself counts as the last one).

    Examples
    --------
    >>> cal = WorkCalendar()
    >>> deadline_status(date(2026, 10, 9), date(2026, 9, 30), cal).value      # 8 and 9 Oct left
    'on_time'
    >>> deadline_status(date(2026, 10, 9), date(2026, 10, 8), cal).value      # only 9 Oct left
    'at_risk'
    >>> deadline_status(date(2026, 10, 9), date(2026, 10, 10), cal).value
    'overdue'
    >>> deadline_status(date(2026, 10, 9), date(2026, 10, 12), cal, completed_on=date(2026, 10, 9)).value
    'on_time'
    """
    if completed_on is not None:
        return DeadlineStatus.ON_TIME if completed_on <= deadline else DeadlineStatus.OVERDUE
    if today > deadline:
        return DeadlineStatus.OVERDUE
    if working_days_left(today, deadline, calendar) <= at_risk_working_days:
        return DeadlineStatus.AT_RISK
    return DeadlineStatus.ON_TIME
