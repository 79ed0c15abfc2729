"""The whole connection design (接入方案) of one application, composed from the rules (R1.3, R3, R4, R5.2).

:func:`compose_design` is pure: it takes the application's facts, the siting result of
:func:`gis.siting.site` and the policy profile, and returns eligibility, the chosen source, the job
class with its reasons, the sized conductor and meter, the priced bill of materials, the schedule and
the drawing input. The caller (``app``) does the I/O: it reads the network, stores the design and
renders the drawing formats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal

import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python
from shapely.geometry.base import BaseGeometry

from design_rules.bom import Bom, UpgradeKind, build_bom
from design_rules.calendar import WorkCalendar
from design_rules.catalogue import TypicalDesigns, load_typical_designs
from design_rules.drawing import DrawingInput, MeterBox, NewEquipment, NewPole, NewRoute, PointM, TitleBlock
from design_rules.eligibility import EligibilityInput, EligibilityResult, check_eligibility
from design_rules.job_class import JobDecision, SiteFacts, classify_job
from design_rules.new_transformer import UNIT_KIND_ZH, MvRun, UnitChoice, mv_run, size_unit, unit_reason
from design_rules.profiles import AreaType, Category, JobClass, NewTransformerRules, Profile, StepCode, UrbanRural
from design_rules.reasons import Reason
from design_rules.schedule import Schedule, build_schedule
from design_rules.sizing import SizingResult, size_conductor, size_service_drop
from gis.errors import InvalidInputError, SanlingError
from gis.siting import NO_FEASIBLE_SOURCE, AccessPointRef, NewTransformerSite, SitingResult, SourceCandidate

__all__ = [
    "NEW_TRANSFORMER_ID",
    "ApplicationFacts",
    "CandidateUnknownError",
    "ConnectionDesign",
    "DesignNotFeasibleError",
    "NewTransformerDesign",
    "NotEligibleError",
    "UpgradeOption",
    "angle_pole_count",
    "compose_design",
    "pole_positions_m",
]

#: Area types that take the rural pole type and span (DOMAIN §1.1: D and E are rural supply areas).
_RURAL = frozenset({AreaType.RURAL, AreaType.D, AreaType.E})
#: A route bend sharper than this needs an angle (strain) pole (DOMAIN §4.1).
ANGLE_POLE_MIN_DEG = 15.0
#: The source ``transformer_asset_id`` of a new transformer by the load: it has no asset id until it is built.
NEW_TRANSFORMER_ID = "NEW-TRANSFORMER"


class NotEligibleError(SanlingError):
    """The application fails a 三零 eligibility rule; ``details['reasons']`` lists every failed rule (R1.3)."""

    code = "NOT_ELIGIBLE"
    default_message = "The application is not eligible for a 三零 connection."


class CandidateUnknownError(InvalidInputError):
    """A surveyor chose a transformer that is not among the feasible candidates (R5)."""

    code = "CANDIDATE_UNKNOWN"
    default_message = "The chosen transformer is not a feasible candidate for this meter box."


class DesignNotFeasibleError(SanlingError):
    """No catalogue conductor meets ampacity and the voltage-drop budget over the route (R4.2), or no rung
    of the transformer upgrade is buildable: no transformer within LV reach to uprate (or its LV run fails)
    and no new transformer by the load (its 10 kV line beyond the radius, or its LV run fails; issue 20 1e)."""

    code = "DESIGN_NOT_FEASIBLE"
    default_message = "No standard conductor can carry this load over this route within the voltage-drop budget."


class ApplicationFacts(BaseModel):
    """What the customer asked for (用电申请), as far as the design depends on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kw: float = Field(ge=0.01, le=10_000, description="Requested capacity (报装容量), kW; at least 10 W (smaller "
                      "rounds the design current to 0 A, for which no breaker exists).")
    phases: Literal[1, 3] = Field(default=3, description="1: 220 V single-phase; 3: 380 V three-phase.")
    category: Category = Category.SMALL_ENTERPRISE
    voltage_kv: float = Field(default=0.38, gt=0, description="Requested supply voltage, kV.")
    customer_name: str = Field(default="客户", min_length=1, max_length=200)
    wanted_power_on: date | None = Field(default=None, description="客户预计送电时间, if the customer names one.")
    urban_rural: UrbanRural | None = Field(
        default=None, description="城乡类别 for the capacity limit; needed with the supply-area classes D and E, "
        "which can be either; derived from the other area types.")


