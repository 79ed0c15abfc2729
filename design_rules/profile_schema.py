"""Schema of a policy-profile file (政策口径): the pydantic models, every number with the document it comes from.

Import them from :mod:`design_rules.profiles`, which re-exports every public name here and loads the
packaged files.
"""

from __future__ import annotations

from datetime import date
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from design_rules.profile_vocabulary import (
    AreaType,
    Category,
    CountFrom,
    DayKind,
    DocumentKind,
    JobClass,
    RoadClass,
    StepCode,
    UrbanRural,
)

__all__ = [
    "CASE_BY_CASE",
    "BookingRelease",
    "CapacityLimits",
    "ConnectFirst",
    "DatedCapacityLimit",
    "DocumentRef",
    "EligibilityRules",
    "Equivalence",
    "Excavation",
    "Exclusion",
    "Factor",
    "JobDeadline",
    "LoadThresholds",
    "NewTransformerRules",
    "OneAddressOneAccount",
    "OverheadSpans",
    "Pct",
    "Profile",
    "PublicDisclosure",
    "ReapplicationBlock",
    "ReliabilityTargets",
    "RequiredDocuments",
    "ScheduleRules",
    "SelfAssessmentTargets",
    "ServiceDrop",
    "Source",
    "StageEvidence",
    "SupplyRadius",
    "SupplyVoltage",
    "SurveyRules",
    "VoltageDrop",
]

CASE_BY_CASE = "case_by_case"
"""Marker used in TOML (which has no null) for a supply radius computed case by case (DOMAIN §1.1, class E)."""

