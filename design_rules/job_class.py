"""Job-class decision (工程类别判定, R3): direct meter, overhead, underground cable or transformer upgrade."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from design_rules.profiles import AreaType, JobClass, RoadClass
from design_rules.reasons import Reason
from gis.errors import InvalidInputError

if TYPE_CHECKING:
    from design_rules.profiles import Profile

__all__ = ["AccessPointKind", "JobClass", "JobDecision", "RoadCrossing", "SiteFacts", "classify_job"]

AccessPointKind = Literal["pole", "branch_box", "line_segment", "transformer"]
"""Where the new works leave the existing network (docs/architecture.md vocabulary)."""

_ACCESS_POINT_ZH = {
    "pole": "低压电杆",
    "branch_box": "电缆分支箱",
    "line_segment": "低压架空线路",
    "transformer": "配变低压侧",
}

_RURAL_AREAS = frozenset({AreaType.RURAL, AreaType.D, AreaType.E})

#: The note on an access point derived from the cable geometry (issue 20 item 1a; docs/design.md).
_DERIVED_NOTE = Reason(
    "DERIVED_ACCESS_POINT",
    "接入点为按低压电缆线段汇接点（三端及以上）或末端推定的电缆分支箱（GIS 无分支箱资料），待现场核实；"
    "按既有分支箱/端子箱接火，本清单未计该处新分支箱，若核实为直通接头需另行增加。",
    "issue 20 item 1a; docs/design.md (derived access points)",
)


class RoadCrossing(NamedTuple):
    """A road the new route crosses. A plain ``(name, road_class)`` tuple is accepted too."""

    name: str
    road_class: RoadClass | str


@dataclass(frozen=True, slots=True)
class SiteFacts:
    """What siting and routing found out about one application, as input to ``classify_job``.

    Attributes
    ----------
    feasible_source : bool
        A transformer within the supply radius stays ≤ ``max_load_after_pct`` after connection (R2.3).
    access_point_kind : {'pole', 'branch_box', 'line_segment', 'transformer'} or None
        Kind of the chosen access point; ``None`` only when there is no feasible source.
    new_route_length_m : float or None
        Length of the new works from the access point to the meter box along the route (incl. the
        run along the wall). ``None`` only when there is no feasible source.
    straight_distance_m : float or None
        Straight-line distance access point → meter box: the service-drop span (接户线档距).
    road_crossings : tuple of RoadCrossing
        Roads the new route crosses, as ``(name, road_class)``.
    enters_no_overhead_zone : bool
        The new route enters a no-overhead (cable-only) zone.
    meter_box_in_no_overhead_zone : bool
        The meter box itself lies in a no-overhead zone.
    load_rate_after_pct : float or None
        Projected peak load rate of the chosen transformer after connection.
    area_type : AreaType
        Area type of the site (for the supply radius quoted in reasons).
    access_point_derived : bool
        The access point is a branch box derived from the cable network's junctions and ends (the GIS has
        no branch boxes there; issue 20 item 1a): it counts as a branch box, and a note asks the project
        manager to confirm it on site.
    """

    feasible_source: bool
    access_point_kind: AccessPointKind | None
    new_route_length_m: float | None
    straight_distance_m: float | None
    road_crossings: tuple[RoadCrossing, ...] = ()
    enters_no_overhead_zone: bool = False
    meter_box_in_no_overhead_zone: bool = False
    load_rate_after_pct: float | None = None
    area_type: AreaType = AreaType.URBAN
    access_point_derived: bool = False

    def __post_init__(self) -> None:
        """Normalise vocabulary values and reject impossible facts with ``InvalidInputError``."""
        try:
            crossings = tuple(RoadCrossing(name, RoadClass(cls)) for name, cls in self.road_crossings)
            area_type = AreaType(self.area_type)
        except ValueError as exc:
            raise InvalidInputError(f"Invalid site fact: {exc}.", field="road_crossings/area_type") from exc
        object.__setattr__(self, "road_crossings", crossings)
        object.__setattr__(self, "area_type", area_type)
        if self.access_point_kind is not None and self.access_point_kind not in _ACCESS_POINT_ZH:
            raise InvalidInputError(
                f"Unknown access_point_kind {self.access_point_kind!r}.", field="access_point_kind"
            )
        for name in ("new_route_length_m", "straight_distance_m", "load_rate_after_pct"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidInputError(f"{name} must be a finite number ≥ 0, got {value!r}.", field=name)
        if self.feasible_source and (
            self.access_point_kind is None or self.new_route_length_m is None or self.straight_distance_m is None
        ):
            raise InvalidInputError(
                "A feasible source needs access_point_kind, new_route_length_m and straight_distance_m.",
                field="feasible_source",
            )


@dataclass(frozen=True, slots=True)
class JobDecision:
    """Result of ``classify_job``: the job class and why.

    Attributes
    ----------
    job_class : JobClass
    reasons : list of Reason
        The deciding reason first, then supporting notes (road excavation, load-rate thresholds,
        先接入后改造).
    excavation : bool
        The new route crosses a road that must be dug (掘路): the schedule includes 行政审批.
    needs_outage : bool
        Connection needs an outage of other customers; False (不停电接火, R4.5) except for a
        transformer upgrade.
    """

    job_class: JobClass
    reasons: list[Reason] = field(default_factory=list)
    excavation: bool = False
    needs_outage: bool = False


def _fmt_m(value: float) -> str:
    return f"{value:g} m"


def _load_notes(site: SiteFacts, profile: Profile) -> list[Reason]:
    """Planning notes on the chosen transformer's load rate (R2.3; BS 4.1.4)."""
    thresholds = profile.load_thresholds
    rate = site.load_rate_after_pct
    if rate is None:
        return []
    if rate > thresholds.max_load_after_pct:
        return []  # reported by the deciding reason
    if rate >= thresholds.must_start_pct:
        return [
            Reason(
                "LOAD_MUST_START_PROJECT",
                f"接入后配变预计负载率 {rate:g}% ≥ {thresholds.must_start_pct:g}%：必须开展项目立项和出库。",
                thresholds.source,
            )
        ]
    if rate >= thresholds.may_start_pct:
        return [
            Reason(
                "LOAD_MAY_START_PROJECT",
                f"接入后配变预计负载率 {rate:g}% ≥ {thresholds.may_start_pct:g}%：可开展项目立项。",
                thresholds.source,
            )
        ]
    return []