@dataclass(frozen=True)
class NewTransformerDesign:
    """The new distribution transformer by the load of a ``new_transformer`` design (issue 20 item 1e)."""

    unit: UnitChoice
    mv: MvRun
    feeder_asset_id: str
    x_m: float
    y_m: float
    feeder_x_m: float
    feeder_y_m: float
    on_road: bool

    def to_dict(self, projector: Any) -> dict[str, Any]:
        """Plain JSON; the unit and the feeding transformer as GeoJSON points in WGS-84."""
        return {
            "unit_kind": self.unit.kind,
            "rated_kva": self.unit.rated_kva,
            "needed_kva": self.unit.needed_kva,
            "load_rate_after_pct": self.unit.load_rate_after_pct,
            "geometry": projector.geojson_point_wgs84(self.x_m, self.y_m),
            "placed_at": "nearest_road_point" if self.on_road else "meter_box",
            "feeder_asset_id": self.feeder_asset_id,
            "feeder_geometry": projector.geojson_point_wgs84(self.feeder_x_m, self.feeder_y_m),
            "mv_line_straight_m": self.mv.straight_m,
            "mv_line_m": self.mv.length_m,
            "mv_line_radius_m": self.mv.limit_m,
            "mv_line_estimate": "nearest_existing_transformer",
        }


@dataclass(frozen=True)
class UpgradeOption:
    """One rung of the transformer-upgrade ladder as evaluated (issue 20 item 1e).

    ``summary`` holds ``status`` (``chosen``, ``buildable``, ``not_buildable``), ``job_class``, ``upgrade_kind``,
    ``total_cost_cny`` and ``promised_power_on`` (``None`` when not buildable), ``transformer_asset_id`` and
    ``reason`` (why it lost) or ``reasons`` (why it failed); ``candidate`` is the source it was designed through
    (the transformer to uprate, or the new unit), ``None`` when the rung has no site at all.
    """

    summary: dict[str, Any]
    candidate: SourceCandidate | None = None

    @property
    def status(self) -> str:
        """``chosen``, ``buildable`` or ``not_buildable``."""
        return str(self.summary["status"])

    def to_dict(self, projector: Any) -> dict[str, Any]:
        """The candidate's fields (the shape of the other ``alternatives``), then the rung's own."""
        return {**(self.candidate.to_dict(projector) if self.candidate is not None else {}), **self.summary}


@dataclass(frozen=True)
class ConnectionDesign:
    """One computed design; ``to_dict`` is what the API returns and the database keeps."""

    job_ref: str
    profile_id: str
    area_type: AreaType
    eligibility: EligibilityResult
    source: SourceCandidate
    feasible_source: bool
    site_facts: SiteFacts
    decision: JobDecision
    lv_job_class: JobClass
    sizing: SizingResult
    bom: Bom
    schedule: Schedule
    drawing: DrawingInput
    warnings: tuple[Reason, ...]
    upgrade_kind: UpgradeKind | None = None
    new_transformer: NewTransformerDesign | None = None
    #: The transformer-upgrade rungs evaluated (chosen, buildable, not buildable), for ``alternatives``.
    options: tuple[UpgradeOption, ...] = ()

    @property
    def job_class(self) -> JobClass:
        """The job class (工程类别)."""
        return self.decision.job_class

    def to_dict(self, projector: Any) -> dict[str, Any]:
        """Return plain JSON; geometries as GeoJSON in WGS-84 through ``projector``."""
        return to_jsonable_python({
            "job_class": self.job_class,
            "lv_job_class": self.lv_job_class,
            "upgrade_kind": self.upgrade_kind,
            "new_transformer": None if self.new_transformer is None else self.new_transformer.to_dict(projector),
            "job_class_reasons": [r.to_dict() for r in self.decision.reasons],
            "excavation": self.decision.excavation,
            "needs_outage": self.decision.needs_outage,
            "profile_id": self.profile_id,
            "area_type": self.area_type.value,
            "eligibility": {
                "eligible": self.eligibility.eligible,
                "reasons": [r.to_dict() for r in self.eligibility.reasons],
                "notes": [r.to_dict() for r in self.eligibility.notes],
                "max_kw": self.eligibility.max_kw,
            },
            "feasible_source": self.feasible_source,
            "source": self.source.to_dict(projector),
            "sizing": self.sizing.to_dict(),
            "bom": self.bom.to_dict(),
            "total_cost_cny": float(self.bom.total_cny),
            "schedule": _schedule_dict(self.schedule),
            "drawing_input": self.drawing.model_dump(mode="json"),
            "warnings": [r.to_dict() for r in self.warnings],
        })


