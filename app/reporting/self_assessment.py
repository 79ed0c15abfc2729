"""Monthly self-assessment by the World Bank "Getting Electricity" method (R8.3; CQ-45 措施14; issue 14 item 4).

"每月按照世行'获得电力'指标评价方法，开展自评" (CQ-45 m14). Pure: :func:`assess` turns the
:class:`AssessmentRecord` of every order energised in the month (what the database holds about it) into a
:class:`SelfAssessment` — procedures and customer interactions, time per job class in working and calendar days,
the customer's cost, the grid company's cost, the no-outage connection rate, SAIDI/SAIFI — each figure next to its
target from the profile (``deadlines`` and ``self_assessment``, design_rules/data/profiles/*.toml). The working days
are annex 2's (:func:`app.reporting.project_detail.whole_process_working_days`): one way to count them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from app.reporting.project_detail import china_time, whole_process_working_days
from design_rules.calendar import WorkCalendar
from design_rules.profiles import DayKind, JobClass, Profile

TITLE_ZH = "获得电力指标月度自评"
REPORT = "getting_electricity"
#: (JSON key, header label) of the XLSX sheet: one line per figure.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("indicator", "指标"), ("item", "分项"), ("value", "数值"), ("unit", "单位"), ("target", "目标"),
    ("met", "是否达标"), ("source", "目标依据"),
)
WIDTHS = (14, 36, 12, 12, 14, 10, 60)
RELIABILITY_MONTHS = 12
NO_RELIABILITY_WARNING = (
    "SAIDI/SAIFI: no reliability statistics — the reliability import layer (customers, customer-hours interrupted "
    "and customer interruptions per supply unit and period, issue 14 item 1) does not exist yet, so both are null "
    "(not 0) for the last 12 months.")


@dataclass(frozen=True, slots=True)
class AssessmentRecord:
    """What the database holds about one order energised in the month (times aware or naive UTC)."""

    application_id: int
    account_number: str | None
    applicant_name: str
    job_class: str | None
    accepted_at: datetime
    powered_on_at: datetime
    customer_charged_cny: float | None
    confirmed_cost_cny: float | None
    needs_outage: bool | None
    application_interactions: int
    """The audit log's rows of the order that are a contact with the customer: the application (``created``) and
    every document handed in later (``document_added``, by the customer or collected by the customer manager)."""


def month_bounds(month: str) -> tuple[date, date]:
    """The first day of ``YYYY-MM`` and the first day of the month after (China dates).

    >>> month_bounds("2026-12")
    (datetime.date(2026, 12, 1), datetime.date(2027, 1, 1))
    """
    year, number = (int(part) for part in month.split("-"))
    first = date(year, number, 1)
    return first, date(year + number // 12, number % 12 + 1, 1)


def reliability_window(month: str) -> tuple[date, date]:
    """The last 12 months up to and including ``month``: first day, and the first day after (China dates)."""
    first, after = month_bounds(month)
    year, number = first.year, first.month - (RELIABILITY_MONTHS - 1)
    while number < 1:
        year, number = year - 1, number + 12
    return date(year, number, 1), after


class DaysSummary(BaseModel):
    """Count, mean, median, p90 (nearest rank) and max of a list of durations in days; null when empty."""

    mean: float | None
    median: float | None
    p90: int | None
    max: int | None


def summarise(days: Sequence[int]) -> DaysSummary:
    """The figures of ``days``: mean to 2 decimals, median (the mean of the two middle values for an even count),
    p90 by nearest rank (the ⌈0.9·n⌉-th smallest), max.

    >>> summarise([1, 2, 3, 10])
    DaysSummary(mean=4.0, median=2.5, p90=10, max=10)
    """
    if not days:
        return DaysSummary(mean=None, median=None, p90=None, max=None)
    ordered = sorted(days)
    return DaysSummary(mean=round(statistics.fmean(ordered), 2), median=float(statistics.median(ordered)),
                       p90=ordered[math.ceil(0.9 * len(ordered)) - 1], max=ordered[-1])


class JobClassTime(BaseModel):
    """Time from acceptance (业务受理) to power-on (装表送电) of one job class's orders energised in the month."""

    job_class: str
    label_zh: str
    count: int
    working_days: DaysSummary
    calendar_days: DaysSummary
    deadline_days: int = Field(description="The profile's promise for the job class (`deadlines.<job_class>`).")
    deadline_day_kind: str = Field(description="`working` or `calendar`: which of the two durations it bounds.")
    deadline_source: str
    on_time: int = Field(description="Orders energised within the deadline.")
    on_time_share: float | None = Field(description="on_time / count, 4 decimals; null without orders.")
    overdue: int = Field(description="Orders energised after the deadline.")


