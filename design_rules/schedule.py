"""Stage deadlines of a connection (环节时限, R3/R5.2): forward from acceptance or backward from a wanted date."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from design_rules.profiles import CountFrom, DayKind, JobClass, StepCode
from design_rules.reasons import Reason
from gis.errors import InvalidInputError

if TYPE_CHECKING:
    from design_rules.calendar import WorkCalendar
    from design_rules.profiles import Profile

__all__ = ["CHINA_TZ", "Schedule", "StepCode", "StepDeadline", "build_schedule"]

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
"""Asia/Shanghai; a fixed UTC+8 offset is exact for every date since 1992 (no daylight saving)."""

BACKWARD_STEPS = frozenset(
    {StepCode.CONSTRUCTION_PREP, StepCode.ADMIN_APPROVAL, StepCode.CONSTRUCTION, StepCode.METER_AND_ENERGISE}
)
"""Steps of the supporting works (配套项目), which BS 4.1.3 schedules backwards from the wanted date."""


@dataclass(frozen=True, slots=True)
class StepDeadline:
    """Deadline of one internal step (R5.2).

    Attributes
    ----------
    step_code : StepCode
    name_zh : str
        Chinese step name as in CQ-32 附件3 (e.g. 现场勘查).
    duration_days : int
        Days allotted, in the profile's ``day_kind``.
    starts_on : date
        Day the step may start: its predecessor's deadline (the acceptance date for the first step),
        or, when scheduled backwards, the latest start that still meets the deadline.
    deadline : date
        Last day (end of day, Asia/Shanghai) by which the step must be finished.
    """

    step_code: StepCode
    name_zh: str
    duration_days: int
    starts_on: date
    deadline: date


@dataclass(frozen=True, slots=True)
class Schedule:
    """Deadlines of every internal step and the promised power-on date.

    Attributes
    ----------
    job_class : JobClass
    profile_id : str
    accepted_on : date
        Acceptance date in Asia/Shanghai.
    steps : list of StepDeadline
        In process order; 行政审批 only appears when the road is dug.
    total_days : int
        Sum of ``duration_days``; always equals the profile's total for the job class.
    promised_power_on : date
        Deadline of 装表接电 (the wanted date when scheduled backwards).
    earliest_power_on : date
        Power-on date when every step runs to its deadline from acceptance.
    day_kind : DayKind
    calendar_covered : bool
        False if any counted day lies in a year without statutory holiday data.
    scheduled_backwards : bool
        True if the works were scheduled backwards from the customer's wanted date (BS 4.1.3).
    reasons : list of Reason
        Where the total and the split come from.
    warnings : list of Reason
        Things a person should look at (uncovered calendar, wanted date moved or ignored).
    """

    job_class: JobClass
    profile_id: str
    accepted_on: date
    steps: list[StepDeadline]
    total_days: int
    promised_power_on: date
    earliest_power_on: date
    day_kind: DayKind
    calendar_covered: bool
    scheduled_backwards: bool = False
    reasons: list[Reason] = field(default_factory=list)
    warnings: list[Reason] = field(default_factory=list)


def _accepted_on(accepted_at: datetime) -> date:
    if accepted_at.tzinfo is None or accepted_at.utcoffset() is None:
        raise InvalidInputError(
            "accepted_at must be timezone-aware (Asia/Shanghai).", field="accepted_at", value=str(accepted_at)
        )
    return accepted_at.astimezone(CHINA_TZ).date()


def _durations(
    job_class: JobClass, profile: Profile, excavation: bool, reasons: list[Reason]
) -> list[tuple[StepCode, int]]:
    """Step durations for this job, with the 行政审批 days moved when no road is dug (R5.2)."""
    deadline = profile.deadlines[job_class]
    days = dict(deadline.steps_days)
    approval = days[StepCode.ADMIN_APPROVAL]
    if excavation and approval == 0:
        raise InvalidInputError(
            f"Profile {profile.profile_id} allots no 行政审批 time to {job_class.value}; a dug road "
            "makes the job underground_cable (R3).",
            field="excavation",
            job_class=job_class.value,
        )
    if not excavation:
        del days[StepCode.ADMIN_APPROVAL]
        if approval:
            target = profile.schedule.unused_approval_days_to
            days[target] += approval
            reasons.append(
                Reason(
                    "NO_EXCAVATION_NO_APPROVAL",
                    f"不掘路，无需行政审批；预留的 {approval} 天并入“{target.label_zh}”。",
                    f"R5.2; {deadline.steps_source}",
                )
            )
    return [(code, days[code]) for code in StepCode if code in days]


class _Clock:
    """Day arithmetic in the profile's day kind, recording calendar coverage."""

    def __init__(self, profile: Profile, calendar: WorkCalendar) -> None:
        self.calendar = calendar
        self.working = profile.schedule.day_kind is DayKind.WORKING
        self.roll = profile.schedule.non_workday_deadline == "next_workday"
        self.uncovered: set[int] = set()

    def _note(self, result_covered: bool, years: tuple[int, ...]) -> None:
        if not result_covered:
            self.uncovered.update(years)

    def shift(self, day: date, n: int) -> date:
        """Move ``n`` days (working or calendar) from ``day``; calendar results may be rolled."""
        if self.working:
            result = self.calendar.add_working_days(day, n)
            self._note(result.covered, result.uncovered_years)
            return result.end_date
        moved = day + timedelta(days=n)
        for offset in range(min(0, n), max(0, n) + 1):
            probe = day + timedelta(days=offset)
            if not self.calendar.is_covered(probe):
                self.uncovered.add(probe.year)
        if not self.roll or n == 0:
            return moved
        rolled = self.calendar.roll_forward(moved) if n > 0 else self.calendar.roll_back(moved)
        self._note(rolled.covered, rolled.uncovered_years)
        return rolled.end_date

    def last_workday_on_or_before(self, day: date) -> date:
        result = self.calendar.roll_back(day)
        self._note(result.covered, result.uncovered_years)
        return result.end_date