def _schedule_dict(schedule: Schedule) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable_python(schedule)
    data["reasons"] = [r.to_dict() for r in schedule.reasons]
    data["warnings"] = [r.to_dict() for r in schedule.warnings]
    return data


def angle_pole_count(line: BaseGeometry, min_deflection_deg: float = ANGLE_POLE_MIN_DEG) -> int:
    """Interior vertices of a route where it turns by more than ``min_deflection_deg`` (转角杆)."""
    coords = list(line.coords)
    count = 0
    for (x0, y0), (x1, y1), (x2, y2) in zip(coords, coords[1:], coords[2:], strict=False):
        a = math.atan2(y1 - y0, x1 - x0)
        b = math.atan2(y2 - y1, x2 - x1)
        turn = abs((math.degrees(b - a) + 180.0) % 360.0 - 180.0)
        if turn > min_deflection_deg:
            count += 1
    return count


def pole_positions_m(line: BaseGeometry, span_m: float) -> list[tuple[float, float]]:
    """New pole positions along an overhead route: every ``span_m`` and at every bend, not at the ends.

    The route starts at an existing access point and ends at the customer's wall, so neither end gets
    a new pole; the last pole stands within one span of the meter box.
    """
    if span_m <= 0:
        raise InvalidInputError("span_m must be > 0.", field="span_m")
    length = line.length
    at = {round(d, 3) for d in _multiples(span_m, length)}
    coords = list(line.coords)
    for x, y in coords[1:-1]:
        at.add(round(line.project(shapely.Point(x, y)), 3))
    points = [line.interpolate(d) for d in sorted(at) if 0.5 < d < length - 0.5]
    return [(p.x, p.y) for p in points]