class TimeFigures(BaseModel):
    """Time per job class, and over all orders (with the profile's average target where it has one)."""

    counted_from: str
    by_job_class: list[JobClassTime]
    all_orders: JobClassTime | None = Field(description="Every order of the month (job_class `all`); its deadline "
                                                        "is the profile's average target when it gives one.")
    target_mean_days: float | None
    target_mean_source: str
    mean_met: bool | None


class Interactions(BaseModel):
    """Customer interactions per order: the application and each later document (audit log), and 施工接电."""

    counted_as: str
    mean: float | None
    max: int | None
    target_max: int
    source: str
    above_target: list[dict[str, Any]] = Field(description="Orders with more interactions than the target.")


class Procedures(BaseModel):
    """环节: the procedures every order goes through, and the customer's interactions."""

    per_order: int
    target: int
    source: str
    met: bool
    customer_interactions: Interactions


class CustomerCost(BaseModel):
    """What customers paid outside the red line (`customer_charged_cny`, given with the power-on report)."""

    total_cny: float
    orders_charged: int
    target_cny: float
    source: str
    met: bool
    orders: list[dict[str, Any]] = Field(description="Every order with a non-zero charge.")


class GridCost(BaseModel):
    """The grid company's cost: the confirmed design versions' totals (万元)."""

    total_10k_cny: float
    mean_10k_cny: float | None
    orders_with_cost: int
    orders_without_cost: int


class NoOutage(BaseModel):
    """业扩不停电接火率: the share of orders whose confirmed design connects without an outage."""

    basis: str
    orders_with_data: int
    orders_without_data: int
    without_outage: int
    rate_pct: float | None
    target_pct: float | None
    source: str
    met: bool | None


class Reliability(BaseModel):
    """SAIDI (hours per customer) and SAIFI (interruptions per customer) over the last 12 months."""

    period_from: str
    period_to: str
    saidi_hours: float | None
    saifi: float | None
    targets: dict[str, Any]
    source: str
    warning: str | None


class SelfAssessment(BaseModel):
    """The JSON form of the monthly self-assessment (the XLSX carries the same figures, one line each)."""

    report: str
    month: str
    supply_unit: str | None
    profile_id: str
    generated_at: str
    title_zh: str
    orders: int = Field(description="Orders energised (装表送电) in the month: the population of every figure.")
    procedures: Procedures
    time: TimeFigures
    customer_cost: CustomerCost
    grid_cost: GridCost
    no_outage: NoOutage
    reliability: Reliability
    warnings: list[str]


class Line(BaseModel):
    """One line of the XLSX sheet: a figure next to its target."""

    indicator: str
    item: str
    value: float | int | str | None
    unit: str | None
    target: float | int | str | None
    met: str | None
    source: str | None

    def cells(self) -> list[Any]:
        """The values in the order of :data:`COLUMNS`."""
        return [self.indicator, self.item, self.value, self.unit, self.target, self.met, self.source]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _time(code: str, label: str, durations: list[tuple[int, int]], deadline: float, kind: DayKind,
          source: str) -> JobClassTime:
    working, calendar = [w for w, _c in durations], [c for _w, c in durations]
    bounded = working if kind is DayKind.WORKING else calendar
    on_time = sum(days <= deadline for days in bounded)
    return JobClassTime(job_class=code, label_zh=label, count=len(durations), working_days=summarise(working),
                        calendar_days=summarise(calendar), deadline_days=math.ceil(deadline),
                        deadline_day_kind=kind.value, deadline_source=source, on_time=on_time,
                        on_time_share=_share(on_time, len(durations)), overdue=len(durations) - on_time)