def classify_job(site: SiteFacts, profile: Profile) -> JobDecision:
    """Decide the job class (R3), first matching rule wins (docs/architecture.md decision order).

    1. No feasible source (load after connection > ``max_load_after_pct`` everywhere in the supply
       radius) → ``transformer_upgrade`` (中压配变改造; R2.3, CQ-45 一.2).
    2. Meter box in, or route entering, a no-overhead zone → ``underground_cable`` (R4.1).
    3. Route crosses a road of a class in ``excavation.road_classes`` → ``underground_cable`` (掘路;
       CQ-32 二(二)).
    4. Span (straight distance) ≤ ``service_drop.max_span_m`` and route ≤ ``service_drop.max_total_m``
       → ``direct_meter`` (直接装表, 无外线工程; DOMAIN §1.2).
    5. Access point is a cable branch box → ``underground_cable``.
    6. Otherwise → ``overhead`` (立杆架线, 有外线无掘路).

    Parameters
    ----------
    site : SiteFacts
    profile : Profile
        Supplies every threshold.

    Returns
    -------
    JobDecision

    Examples
    --------
    >>> from design_rules.profiles import get_profile
    >>> cq = get_profile("chongqing-2019")
    >>> site = SiteFacts(True, "pole", new_route_length_m=25.0, straight_distance_m=25.0)
    >>> d = classify_job(site, cq)
    >>> d.job_class, d.reasons[0].code, d.needs_outage
    (<JobClass.DIRECT_METER: 'direct_meter'>, 'SERVICE_DROP_WITHIN_LIMITS', False)
    >>> crossing = SiteFacts(True, "pole", 120.0, 90.0, road_crossings=(("人民路", "arterial"),))
    >>> d = classify_job(crossing, cq)
    >>> d.job_class, d.excavation
    (<JobClass.UNDERGROUND_CABLE: 'underground_cable'>, True)
    """
    thresholds = profile.load_thresholds
    drop = profile.service_drop
    dug = tuple(c for c in site.road_crossings if c.road_class in profile.excavation.road_classes)
    excavation = bool(dug)
    dug_names = "、".join(f"{c.name}（{RoadClass(c.road_class).label_zh}）" for c in dug)
    dig_reason = Reason(
        "ROAD_EXCAVATION",
        f"新建路径穿越须掘路的道路：{dug_names}；需办理占掘路行政审批。",
        profile.excavation.source,
    )

    # Rule 1: no feasible source.
    over_limit = (
        site.load_rate_after_pct is not None and site.load_rate_after_pct > thresholds.max_load_after_pct
    )
    if not site.feasible_source or over_limit:
        radius = profile.supply_radius_m.radius_m[site.area_type]
        radius_zh = f"{radius:g} m" if radius is not None else "按电压降逐例计算"
        if over_limit:
            message = (
                f"所选配变接入后预计负载率 {site.load_rate_after_pct:g}% 超过 "
                f"{thresholds.max_load_after_pct:g}%，不具备接入条件，需中压配变改造或新增配变。"
            )
        else:
            message = (
                f"供电半径（{site.area_type.label_zh} {radius_zh}）内无接入后负载率不超过 "
                f"{thresholds.max_load_after_pct:g}% 的配变，需中压配变改造或新增配变。"
            )
        reasons = [Reason("NO_FEASIBLE_SOURCE", message, f"R2.3; CQ-45 一.2; {thresholds.source}")]
        if profile.connect_first.allowed:
            reasons.append(
                Reason(
                    "CONNECT_FIRST_REINFORCE_LATER",
                    "本口径允许“先接入、后改造”：先以过渡方案满足客户用电，同步启动配电网改造。",
                    profile.connect_first.source,
                )
            )
        if excavation:
            reasons.append(dig_reason)
        return JobDecision(JobClass.TRANSFORMER_UPGRADE, reasons, excavation=excavation, needs_outage=True)

    # Mypy-friendly: __post_init__ guarantees these for a feasible source.
    assert site.new_route_length_m is not None and site.straight_distance_m is not None
    notes = _load_notes(site, profile)
    if site.access_point_derived:
        notes.append(_DERIVED_NOTE)

    # Rule 2: no-overhead zone.
    if site.meter_box_in_no_overhead_zone or site.enters_no_overhead_zone:
        where = "计量箱位于" if site.meter_box_in_no_overhead_zone else "新建路径进入"
        reasons = [
            Reason(
                "NO_OVERHEAD_ZONE",
                f"{where}禁止架空（只允许电缆）区域，须采用电缆接入。",
                "R4.1; docs/architecture.md job-class rule 2",
            )
        ]
        if excavation:
            reasons.append(dig_reason)
        return JobDecision(JobClass.UNDERGROUND_CABLE, reasons + notes, excavation=excavation)

    # Rule 3: road excavation.
    if excavation:
        return JobDecision(JobClass.UNDERGROUND_CABLE, [dig_reason, *notes], excavation=True)

    # Rule 4: within one service drop.
    span_m, route_m = site.straight_distance_m, site.new_route_length_m
    if span_m <= drop.max_span_m and route_m <= drop.max_total_m:
        kind_zh = _ACCESS_POINT_ZH[site.access_point_kind or "pole"]
        reason = Reason(
            "SERVICE_DROP_WITHIN_LIMITS",
            f"计量箱距{kind_zh} {_fmt_m(span_m)} ≤ {_fmt_m(drop.max_span_m)}，接户线总长 {_fmt_m(route_m)} ≤ "
            f"{_fmt_m(drop.max_total_m)}，不掘路：具备直接装表条件，无外线工程。",
            drop.source,
        )
        return JobDecision(JobClass.DIRECT_METER, [reason, *notes])
    too_far = Reason(
        "BEYOND_SERVICE_DROP",
        f"档距 {_fmt_m(span_m)}（限 {_fmt_m(drop.max_span_m)}）或路径 {_fmt_m(route_m)}（限 "
        f"{_fmt_m(drop.max_total_m)}）超出接户线范围，需外线工程。",
        drop.source,
    )

    # Rule 5: from a cable branch box.
    if site.access_point_kind == "branch_box":
        reason = Reason(
            "FROM_BRANCH_BOX",
            "接入点为电缆分支箱，外线采用电缆敷设。",
            "docs/architecture.md job-class rule 5",
        )
        return JobDecision(JobClass.UNDERGROUND_CABLE, [reason, too_far, *notes])

    # Rule 6: overhead.
    rural = site.area_type in _RURAL_AREAS
    span_zh = profile.overhead.span_rural_m if rural else profile.overhead.span_urban_m
    reason = Reason(
        "NEW_OVERHEAD_LINE",
        f"新立电杆、架设 JKLYJ 绝缘导线（档距约 {_fmt_m(span_zh)}），有外线无掘路。",
        f"CQ-32 二(二); {profile.overhead.source}",
    )
    return JobDecision(JobClass.OVERHEAD, [reason, too_far, *notes])