def _multiples(step: float, below: float) -> list[float]:
    return [step * i for i in range(1, int(below // step) + 1) if step * i < below]


def _area_for_bom(area_type: AreaType) -> Literal["urban", "rural"]:
    return "rural" if area_type in _RURAL else "urban"


def _site_facts(candidate: SourceCandidate, feasible: bool, area_type: AreaType,
                extra_no_overhead_local: Sequence[BaseGeometry], *, lv_works_only: bool = False) -> SiteFacts:
    """Facts for ``classify_job``; ``lv_works_only`` leaves the load out (the LV part of an upgrade job)."""
    route = candidate.route
    extra = any(zone.intersects(route.line_local) for zone in extra_no_overhead_local)
    end = shapely.Point(route.line_local.coords[-1])
    return SiteFacts(
        feasible_source=feasible,
        access_point_kind=candidate.access_point.kind if feasible else None,  # type: ignore[arg-type]
        new_route_length_m=route.length_m if feasible else None,
        straight_distance_m=candidate.straight_to_access_point_m if feasible else None,
        road_crossings=tuple((c.name or c.road_id, c.road_class) for c in route.crossings),
        enters_no_overhead_zone=route.enters_no_overhead_zone or extra,
        meter_box_in_no_overhead_zone=any(zone.intersects(end) for zone in extra_no_overhead_local),
        load_rate_after_pct=None if lv_works_only else candidate.load_rate_after_pct,
        area_type=area_type,
        access_point_derived=feasible and candidate.access_point.derived,
    )


def _size(lv_job_class: JobClass, facts: ApplicationFacts, candidate: SourceCandidate, power_factor: float,
          profile: Profile) -> SizingResult:
    budget = profile.voltage_drop_budget_pct
    length_m = max(candidate.route.length_m, 1.0)
    if lv_job_class == JobClass.DIRECT_METER:
        installation = "cable" if candidate.access_point.kind == "branch_box" else "overhead"
        return size_service_drop(facts.kw, power_factor, facts.phases, length_m, installation, budget)
    installation = "cable" if lv_job_class == JobClass.UNDERGROUND_CABLE else "overhead"
    return size_conductor(facts.kw, power_factor, facts.phases, length_m, installation, budget)


#: The ``drawn_as`` kinds that are the new route itself (typical_designs.toml).
_ROUTE_KINDS = ("service_drop", "service_cable", "overhead", "cable")


def _branch_box_place(candidate: SourceCandidate) -> tuple[PointM, str]:
    """A new branch box stands where the cable leaves the road for the customer (DOMAIN §4.3): the
    route's last bend before the meter box, or the middle of a straight route."""
    coords = list(candidate.route.line_local.coords)
    if len(coords) >= 3:
        x, y = coords[-2][:2]
    else:
        middle = candidate.route.line_local.interpolate(0.5, normalized=True)
        x, y = middle.x, middle.y
    return (float(x), float(y)), ""


#: Where each new-equipment kind stands, and the asset its label names (issue 17 item 5).
_EQUIPMENT_PLACES = {
    "branch_box": _branch_box_place,
    "pole_riser": lambda c: ((c.access_point.x_m, c.access_point.y_m), c.access_point.asset_id),
    "transformer_uprate": lambda c: ((c.transformer_x_m, c.transformer_y_m), c.transformer_asset_id),
    "new_transformer": lambda c: ((c.transformer_x_m, c.transformer_y_m), ""),
}


def drawn_kinds(bom: Bom, designs: TypicalDesigns | None = None) -> dict[str, str]:
    """The drawn kind of every assembly the BOM charges for, with the first such assembly's name.

    The typical designs' ``drawn_as`` column maps each assembly to a symbol (R4.4; issue 17 item 5);
    ``none`` (no place on the sketch) is left out.
    """
    designs = designs or load_typical_designs()
    kinds: dict[str, str] = {}
    for assembly_id in bom.by_assembly:
        assembly = designs.assemblies[assembly_id]
        if assembly.drawn_as != "none":
            kinds.setdefault(assembly.drawn_as, assembly.name_zh)
    return kinds


def _new_works(bom: Bom, candidate: SourceCandidate, excavation: bool, span_m: float,
               new_transformer: NewTransformerDesign | None = None,
               ) -> tuple[tuple[NewRoute, ...], tuple[NewPole, ...], tuple[NewEquipment, ...]]:
    """The new items of the drawing: exactly what the BOM charges for, each at its place (R4.4).

    The route is drawn as the kind its assembly is drawn as; new poles along an overhead route every
    span and at bends; new equipment where :data:`_EQUIPMENT_PLACES` puts it.
    """
    kinds = drawn_kinds(bom)
    route = candidate.route
    points = tuple((float(x), float(y)) for x, y in route.line_local.coords)
    routed = len(points) >= 2 and route.length_m > 0
    routes = tuple(NewRoute(kind=kind, points_m=points, length_m=route.length_m, road_dug=excavation)  # type: ignore[arg-type]
                   for kind in _ROUTE_KINDS if kind in kinds and routed)
    if "mv_line" in kinds and new_transformer is not None and new_transformer.mv.length_m > 0:
        feeder = (new_transformer.feeder_x_m, new_transformer.feeder_y_m)
        routes += (NewRoute(kind="mv_line", points_m=(feeder, (new_transformer.x_m, new_transformer.y_m)),
                            length_m=new_transformer.mv.length_m, road_dug=False,
                            label=f"自 {new_transformer.feeder_asset_id} T接（估算）"),)
    poles: tuple[NewPole, ...] = ()
    if "pole" in kinds and routed:
        poles = tuple(NewPole(x_m=x, y_m=y, label=f"N{i}")
                      for i, (x, y) in enumerate(pole_positions_m(route.line_local, span_m), start=1))
    equipment = []
    for kind, place in _EQUIPMENT_PLACES.items():
        if kind in kinds:
            (x, y), asset = place(candidate)
            equipment.append(NewEquipment(kind=kind, x_m=x, y_m=y,  # type: ignore[arg-type]
                                          label=f"{kinds[kind]} {asset}".strip()))
    return routes, poles, tuple(equipment)


def compose_design(
    *,
    job_ref: str,
    facts: ApplicationFacts,
    siting: SitingResult,
    area_type: AreaType,
    profile: Profile,
    power_factor: float,
    accepted_at: datetime,
    calendar: WorkCalendar,
    chosen_transformer_asset_id: str | None = None,
    extra_no_overhead_local: Sequence[BaseGeometry] = (),
    surroundings: dict[str, Any] | None = None,
    new_transformer_site: NewTransformerSite | None = None,
) -> ConnectionDesign:
    """Compose the design of one application (R1.3 → R2 → R3 → R4.2–R4.4 → R5.2).

    With a feasible source (or a surveyor's chosen candidate) the design taps the existing LV network.
    Without one, the transformer-upgrade rungs are evaluated (issue 20 item 1e): ``uprate`` the nearest
    transformer within LV reach (its LV run sized as usual) and a ``new_transformer`` by the load at
    ``new_transformer_site`` (the unit from the profile's standard series, its 10 kV run bounded by the
    10 kV line radius). The cheaper buildable one is the design, the other its alternative; when neither
    is buildable the answer is :class:`DesignNotFeasibleError` listing every rung tried and why it failed.
    A surveyor's ``chosen_transformer_asset_id`` names one rung (the transformer to uprate, or
    ``NEW-TRANSFORMER``), and only that one is designed.

    Parameters
    ----------
    job_ref
        The design's id, printed in the drawing's title block.
    facts
        The application.
    siting
        :func:`gis.siting.site` for the meter box with the profile's thresholds.
    area_type
        Area type of the site (supply radius, pole type and span).
    profile
        The policy profile.
    power_factor
        Power factor in force (profile's or the deployment's override).
    accepted_at
        Timezone-aware acceptance time (the server clock), day 0 of the schedule.
    calendar
        Working-day calendar.
    chosen_transformer_asset_id
        Use this feasible candidate instead of the best (a surveyor's choice, R5); with no feasible source, the
        upgrade candidate's id designs only the uprate and ``NEW-TRANSFORMER`` only the new transformer.
    extra_no_overhead_local
        No-overhead stretches or obstacles marked during survey, local metres: a route that touches one
        must be cable.
    surroundings
        Existing equipment for the drawing: ``transformers``, ``access_points``, ``existing_lines`` as
        lists of :mod:`design_rules.drawing` models.
    new_transformer_site
        :func:`gis.siting.new_transformer_site` of the meter box; ``None``: the new-transformer rung is not tried.

    Raises
    ------
    NotEligibleError
        An eligibility rule fails (every failed rule in ``details['reasons']``).
    InvalidInputError
        ``chosen_transformer_asset_id`` is not among the feasible candidates (``CANDIDATE_UNKNOWN``).
    DesignNotFeasibleError
        No conductor of the catalogue fits a feasible source's route, or no rung of the transformer upgrade
        is buildable (``details['reasons']`` lists each rung's failure, ``details['options_tried']`` the rungs).
    """
    try:
        eligibility_input = EligibilityInput(kw=facts.kw, category=facts.category, voltage_kv=facts.voltage_kv,
                                             area_type=area_type, urban_rural=facts.urban_rural)
    except ValidationError as exc:  # the area type needs urban_rural (D, E) and the request has none
        raise InvalidInputError(f"Area type {area_type.value} can be urban or rural: send urban_rural.",
                                field="urban_rural", area_type=area_type.value,
                                errors=[e["msg"] for e in exc.errors()]) from None
    eligibility = check_eligibility(eligibility_input, profile, accepted_at.date())
    if not eligibility.eligible:
        raise NotEligibleError(reasons=[r.to_dict() for r in eligibility.reasons])
    job = _Job(job_ref, facts, siting, area_type, profile, power_factor, accepted_at, calendar,
               tuple(extra_no_overhead_local), surroundings or {}, eligibility)
    chosen = chosen_transformer_asset_id
    if siting.feasible:
        return _compose_option(job, _choose(siting, chosen), feasible=True)
    rungs: dict[str, str] = {NEW_TRANSFORMER_ID: "new_transformer"}
    if siting.upgrade_candidate is not None:
        rungs[siting.upgrade_candidate.transformer_asset_id] = "uprate"
    if chosen is not None and chosen not in rungs:
        raise CandidateUnknownError(
            f"Transformer {chosen!r} is not a feasible candidate for this meter box.",
            field="transformer_asset_id", candidates=sorted(rungs))
    return _upgrade_ladder(job, new_transformer_site, only=None if chosen is None else rungs[chosen])


@dataclass(frozen=True)
class _Job:
    """The inputs of :func:`compose_design` that every option shares."""

    job_ref: str
    facts: ApplicationFacts
    siting: SitingResult
    area_type: AreaType
    profile: Profile
    power_factor: float
    accepted_at: datetime
    calendar: WorkCalendar
    extra_no_overhead_local: tuple[BaseGeometry, ...]
    surroundings: dict[str, Any]
    eligibility: EligibilityResult


def _option(design: ConnectionDesign, status: str, why: str) -> UpgradeOption:
    """A buildable rung: job class, cost, promised power-on, kind and why it won or lost."""
    return UpgradeOption({
        "status": status, "job_class": str(design.job_class), "upgrade_kind": design.upgrade_kind,
        "total_cost_cny": float(design.bom.total_cny),
        "promised_power_on": design.schedule.promised_power_on.isoformat(),
        "transformer_asset_id": design.source.transformer_asset_id, "reason": why}, design.source)


def _failed(upgrade_kind: str, reasons: list[dict[str, Any]], candidate: SourceCandidate | None) -> UpgradeOption:
    return UpgradeOption({
        "status": "not_buildable", "job_class": str(JobClass.TRANSFORMER_UPGRADE), "upgrade_kind": upgrade_kind,
        "total_cost_cny": None, "promised_power_on": None,
        "transformer_asset_id": None if candidate is None else candidate.transformer_asset_id, "reasons": reasons},
        candidate)


def _failure_reasons(exc: DesignNotFeasibleError) -> list[dict[str, Any]]:
    return exc.details.get("reasons") or [{"code": "LV_RUN_NOT_FEASIBLE", "message": exc.message, "source": "R4.2"}]


def _upgrade_ladder(job: _Job, new_site: NewTransformerSite | None, only: str | None = None) -> ConnectionDesign:
    """The transformer-upgrade rungs, cheapest buildable first (issue 20 item 1e; R2.3, R4.2; CQ-45 一.2).

    ``only`` (``uprate`` or ``new_transformer``): a surveyor chose that rung's source; the other is not tried.
    """
    siting = job.siting
    built: list[ConnectionDesign] = []
    failed: list[UpgradeOption] = []
    upgrade = siting.upgrade_candidate
    if only == "new_transformer":
        pass
    elif upgrade is None:
        failed.append(_failed("uprate", [{
            "code": siting.reason_code or NO_FEASIBLE_SOURCE,
            "message": siting.reason or "No transformer can supply the meter box over LV.", "source": "R2.3"}], None))
    else:
        try:
            built.append(_compose_option(job, upgrade, feasible=False, upgrade_kind="uprate"))
        except DesignNotFeasibleError as exc:
            failed.append(_failed("uprate", _failure_reasons(exc), upgrade))
    rules = job.profile.new_transformer
    if only == "uprate":
        pass
    elif rules is None or new_site is None:
        why = ("The profile has no new_transformer rules." if rules is None
               else "No existing transformer is loaded to estimate the 10 kV supply from.")
        failed.append(_failed("new_transformer", [{"code": "NEW_TRANSFORMER_NOT_OFFERED", "message": why,
                                                   "source": "issue 20 item 1e"}], None))
    else:
        unit = size_unit(siting.params.added_kva, job.area_type, rules)
        candidate = _new_transformer_candidate(job, new_site, unit)
        try:
            built.append(_compose_new_transformer(job, new_site, rules, unit, candidate))
        except DesignNotFeasibleError as exc:
            failed.append(_failed("new_transformer", _failure_reasons(exc), candidate))
    if not built:
        summaries = [option.summary for option in failed]
        reasons = [reason for summary in summaries for reason in summary["reasons"]]
        messages = "; ".join(f"{summary['upgrade_kind']}: {summary['reasons'][0]['message'].rstrip('.')}"
                             for summary in summaries)
        details: dict[str, Any] = {"reasons": reasons, "options_tried": summaries,
                                   "radius_m": siting.params.to_dict()["upgrade_reach_m"]}
        if rules is not None:
            details["mv_line_radius_m"] = rules.mv_reach_m(job.area_type)
        raise DesignNotFeasibleError(
            f"No rung of the transformer upgrade is buildable (a transformer uprate, a new transformer (新增配变) "
            f"by the load): {messages}", **details)
    built.sort(key=lambda d: (d.bom.total_cny, d.upgrade_kind != "uprate"))
    best, others = built[0], built[1:]
    options = (
        _option(best, "chosen", "cheapest buildable option"),
        *(_option(o, "buildable", f"costs {float(o.bom.total_cny - best.bom.total_cny):,.2f} CNY more than the "
                  f"{best.upgrade_kind} design") for o in others),
        *failed,
    )
    return replace(best, options=options)


def _new_transformer_candidate(job: _Job, site: NewTransformerSite, unit: UnitChoice | None) -> SourceCandidate:
    """The new unit as a source candidate: no asset id yet, empty before the connection."""
    to_pin = math.dist((site.x_m, site.y_m), (job.siting.pin.x_m, job.siting.pin.y_m))
    return SourceCandidate(
        transformer_asset_id=NEW_TRANSFORMER_ID, transformer_pos=-1, transformer_x_m=site.x_m,
        transformer_y_m=site.y_m, access_point=AccessPointRef(NEW_TRANSFORMER_ID, "transformer", site.x_m, site.y_m),
        straight_to_access_point_m=to_pin, straight_to_transformer_m=to_pin, route=site.route,
        load_rate_before_pct=0.0, load_rate_after_pct=unit.load_rate_after_pct if unit is not None else 0.0,
        may_start_project=False, must_start_project=False, start_in_advance=False, grid_area_code=None,
        area_precontrol=False)


def _compose_new_transformer(job: _Job, site: NewTransformerSite, rules: NewTransformerRules,
                             unit: UnitChoice | None, candidate: SourceCandidate) -> ConnectionDesign:
    """The new-transformer rung: the sized unit, its 10 kV run within the radius, then its short LV run."""
    if unit is None:
        kind, series = rules.series(job.area_type)
        raise DesignNotFeasibleError(reasons=[{
            "code": "NEW_TRANSFORMER_TOO_SMALL", "source": rules.source,
            "message": f"No {kind} rating of the standard series {list(series)} kVA carries "
                       f"{job.siting.params.added_kva:.1f} kVA plus the {rules.margin_pct:g} % margin."}])
    run = mv_run(site.feeder_straight_m, job.area_type, rules)
    if not run.within_limit:
        raise DesignNotFeasibleError(reasons=[{
            "code": "MV_LINE_BEYOND_RADIUS", "source": rules.mv_source,
            "message": f"A new transformer (新增配变) by the load would need a 10 kV line of about "
                       f"{run.length_m:,.0f} m from the nearest existing transformer {site.feeder_asset_id} "
                       f"({run.straight_m:,.0f} m straight × {rules.mv_detour_factor:g}), beyond the {run.limit_m:g} m "
                       f"10 kV line radius of area type {job.area_type.value}."}],
            mv_line_m=run.length_m, mv_line_radius_m=run.limit_m)
    new = NewTransformerDesign(unit=unit, mv=run, feeder_asset_id=site.feeder_asset_id, x_m=site.x_m, y_m=site.y_m,
                               feeder_x_m=site.feeder_x_m, feeder_y_m=site.feeder_y_m, on_road=site.on_road)
    return _compose_option(job, candidate, feasible=False, upgrade_kind="new_transformer", new_transformer=new,
                           extra_reason=unit_reason(unit, run, site.feeder_asset_id, rules))


def _compose_option(job: _Job, candidate: SourceCandidate, *, feasible: bool, upgrade_kind: UpgradeKind | None = None,
                    new_transformer: NewTransformerDesign | None = None,
                    extra_reason: Reason | None = None) -> ConnectionDesign:
    """The design through ``candidate``: job class, sizing, BOM, schedule, drawing (R3, R4.2–R4.4, R5.2)."""
    profile, area_type, facts, siting = job.profile, job.area_type, job.facts, job.siting
    extra_zones = job.extra_no_overhead_local
    site_facts = _site_facts(candidate, feasible, area_type, extra_zones)
    decision = classify_job(site_facts, profile)
    if extra_reason is not None:
        decision = replace(decision, reasons=[*decision.reasons, extra_reason])
    lv_decision = decision if feasible else classify_job(
        _site_facts(candidate, True, area_type, extra_zones, lv_works_only=True), profile)
    lv_job_class = lv_decision.job_class
    excavation = decision.excavation or lv_decision.excavation
    sizing = _size(lv_job_class, facts, candidate, job.power_factor, profile)
    if not sizing.feasible:
        raise DesignNotFeasibleError(reasons=[r.to_dict() for r in sizing.reasons],
                                     route_length_m=candidate.route.length_m, kw=facts.kw)
    area = _area_for_bom(area_type)
    span_m = profile.overhead.span_rural_m if area == "rural" else profile.overhead.span_urban_m
    access_kind = {"branch_box": "branch_box", "transformer": "transformer"}.get(candidate.access_point.kind, "pole")
    route = candidate.route
    unit = new_transformer.unit if new_transformer is not None else None
    bom = build_bom(
        decision.job_class, sizing, route.length_m,
        [(c.name or c.road_id, c.road_class) for c in route.crossings], excavation, area, span_m,
        angle_poles=angle_pole_count(route.line_local) if lv_job_class == JobClass.OVERHEAD else 0,
        access_kind=access_kind,  # type: ignore[arg-type]
        upgrade_kind=upgrade_kind or "uprate",
        unit_kind=unit.kind if unit is not None else "pole_mounted",  # type: ignore[arg-type]
        rated_kva=unit.rated_kva if unit is not None else None,
        mv_line_m=new_transformer.mv.length_m if new_transformer is not None else 0.0,
    )
    schedule = build_schedule(decision.job_class, job.accepted_at, profile, job.calendar,
                              excavation if _has_approval_step(profile, decision.job_class) else False,
                              facts.wanted_power_on)
    new_routes, new_poles, new_equipment = _new_works(bom, candidate, excavation, span_m, new_transformer)
    pin = siting.pin
    around = job.surroundings
    summary = _works_summary(lv_job_class, route.length_m, len(new_poles), sizing, excavation)
    if new_transformer is not None:
        unit = new_transformer.unit
        summary.insert(0, f"新增配变 {unit.rated_kva:g} kVA（{UNIT_KIND_ZH[unit.kind]}），"  # one row: funding stays
                          f"新建10kV线路 {new_transformer.mv.length_m:.0f} m（估算）")
    drawing = DrawingInput(
        title=TitleBlock(job_id=job.job_ref, customer=_named_customer(facts), job_class=decision.job_class,
                         drawing_date=job.accepted_at.date(), total_cost_cny=bom.total_cny,
                         works_summary=tuple(summary)),
        meter_box=MeterBox(x_m=pin.x_m, y_m=pin.y_m),
        transformers=tuple(around.get("transformers", ())),
        access_points=tuple(around.get("access_points", ())),
        existing_lines=tuple(around.get("existing_lines", ())),
        new_routes=new_routes,
        new_poles=new_poles,
        new_equipment=new_equipment,
    )
    warnings = [*schedule.warnings]
    if not feasible and siting.reason:
        warnings.insert(0, Reason(siting.reason_code or "NO_FEASIBLE_SOURCE", siting.reason, "R2.3"))
    return ConnectionDesign(
        job_ref=job.job_ref, profile_id=profile.profile_id, area_type=area_type, eligibility=job.eligibility,
        source=candidate, feasible_source=feasible, site_facts=site_facts, decision=decision,
        lv_job_class=lv_job_class, sizing=sizing, bom=bom, schedule=schedule, drawing=drawing,
        warnings=tuple(warnings), upgrade_kind=upgrade_kind, new_transformer=new_transformer,
    )


def _named_customer(facts: ApplicationFacts) -> str | None:
    """The customer's name for the title block; ``None`` when none was given (the default 客户 is a
    placeholder, not a name: the title block then shows no customer row, the job id names the sheet)."""
    name = facts.customer_name.strip()
    return name if name and name != ApplicationFacts.model_fields["customer_name"].default else None


def _has_approval_step(profile: Profile, job_class: JobClass) -> bool:
    return profile.deadlines[job_class].steps_days[StepCode.ADMIN_APPROVAL] > 0


def _choose(siting: SitingResult, asset_id: str | None) -> SourceCandidate:
    if asset_id is None:
        assert siting.best is not None  # only a feasible siting is designed without a chosen candidate
        return siting.best
    for candidate in siting.candidates:
        if candidate.transformer_asset_id == asset_id:
            return candidate
    raise CandidateUnknownError(
        f"Transformer {asset_id!r} is not a feasible candidate for this meter box.",
        field="transformer_asset_id", candidates=[c.transformer_asset_id for c in siting.candidates])


def _works_summary(lv_job_class: JobClass, length_m: float, poles: int, sizing: SizingResult,
                   excavation: bool) -> list[str]:
    lines = [f"{sizing.conductor} {length_m:.0f} m"]
    if lv_job_class == JobClass.OVERHEAD:
        lines.append(f"新立电杆 {poles} 基")
    if excavation:
        lines.append("掘路 (行政审批)")
    lines.append(f"电能表 {sizing.meter_designation}")
    return lines