def assess(records: Iterable[AssessmentRecord], profile: Profile, calendar: WorkCalendar, *, month: str,
           supply_unit: str | None, generated_at: str) -> SelfAssessment:
    """The self-assessment of the orders energised in ``month``: every figure next to the profile's target."""
    targets = profile.self_assessment
    kind = profile.schedule.day_kind
    by_class: dict[str, list[tuple[int, int]]] = {}
    interactions: list[tuple[AssessmentRecord, int]] = []
    charged: list[AssessmentRecord] = []
    costs: list[float] = []
    outage_known = without_outage = count = 0
    cache: dict[tuple[date, date], int] = {}  # 100k orders share a few thousand (accepted, energised) date pairs
    for record in records:
        count += 1
        accepted, energised = china_time(record.accepted_at), china_time(record.powered_on_at)
        assert accepted is not None and energised is not None
        pair = (accepted.date(), energised.date())
        if pair not in cache:
            cache[pair] = whole_process_working_days(record.accepted_at, record.powered_on_at, calendar) or 0
        by_class.setdefault(record.job_class or "unknown", []).append((cache[pair], (pair[1] - pair[0]).days))
        interactions.append((record, record.application_interactions + 1))  # + 施工接电, the power-on
        if record.customer_charged_cny:
            charged.append(record)
        if record.confirmed_cost_cny is not None:
            costs.append(record.confirmed_cost_cny)
        if record.needs_outage is not None:
            outage_known += 1
            without_outage += not record.needs_outage

    per_class = [_time(job.value, job.label_zh, by_class.get(job.value, []), profile.total_days(job), kind,
                       profile.deadlines[job].source) for job in JobClass]
    everything = [duration for durations in by_class.values() for duration in durations]
    mean_target = targets.mean_days
    all_orders = _time("all", "全部", everything, mean_target, kind, targets.mean_days_source) \
        if mean_target is not None else None
    overall_mean = summarise([w if kind is DayKind.WORKING else c for w, c in everything]).mean
    time = TimeFigures(
        counted_from="业务受理 (acceptance) to 装表送电 (power-on), China dates; working days on the statutory "
                     "calendar, the start day excluded, the end day included (as annex 2 #21); calendar days the "
                     "difference of the two dates",
        by_job_class=per_class, all_orders=all_orders, target_mean_days=mean_target,
        target_mean_source=targets.mean_days_source,
        mean_met=None if mean_target is None or overall_mean is None else overall_mean <= mean_target)

    counts = [n for _record, n in interactions]
    above = [{"application_id": r.application_id, "account_number": r.account_number, "interactions": n}
             for r, n in interactions if n > targets.max_customer_interactions]
    procedures = Procedures(
        per_order=targets.procedures, target=targets.procedures, source=targets.procedures_source, met=True,
        customer_interactions=Interactions(
            counted_as="audit log: the application (created) and each document handed in later (document_added), "
                       "plus 1 for 施工接电 (the power-on)",
            mean=round(statistics.fmean(counts), 2) if counts else None, max=max(counts, default=None),
            target_max=targets.max_customer_interactions, source=targets.interactions_source, above_target=above))

    total_charged = round(sum(r.customer_charged_cny or 0.0 for r in charged), 2)
    customer_cost = CustomerCost(
        total_cny=total_charged, orders_charged=len(charged), target_cny=targets.customer_cost_cny,
        source=targets.customer_cost_source, met=total_charged <= targets.customer_cost_cny,
        orders=[{"application_id": r.application_id, "account_number": r.account_number,
                 "account_name": r.applicant_name, "customer_charged_cny": r.customer_charged_cny}
                for r in charged])
    grid_cost = GridCost(total_10k_cny=round(sum(costs) / 10_000, 4),
                         mean_10k_cny=round(statistics.fmean(costs) / 10_000, 4) if costs else None,
                         orders_with_cost=len(costs), orders_without_cost=count - len(costs))
    rate = round(100 * without_outage / outage_known, 2) if outage_known else None
    no_outage = NoOutage(
        basis="the confirmed design's needs_outage (design result): a transformer upgrade needs an outage, an LV "
              "connection does not; no record of live working yet",
        orders_with_data=outage_known, orders_without_data=count - outage_known, without_outage=without_outage,
        rate_pct=rate, target_pct=targets.no_outage_rate_pct, source=targets.no_outage_source,
        met=None if rate is None or targets.no_outage_rate_pct is None else rate >= targets.no_outage_rate_pct)
    window = reliability_window(month)
    goal = targets.reliability
    reliability = Reliability(
        period_from=window[0].isoformat(), period_to=date.fromordinal(window[1].toordinal() - 1).isoformat(),
        saidi_hours=None, saifi=None, source=goal.source, warning=NO_RELIABILITY_WARNING,
        targets={"saidi_max_hours": goal.saidi_max_hours, "saifi_max": goal.saifi_max,
                 "saidi_max_hours_by_area_zh": dict(goal.saidi_max_hours_by_area_zh),
                 "saidi_yearly_reduction_pct": goal.saidi_yearly_reduction_pct,
                 "saifi_yearly_reduction_pct": goal.saifi_yearly_reduction_pct})
    warnings = [NO_RELIABILITY_WARNING]
    if count and outage_known < count:
        warnings.append(f"不停电接火率: {count - outage_known} order(s) without a confirmed design's needs_outage "
                        "are left out of the rate.")
    return SelfAssessment(
        report=REPORT, month=month, supply_unit=supply_unit, profile_id=profile.profile_id,
        generated_at=generated_at, title_zh=TITLE_ZH, orders=count, procedures=procedures, time=time,
        customer_cost=customer_cost, grid_cost=grid_cost, no_outage=no_outage, reliability=reliability,
        warnings=warnings)