def _forward(
    steps: list[tuple[StepCode, int]], accepted_on: date, base: date, clock: _Clock
) -> list[StepDeadline]:
    out: list[StepDeadline] = []
    previous, cumulative = accepted_on, 0
    for code, days in steps:
        cumulative += days
        deadline = clock.shift(base, cumulative) if days else previous
        out.append(StepDeadline(code, code.label_zh, days, previous, deadline))
        previous = deadline
    return out


def _backward(forward: list[StepDeadline], target: date, clock: _Clock) -> list[StepDeadline] | None:
    """Reschedule the works steps so that 装表接电 is due on ``target``; None if they would overlap."""
    front = [s for s in forward if s.step_code not in BACKWARD_STEPS]
    works = [s for s in forward if s.step_code in BACKWARD_STEPS]
    moved: list[StepDeadline] = []
    deadline = target
    for step in reversed(works):
        start = clock.shift(deadline, -step.duration_days) if step.duration_days else deadline
        moved.append(StepDeadline(step.step_code, step.name_zh, step.duration_days, start, deadline))
        deadline = start
    front_end = front[-1].deadline if front else forward[0].starts_on
    if deadline < front_end:
        return None
    return front + list(reversed(moved))


def build_schedule(
    job_class: JobClass | str,
    accepted_at: datetime,
    profile: Profile,
    calendar: WorkCalendar,
    excavation: bool,
    wanted_power_on: date | None = None,
) -> Schedule:
    """Compute every internal step's deadline and the promised power-on date (R3, R5.2).

    Durations come from ``profile.deadlines[job_class].steps_days`` and always sum to the profile's
    total for the job class. Without excavation the 行政审批 step is dropped and its days go to
    ``profile.schedule.unused_approval_days_to``. Day 1 is the first working day after acceptance
    (T+1) when ``count_from`` is ``next_workday``. A step of 0 days is due with its predecessor.

    When the customer names a ``wanted_power_on`` later than the earliest possible date, the
    supporting works (施工准备 → 装表接电) are scheduled backwards from it (按客户预计送电时间倒排,
    BS 4.1.3); acceptance, survey and design stay as early as possible.

    Parameters
    ----------
    job_class : JobClass
    accepted_at : datetime
        Timezone-aware acceptance time; its Asia/Shanghai date is day 0.
    profile : Profile
    calendar : WorkCalendar
    excavation : bool
        The road is dug (``JobDecision.excavation``), so 行政审批 applies.
    wanted_power_on : date, optional
        The customer's wanted power-on date (客户预计送电时间).

    Returns
    -------
    Schedule

    Raises
    ------
    InvalidInputError
        If ``accepted_at`` is naive, or ``excavation`` is set for a job class without approval time.

    Examples
    --------
    >>> from design_rules.calendar import WorkCalendar
    >>> from design_rules.profiles import get_profile
    >>> s = build_schedule("overhead", datetime(2026, 9, 29, 10, tzinfo=CHINA_TZ),
    ...                    get_profile("chongqing-2019"), WorkCalendar(), excavation=False)
    >>> s.total_days, s.promised_power_on
    (10, datetime.date(2026, 10, 19))
    >>> [(x.step_code.value, x.deadline.isoformat()) for x in s.steps][:2]
    [('accept_and_sign', '2026-09-30'), ('site_survey', '2026-10-08')]
    """
    job_class = JobClass(job_class)
    accepted_on = _accepted_on(accepted_at)
    rules = profile.schedule
    reasons = [
        Reason(
            "DEADLINE_TOTAL",
            f"{job_class.label_zh}：自受理至装表接电 {profile.total_days(job_class)} 个{rules.day_kind.label_zh}"
            f"（{rules.count_from.label_zh}）。",
            f"{profile.deadlines[job_class].source}; {rules.source}",
        ),
        Reason("STEP_SPLIT", "各环节时限分配。", profile.deadlines[job_class].steps_source),
    ]
    warnings: list[Reason] = []
    steps = _durations(job_class, profile, excavation, reasons)
    base = accepted_on if rules.count_from is CountFrom.NEXT_WORKDAY else accepted_on - timedelta(days=1)
    clock = _Clock(profile, calendar)

    planned = _forward(steps, accepted_on, base, clock)
    earliest = planned[-1].deadline
    backwards = False
    if wanted_power_on is not None:
        target = wanted_power_on
        if (clock.working or clock.roll) and target > earliest:
            target = clock.last_workday_on_or_before(wanted_power_on)
            if target != wanted_power_on:
                warnings.append(
                    Reason(
                        "WANTED_DATE_NOT_WORKDAY",
                        f"客户预计送电日 {wanted_power_on.isoformat()} 非工作日，按 {target.isoformat()} 倒排。",
                        "BS 4.1.3; DOMAIN §9.1",
                    )
                )
        if target > earliest:
            rescheduled = _backward(planned, target, clock)
            if rescheduled is not None:
                planned, backwards = rescheduled, True
                reasons.append(
                    Reason(
                        "SCHEDULED_BACKWARDS",
                        f"按客户预计送电时间 {target.isoformat()} 倒排配套项目建设周期。",
                        "BS 4.1.3",
                    )
                )
        elif wanted_power_on < earliest:
            warnings.append(
                Reason(
                    "WANTED_DATE_TOO_EARLY",
                    f"客户预计送电日 {wanted_power_on.isoformat()} 早于最早可送电日 {earliest.isoformat()}，"
                    "按正常时限安排。",
                    "BS 4.1.3",
                )
            )

    if job_class is JobClass.TRANSFORMER_UPGRADE and profile.connect_first.allowed:
        reasons.append(
            Reason(
                "CONNECT_FIRST_REINFORCE_LATER",
                "先接入、后改造：时限内以过渡方案送电，配变改造随后完成。",
                profile.connect_first.source,
            )
        )
    if clock.uncovered:
        years = "、".join(str(y) for y in sorted(clock.uncovered))
        warnings.append(
            Reason(
                "CALENDAR_NOT_COVERED",
                f"{years} 年无法定节假日数据，按周末推算工作日，时限可能偏早；请补充 calendar_overrides.toml。",
                "DOMAIN §9.1",
            )
        )

    total = sum(s.duration_days for s in planned)
    if total != profile.total_days(job_class):  # invariant (STYLE 13); profile validation makes it hold
        raise RuntimeError(f"step durations sum to {total}, profile total is {profile.total_days(job_class)}")
    return Schedule(
        job_class=job_class,
        profile_id=profile.profile_id,
        accepted_on=accepted_on,
        steps=planned,
        total_days=total,
        promised_power_on=planned[-1].deadline,
        earliest_power_on=earliest,
        day_kind=rules.day_kind,
        calendar_covered=not clock.uncovered,
        scheduled_backwards=backwards,
        reasons=reasons,
        warnings=warnings,
    )