Source = Annotated[
    str,
    Field(min_length=3, description="Seed and clause, or DOMAIN.md section, the value comes from."),
]
Pct = Annotated[float, Field(ge=0, le=200)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DocumentRef(_Model):
    """A policy document a profile is built from."""

    key: str = Field(description="Short name used in `source` fields, e.g. 'CQ-45'.")
    seed_file: str = Field(description="File name under shared/seeds/.")
    title_zh: str
    number_zh: str | None = Field(default=None, description="文号, e.g. 渝电综〔2019〕45号.")
    issued_on: date | None = None


class DatedCapacityLimit(_Model):
    """One capacity limit (kW) valid over an inclusive date range; open ends are ``None``."""

    max_kw: float = Field(gt=0)
    valid_from: date | None = None
    valid_until: date | None = None
    source: Source

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise ValueError("valid_from must not be after valid_until")
        return self

    def applies_on(self, on_date: date) -> bool:
        """Return whether this limit is in force on ``on_date`` (both ends inclusive)."""
        return (self.valid_from is None or self.valid_from <= on_date) and (
            self.valid_until is None or on_date <= self.valid_until
        )


def _check_no_overlap(limits: tuple[DatedCapacityLimit, ...]) -> tuple[DatedCapacityLimit, ...]:
    ordered = sorted(limits, key=lambda lim: lim.valid_from or date.min)
    for before, after in pairwise(ordered):
        end = before.valid_until or date.max
        start = after.valid_from or date.min
        if start <= end:
            raise ValueError(f"date ranges overlap ({before.valid_from}..{before.valid_until} and {start}..)")
    return limits


class CapacityLimits(_Model):
    """Maximum requested capacity for the 三零 service, per 城乡类别, possibly dated (R1.3)."""

    urban: tuple[DatedCapacityLimit, ...] = Field(min_length=1)
    rural: tuple[DatedCapacityLimit, ...] = Field(min_length=1)

    @field_validator("urban", "rural")
    @classmethod
    def _no_overlap(cls, value: tuple[DatedCapacityLimit, ...]) -> tuple[DatedCapacityLimit, ...]:
        return _check_no_overlap(value)

    def limit_on(self, urban_rural: UrbanRural, on_date: date) -> DatedCapacityLimit | None:
        """Return the limit in force for ``urban_rural`` on ``on_date``, or ``None`` if none is."""
        limits = self.urban if urban_rural is UrbanRural.URBAN else self.rural
        return next((lim for lim in limits if lim.applies_on(on_date)), None)


class SupplyVoltage(_Model):
    """Supply voltage and ownership of the source (CQ-32 一: 0.4 kV and below, grid-owned source)."""

    max_kv: float = Field(gt=0)
    grid_owned_source_required: bool
    source: Source


class OneAddressOneAccount(_Model):
    """一址一户: one property proof, one customer, one metering point."""

    required: bool
    source: Source


class ReapplicationBlock(_Model):
    """No new 三零 connection within ``min_years`` of the same customer closing an account there."""

    min_years: int = Field(ge=1)
    source: Source


class Exclusion(_Model):
    """Why a category is excluded from the 三零 investment scope, in the seed's words."""

    reason_zh: str = Field(min_length=2)
    source: Source


class Equivalence(_Model):
    """A category treated as a small enterprise (参照小微企业执行)."""

    note_zh: str = Field(min_length=2)
    source: Source


class EligibilityRules(_Model):
    """Everything ``check_eligibility`` needs (R1.3)."""

    capacity_kw: CapacityLimits
    supply_voltage: SupplyVoltage
    one_address_one_account: OneAddressOneAccount
    reapplication_block: ReapplicationBlock | None = None
    excluded_categories: dict[Category, Exclusion]
    small_enterprise_equivalents: dict[Category, Equivalence] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        both = set(self.excluded_categories) & set(self.small_enterprise_equivalents)
        if both:
            raise ValueError(f"categories both excluded and equivalent: {sorted(both)}")
        return self


class RequiredDocuments(_Model):
    """Application documents (R1.2): what is required and what may follow later (容缺受理)."""

    required: tuple[DocumentKind, ...] = Field(min_length=1)
    deferrable: tuple[DocumentKind, ...] = ()
    deferred_until_zh: str | None = None
    one_certificate: bool = Field(description="一证办电: documents fetched from the government platform.")
    source: Source

    @model_validator(mode="after")
    def _deferrable_subset(self) -> Self:
        extra = set(self.deferrable) - set(self.required)
        if extra:
            raise ValueError(f"deferrable documents must also be required: {sorted(extra)}")
        return self


class LoadThresholds(_Model):
    """Transformer load-rate thresholds (R2.3; BS 4.1.4)."""

    may_start_pct: Pct
    must_start_pct: Pct
    max_load_after_pct: Pct
    area_precontrol_kva: float = Field(ge=0)
    source: Source

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.may_start_pct <= self.must_start_pct <= self.max_load_after_pct:
            raise ValueError("need may_start_pct <= must_start_pct <= max_load_after_pct")
        return self


class Factor(_Model):
    """A dimensionless factor in (0, 1] with its source."""

    value: float = Field(gt=0, le=1)
    source: Source


class SupplyRadius(_Model):
    """LV supply radius (低压供电半径) in metres per area type; ``None`` means compute case by case."""

    radius_m: dict[AreaType, float | None]
    case_by_case_max_m: float = Field(gt=0, description=(
        "Where the radius is computed case by case (class E), the longest LV supply a design may draw, metres: "
        "an existing transformer farther than this from the meter box is not offered as the upgrade candidate "
        "(Sanling's choice; beyond it the job is a new transformer near the load)."))
    source: Source

    def reach_m(self, area_type: AreaType) -> float:
        """The farthest (straight line) an existing transformer can supply a meter box of ``area_type`` over LV.

        >>> SupplyRadius(radius_m={a: (None if a is AreaType.E else 250.0) for a in AreaType},
        ...              case_by_case_max_m=1000.0, source="DOMAIN §1.1").reach_m(AreaType.E)
        1000.0
        """
        radius = self.radius_m[area_type]
        return self.case_by_case_max_m if radius is None else radius

    @field_validator("radius_m", mode="before")
    @classmethod
    def _case_by_case(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (None if v == CASE_BY_CASE else v) for k, v in value.items()}
        return value

    @field_validator("radius_m")
    @classmethod
    def _complete(cls, value: dict[AreaType, float | None]) -> dict[AreaType, float | None]:
        missing = [a.value for a in AreaType if a not in value]
        if missing:
            raise ValueError(f"missing area types {missing} (use '{CASE_BY_CASE}' for no fixed radius)")
        bad = [k.value for k, v in value.items() if v is not None and v <= 0]
        if bad:
            raise ValueError(f"radius must be > 0 for {bad}")
        return value


UnitKind = Literal["pole_mounted", "box"]


class NewTransformerRules(_Model):
    """A new distribution transformer by the load (新增配变/新建台区; issue 20 item 1e; DOMAIN §1.1, §6.1).

    The unit is the smallest rating of its kind's standard series at least the added kVA × (1 +
    ``margin_pct`` / 100); its 10 kV line is the straight distance to the feeding transformer ×
    ``mv_detour_factor`` and may be no longer than the 10 kV line radius of the area type.
    """

    pole_mounted_kva: tuple[float, ...] = Field(min_length=1, description="柱上变台 ratings, kVA, ascending.")
    box_kva: tuple[float, ...] = Field(min_length=1, description="箱变 ratings, kVA, ascending.")
    source: Source = Field(description="Where the standard series comes from.")
    unit_kind: dict[AreaType, UnitKind]
    unit_kind_source: Source
    margin_pct: float = Field(ge=0, le=200, description="Spare capacity kept above the booking, percent.")
    margin_source: Source
    mv_line_radius_m: dict[AreaType, float | None]
    mv_case_by_case_max_m: float = Field(gt=0, description=(
        "Where the 10 kV radius is computed case by case (class E), the longest 10 kV line a design may draw."))
    mv_detour_factor: float = Field(ge=1, le=3)
    mv_source: Source

    @field_validator("pole_mounted_kva", "box_kva")
    @classmethod
    def _ascending(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(b <= a for a, b in pairwise(value)) or value[0] <= 0:
            raise ValueError("ratings must be positive and ascending")
        return value

    @field_validator("mv_line_radius_m", mode="before")
    @classmethod
    def _case_by_case(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (None if v == CASE_BY_CASE else v) for k, v in value.items()}
        return value

    @field_validator("unit_kind", "mv_line_radius_m")
    @classmethod
    def _complete(cls, value: dict[AreaType, Any]) -> dict[AreaType, Any]:
        missing = [a.value for a in AreaType if a not in value]
        if missing:
            raise ValueError(f"missing area types {missing}")
        return value

    def series(self, area_type: AreaType) -> tuple[UnitKind, tuple[float, ...]]:
        """The unit kind of ``area_type`` and its standard ratings."""
        kind = self.unit_kind[area_type]
        return kind, (self.pole_mounted_kva if kind == "pole_mounted" else self.box_kva)

    def mv_reach_m(self, area_type: AreaType) -> float:
        """The longest 10 kV line to a new unit in ``area_type`` (the case-by-case limit for class E)."""
        radius = self.mv_line_radius_m[area_type]
        return self.mv_case_by_case_max_m if radius is None else radius


class ServiceDrop(_Model):
    """Service-drop (接户线) limits (DOMAIN §1.2)."""

    max_span_m: float = Field(gt=0)
    max_total_m: float = Field(gt=0)
    service_pole_span_m: float = Field(gt=0)
    source: Source

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_span_m > self.max_total_m:
            raise ValueError("max_span_m must not exceed max_total_m")
        return self


class Excavation(_Model):
    """Road classes whose crossing means digging the road (掘路) and an administrative approval."""

    road_classes: frozenset[RoadClass]
    source: Source


class VoltageDrop(_Model):
    """Planning guard on the LV voltage drop (DOMAIN §2.2)."""

    budget_pct: float = Field(gt=0, le=20)
    source: Source


class OverheadSpans(_Model):
    """Design span of new LV overhead line (档距, DOMAIN §4.1)."""

    span_urban_m: float = Field(gt=0)
    span_rural_m: float = Field(gt=0)
    source: Source


class ScheduleRules(_Model):
    """How deadlines are counted."""

    day_kind: DayKind
    count_from: CountFrom
    non_workday_deadline: Literal["next_workday", "keep"] = Field(
        description="Calendar-day profiles only: move a deadline on a non-working day, or keep it."
    )
    unused_approval_days_to: StepCode = Field(
        description="Step that absorbs the 行政审批 days when no road is dug (R5.2)."
    )
    source: Source

    @field_validator("unused_approval_days_to")
    @classmethod
    def _not_approval(cls, value: StepCode) -> StepCode:
        if value is StepCode.ADMIN_APPROVAL:
            raise ValueError("must name a step other than admin_approval")
        return value


class JobDeadline(_Model):
    """Total deadline of a job class and its split over the internal steps (R3, R5.2)."""

    total_days: int = Field(ge=1)
    source: Source
    steps_days: dict[StepCode, Annotated[int, Field(ge=0)]]
    steps_source: Source

    @model_validator(mode="after")
    def _steps_sum_to_total(self) -> Self:
        missing = [s.value for s in StepCode if s not in self.steps_days]
        if missing:
            raise ValueError(f"steps_days lacks steps {missing}")
        if self.steps_days[StepCode.ACCEPT_AND_SIGN] < 1:
            raise ValueError("accept_and_sign must take at least 1 day")
        total = sum(self.steps_days.values())
        if total != self.total_days:
            raise ValueError(f"steps_days sum to {total}, total_days is {self.total_days}")
        return self


class StageEvidence(_Model):
    """What a stage report must carry (R5.3)."""

    photo_required_steps: frozenset[StepCode] = Field(
        description="Steps whose completion report must carry at least one site photo.")
    source: Source


class PublicDisclosure(_Model):
    """How available capacity is published to the public (R6.2)."""

    cap_kva: float = Field(gt=0, description="Larger single-connection figures are shown as this value.")
    rounding_kva: float = Field(gt=0, description="Figures are floored to this step.")
    source: Source


class SurveyRules(_Model):
    """How the project manager's survey marks are turned into design constraints."""

    stretch_half_width_m: float = Field(
        gt=0, le=50, description="A marked no-overhead stretch (a line) is widened by this on each side.")
    source: Source


class ConnectFirst(_Model):
    """Whether 先接入后改造 (connect first, reinforce later) is allowed (R2.3)."""

    allowed: bool
    source: Source


class ReliabilityTargets(_Model):
    """Supply-reliability targets of the monthly self-assessment (CQ-45 m14): absolute caps on SAIDI (hours per
    customer and year) and SAIFI (interruptions per customer and year), caps per area kind (BS: 中心城区, 县, 城镇,
    农村), and/or a yearly reduction in percent against the year before. Any may be absent: the seed gives what it
    gives, and a figure without a target is reported without one."""

    saidi_max_hours: float | None = Field(default=None, gt=0)
    saifi_max: float | None = Field(default=None, gt=0)
    saidi_max_hours_by_area_zh: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    saidi_yearly_reduction_pct: Pct | None = None
    saifi_yearly_reduction_pct: Pct | None = None
    source: Source


class SelfAssessmentTargets(_Model):
    """The targets the monthly "Getting Electricity" self-assessment reports each figure against (R8.3, CQ-45 m14;
    ../shared/REPORTING.md). The time targets per job class are ``deadlines``; these are the rest."""

    procedures: int = Field(ge=1, description="环节 per order (申请签约、施工接电).")
    procedures_source: Source
    max_customer_interactions: int = Field(ge=1, description="Customer interactions per order at most.")
    interactions_source: Source
    customer_cost_cny: float = Field(ge=0, description="What the customer pays outside the red line.")
    customer_cost_source: Source
    mean_days: float | None = Field(default=None, gt=0, description="Average whole-process days, where given.")
    mean_days_source: Source
    no_outage_rate_pct: Pct | None = Field(default=None, description="业扩不停电接火率 at least, where given.")
    no_outage_source: Source
    reliability: ReliabilityTargets
    source: Source = Field(description="Why a monthly self-assessment at all (CQ-45 措施14).")


class BookingRelease(_Model):
    """When a powered-on application's capacity booking is given back (R2.3, issue 15 item 1).

    After power-on the customer's load enters the transformer's peak with the load readings; until then the
    booking keeps the room. A reading of the transformer read at least ``reading_after_days`` after power-on
    releases it (the peak now holds the load); any booking still open ``timeout_days`` after power-on is
    released by the periodic job (the readings never came, or the load is smaller than booked).
    """

    reading_after_days: int = Field(
        ge=0, le=365, description="A load reading read at least this many days after power-on releases the booking.")
    timeout_days: int = Field(
        ge=1, le=3650, description="A booking still open this many days after power-on is released by the job.")
    source: Source

    @model_validator(mode="after")
    def _timeout_after_reading(self) -> Self:
        if self.timeout_days < self.reading_after_days:
            raise ValueError(f"timeout_days ({self.timeout_days}) is shorter than reading_after_days "
                             f"({self.reading_after_days})")
        return self


class Profile(_Model):
    """One regional policy profile (政策口径). Every number carries the document it comes from.

    Examples
    --------
    >>> from design_rules.profiles import get_profile
    >>> p = get_profile("chongqing-2019")
    >>> p.deadlines[JobClass.OVERHEAD].total_days
    10
    >>> p.load_thresholds.max_load_after_pct
    80.0
    >>> sorted(str(c) for c in p.excavation_road_classes)
    ['arterial', 'secondary']
    """

    profile_id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    name_zh: str
    name_en: str
    region_zh: str
    effective_from: date
    documents: tuple[DocumentRef, ...] = Field(min_length=1)
    eligibility: EligibilityRules
    required_documents: RequiredDocuments
    load_thresholds: LoadThresholds
    power_factor: Factor
    demand_factor: Factor
    supply_radius_m: SupplyRadius
    service_drop: ServiceDrop
    excavation: Excavation
    voltage_drop: VoltageDrop
    overhead: OverheadSpans
    schedule: ScheduleRules
    deadlines: dict[JobClass, JobDeadline]
    connect_first: ConnectFirst
    booking_release: BookingRelease
    stage_evidence: StageEvidence
    public_disclosure: PublicDisclosure
    survey: SurveyRules
    new_transformer: NewTransformerRules | None = Field(
        default=None, description="Rules of the new-transformer rung; without them the rung is not offered.")
    self_assessment: SelfAssessmentTargets = Field(
        description="Targets of the monthly self-assessment (CQ-45 m14) besides the deadlines.")

    @field_validator("deadlines")
    @classmethod
    def _all_job_classes(cls, value: dict[JobClass, JobDeadline]) -> dict[JobClass, JobDeadline]:
        missing = [j.value for j in JobClass if j not in value]
        if missing:
            raise ValueError(f"missing job classes {missing}")
        return value

    @property
    def voltage_drop_budget_pct(self) -> float:
        """Voltage-drop planning guard in percent (shortcut for ``voltage_drop.budget_pct``)."""
        return self.voltage_drop.budget_pct

    @property
    def excavation_road_classes(self) -> frozenset[RoadClass]:
        """Road classes whose crossing is dug (shortcut for ``excavation.road_classes``)."""
        return self.excavation.road_classes

    def total_days(self, job_class: JobClass) -> int:
        """Return the promised total (application → power on) for ``job_class`` in profile days."""
        return self.deadlines[JobClass(job_class)].total_days