def _met(value: bool | None) -> str | None:
    return None if value is None else ("是" if value else "否")


def lines(result: SelfAssessment) -> list[Line]:
    """The figures as sheet lines (indicator, item, value, unit, target, met, source)."""
    procedures, interactions = result.procedures, result.procedures.customer_interactions
    out = [
        Line(indicator="办电环节", item="环节数（每户）", value=procedures.per_order, unit="个",
             target=procedures.target, met=_met(procedures.met), source=procedures.source),
        Line(indicator="办电环节", item="客户交互次数（平均）", value=interactions.mean, unit="次",
             target=f"≤{interactions.target_max}", met=None, source=interactions.source),
        Line(indicator="办电环节", item="客户交互次数（最多）", value=interactions.max, unit="次",
             target=f"≤{interactions.target_max}",
             met=_met(None if interactions.max is None else interactions.max <= interactions.target_max),
             source=interactions.source),
        Line(indicator="办电环节", item="交互超过目标的工单数", value=len(interactions.above_target), unit="户",
             target=0, met=_met(not interactions.above_target), source=interactions.source),
    ]
    rows = [*result.time.by_job_class, *([result.time.all_orders] if result.time.all_orders else [])]
    for row in rows:
        unit = "工作日" if row.deadline_day_kind == DayKind.WORKING.value else "日历日"
        name = row.label_zh
        target = f"≤{row.deadline_days}" if row.job_class != "all" else f"平均≤{row.deadline_days}"
        out += [
            Line(indicator="办电时间", item=f"{name}：接电户数", value=row.count, unit="户", target=None, met=None,
                 source=None),
            *(Line(indicator="办电时间", item=f"{name}：{label}（工作日）", value=getattr(row.working_days, key),
                   unit="工作日", target=target if unit == "工作日" and key in {"mean", "max"} else None,
                   met=None, source=row.deadline_source if unit == "工作日" else None)
              for key, label in (("mean", "平均"), ("median", "中位数"), ("p90", "90%分位"), ("max", "最长"))),
            *(Line(indicator="办电时间", item=f"{name}：{label}（日历日）", value=getattr(row.calendar_days, key),
                   unit="日历日", target=target if unit == "日历日" and key in {"mean", "max"} else None,
                   met=None, source=row.deadline_source if unit == "日历日" else None)
              for key, label in (("mean", "平均"), ("median", "中位数"), ("p90", "90%分位"), ("max", "最长"))),
            Line(indicator="办电时间", item=f"{name}：时限内占比", value=row.on_time_share, unit="比例", target=1,
                 met=_met(None if row.on_time_share is None else row.overdue == 0), source=row.deadline_source),
            Line(indicator="办电时间", item=f"{name}：超时户数", value=row.overdue, unit="户", target=0,
                 met=_met(row.overdue == 0 if row.count else None), source=row.deadline_source),
        ]
    cost, grid, outage, rel = result.customer_cost, result.grid_cost, result.no_outage, result.reliability
    out += [
        Line(indicator="办电成本", item="客户红线外费用合计", value=cost.total_cny, unit="元", target=cost.target_cny,
             met=_met(cost.met), source=cost.source),
        *(Line(indicator="办电成本", item=f"收费工单 {order['application_id']}（户号 {order['account_number'] or '—'}，"
                                          f"{order['account_name']}）", value=order["customer_charged_cny"],
               unit="元", target=cost.target_cny, met="否", source=cost.source) for order in cost.orders),
        Line(indicator="办电成本", item="供电企业投资合计（确认版设计）", value=grid.total_10k_cny, unit="万元",
             target=None, met=None, source=None),
        Line(indicator="办电成本", item="供电企业投资（户均）", value=grid.mean_10k_cny, unit="万元", target=None,
             met=None, source=None),
        Line(indicator="不停电接火", item="业扩不停电接火率（按设计是否需停电）", value=outage.rate_pct, unit="%",
             target=outage.target_pct, met=_met(outage.met), source=outage.source),
        Line(indicator="供电可靠性", item=f"SAIDI 户均停电时间（{rel.period_from}～{rel.period_to}）",
             value=rel.saidi_hours, unit="小时/户", target=_reliability_target(rel.targets, "saidi"), met=None,
             source=rel.source),
        Line(indicator="供电可靠性", item=f"SAIFI 户均停电次数（{rel.period_from}～{rel.period_to}）",
             value=rel.saifi, unit="次/户", target=_reliability_target(rel.targets, "saifi"), met=None,
             source=rel.source),
    ]
    return out


def _reliability_target(targets: dict[str, Any], figure: str) -> str | None:
    parts = []
    if targets.get(f"{figure}_max{'_hours' if figure == 'saidi' else ''}") is not None:
        parts.append(f"<{targets[f'{figure}_max' + ('_hours' if figure == 'saidi' else '')]:g}")
    if figure == "saidi" and targets["saidi_max_hours_by_area_zh"]:
        parts.append("、".join(f"{area}≤{hours:g}" for area, hours in targets["saidi_max_hours_by_area_zh"].items()))
    if targets.get(f"{figure}_yearly_reduction_pct") is not None:
        parts.append(f"同比−{targets[f'{figure}_yearly_reduction_pct']:g}%")
    return "；或".join(parts) or None


def notes(result: SelfAssessment) -> tuple[str, ...]:
    """The note rows: population, units, and what is missing (the warnings)."""
    return (f"注：{result.month} 装表送电的工单共 {result.orders} 户（{result.profile_id}）。"
            "办电时间自业务受理之日（不含）计至装表送电之日，工作日按国家法定节假日及调休安排计算；"
            "90%分位取最近秩。客户交互次数＝申请 1 次＋后补资料次数（审计日志）＋施工接电 1 次。"
            "不停电接火率按确认版设计是否需停电计算。", *(f"注：{w}" for w in result.warnings))
