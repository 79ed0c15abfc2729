"""Policy profiles (政策口径) as validated data files, their vocabulary and the profile registry."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from functools import cache
from importlib import resources
from itertools import pairwise
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gis.errors import NotFoundError, SanlingError

__all__ = [
    "PROFILES",
    "AreaType",
    "Category",
    "CountFrom",
    "DayKind",
    "DocumentKind",
    "HighReliabilityKind",
    "JobClass",
    "JobDeadline",
    "MunicipalFacilityKind",
    "Profile",
    "ProfileError",
    "RoadClass",
    "ScheduleRules",
    "StepCode",
    "UnknownProfileError",
    "UrbanRural",
    "get_profile",
    "load_profile_text",
    "load_profiles",
    "profile_ids",
]

PROFILE_PACKAGE = "design_rules"
PROFILE_DIR = ("data", "profiles")
CASE_BY_CASE = "case_by_case"
"""Marker used in TOML (which has no null) for a supply radius computed case by case (DOMAIN §1.1, class E)."""


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class ProfileError(SanlingError):
    """A policy-profile file is malformed; ``details`` name the file, the field and the reason."""

    code = "PROFILE_INVALID"
    default_message = "A policy profile file is invalid."


class UnknownProfileError(NotFoundError):
    """No policy profile has the requested id; ``details['known']`` lists the valid ids."""

    code = "PROFILE_UNKNOWN"
    default_message = "No policy profile has this id."


# --------------------------------------------------------------------------------------------------
# Vocabulary shared by the data files and the rules (values are the strings used in TOML and JSON)
# --------------------------------------------------------------------------------------------------


class _ZhEnum(StrEnum):
    """A string enum whose members also carry a Chinese label (``label_zh``)."""

    label_zh: str

    def __new__(cls, value: str, label_zh: str) -> Self:
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.label_zh = label_zh
        return obj


class JobClass(_ZhEnum):
    """Job class of a connection (工程类别, R3; CQ-45 一.2, CQ-32 二(二)).

    Not to be confused with the metering method 直接接入式电能表 (DOMAIN naming trap).
    """

    DIRECT_METER = "direct_meter", "直接装表（无外线工程）"
    OVERHEAD = "overhead", "立杆架线（有外线无掘路）"
    UNDERGROUND_CABLE = "underground_cable", "地下电缆（有掘路工程）"
    TRANSFORMER_UPGRADE = "transformer_upgrade", "中压配变改造"


class StepCode(_ZhEnum):
    """Internal step of the grid company (供电企业内部环节, R5.2; CQ-32 附件3), in process order."""

    ACCEPT_AND_SIGN = "accept_and_sign", "受理申请并签约"
    SITE_SURVEY = "site_survey", "现场勘查"
    DESIGN_AND_BOM = "design_and_bom", "外线设计并生成物料清单"
    CONSTRUCTION_PREP = "construction_prep", "施工准备"
    ADMIN_APPROVAL = "admin_approval", "行政审批"
    CONSTRUCTION = "construction", "接入工程施工"
    METER_AND_ENERGISE = "meter_and_energise", "装表接电"


class AreaType(_ZhEnum):
    """Area type: plain urban/rural or a supply-area class 供电区域 A+…E (DOMAIN §1.1)."""

    URBAN = "urban", "城区"
    RURAL = "rural", "农村"
    A_PLUS = "A+", "A+类供电区域"
    A = "A", "A类供电区域"
    B = "B", "B类供电区域"
    C = "C", "C类供电区域"
    D = "D", "D类供电区域"
    E = "E", "E类供电区域"


class UrbanRural(_ZhEnum):
    """城乡类别 of an application (R1.1; CQ-32 附件2 column 城乡类别)."""

    URBAN = "urban", "城区"
    RURAL = "rural", "农村"


class RoadClass(_ZhEnum):
    """Road class of the road layer (docs/architecture.md vocabulary)."""

    ARTERIAL = "arterial", "主干路"
    SECONDARY = "secondary", "次干路"
    BRANCH = "branch", "支路"
    LANE = "lane", "巷道"


class Category(_ZhEnum):
    """Customer category of an application (用电主体类别, R1.1/R1.3; CQ-32 一, BS 4.3.3)."""

    SMALL_ENTERPRISE = "small_enterprise", "小微企业"
    INDIVIDUAL_BUSINESS = "individual_business", "个体工商户"
    FARMER_COOPERATIVE = "farmer_cooperative", "农业（农民）专业合作社"
    INDUSTRIAL_PARK_TENANT = "industrial_park_tenant", "工业园区入驻小微企业"
    RESIDENTIAL = "residential", "居民生活用电"
    TEMPORARY = "temporary", "临时用电"
    MUNICIPAL_FACILITY = "municipal_facility", "市政公用设施用电"
    RESIDENTIAL_DEVELOPMENT = "residential_development", "小区整体开发项目"
    COMPLEX_PARTIAL = "complex_partial", "商业综合体、写字楼等单体建筑内局部报装"
    HIGH_RELIABILITY = "high_reliability", "对供电可靠性要求较高的客户"
    HV_TO_LV = "hv_to_lv", "高压供电改低压供电并装表到户"
    PLOT_SPLIT = "plot_split", "人为拆分同一地块批量建设项目"


class MunicipalFacilityKind(_ZhEnum):
    """Sub-kind of ``Category.MUNICIPAL_FACILITY`` (CQ-32 一.2 list)."""

    BASE_STATION = "base_station", "通讯基站"
    WEATHER_STATION = "weather_station", "气象站"
    FUEL_STATION = "fuel_station", "加油/气站"
    SECONDARY_WATER_SUPPLY = "secondary_water_supply", "二次供水"
    SIGNAL_AMPLIFIER = "signal_amplifier", "广播电视信号放大器"
    TRAFFIC_MONITORING = "traffic_monitoring", "交通监控"
    POLICE_CAMERA = "police_camera", "警用摄像头"
    ROAD_PUMPING = "road_pumping", "道路抽水"
    STREET_LIGHTING = "street_lighting", "市政路灯"
    LANDSCAPE_LIGHTING = "landscape_lighting", "景观照明"
    OTHER = "other", "其他市政公用设施"


class HighReliabilityKind(_ZhEnum):
    """Sub-kind of ``Category.HIGH_RELIABILITY`` (CQ-32 一.5 list)."""

    AIRPORT = "airport", "机场"
    RAILWAY = "railway", "铁路"
    METRO = "metro", "地铁"
    POWER_PLANT = "power_plant", "发电厂"
    MINE = "mine", "矿山"
    OTHER = "other", "其他高可靠性客户"


class DocumentKind(_ZhEnum):
    """Application document (申请资料, R1.2)."""

    IDENTITY = "identity", "有效身份证明或营业执照"
    PROPERTY_PROOF = "property_proof", "用电地址物权（权属）证明"


class DayKind(_ZhEnum):
    """How deadline days are counted."""

    WORKING = "working", "工作日"
    CALENDAR = "calendar", "自然日"


class CountFrom(_ZhEnum):
    """Day 1 of a deadline (DOMAIN §9.1)."""

    NEXT_WORKDAY = "next_workday", "受理次一工作日起算（T+1）"
    ACCEPTANCE_DAY = "acceptance_day", "受理当日起算"


# --------------------------------------------------------------------------------------------------
# Schema of a profile file
# --------------------------------------------------------------------------------------------------

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
    source: Source

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


class Profile(_Model):
    """One regional policy profile (政策口径). Every number carries the document it comes from.

    Examples
    --------
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
    stage_evidence: StageEvidence
    public_disclosure: PublicDisclosure
    survey: SurveyRules

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


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _field_path(loc: Iterable[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def load_profile_text(text: str, filename: str) -> Profile:
    """Parse and validate one profile file.

    Parameters
    ----------
    text : str
        TOML text of the file.
    filename : str
        File name (``chongqing-2019.toml``); its stem must equal ``profile_id``.

    Returns
    -------
    Profile

    Raises
    ------
    ProfileError
        ``PROFILE_INVALID``; ``details`` hold ``file`` and ``errors`` (a list of
        ``{field, reason}``), and the message repeats them.

    Examples
    --------
    >>> load_profile_text("profile_id = 3", "x.toml")
    Traceback (most recent call last):
    ...
    design_rules.profiles.ProfileError: x.toml: profile_id: Input should be a valid string; ...
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        errors = [{"field": "<toml>", "reason": str(exc)}]
        raise ProfileError(f"{filename}: not valid TOML: {exc}", file=filename, errors=errors) from exc
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": _field_path(e["loc"]), "reason": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        raise ProfileError(f"{filename}: {summary}", file=filename, errors=errors) from exc
    stem = filename.rsplit("/", 1)[-1].removesuffix(".toml")
    if profile.profile_id != stem:
        reason = f"profile_id {profile.profile_id!r} must equal the file name stem {stem!r}"
        raise ProfileError(
            f"{filename}: profile_id: {reason}",
            file=filename,
            errors=[{"field": "profile_id", "reason": reason}],
        )
    return profile


def load_profiles() -> Mapping[str, Profile]:
    """Load every ``design_rules/data/profiles/*.toml`` into a new read-only mapping.

    Returns
    -------
    Mapping[str, Profile]
        A ``MappingProxyType`` keyed by ``profile_id``, in file-name order.

    Raises
    ------
    ProfileError
        If any file is invalid (the first invalid file is reported).
    """
    folder = resources.files(PROFILE_PACKAGE).joinpath(*PROFILE_DIR)
    profiles: dict[str, Profile] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            profile = load_profile_text(entry.read_text(encoding="utf-8"), f"data/profiles/{entry.name}")
            profiles[profile.profile_id] = profile
    return MappingProxyType(profiles)


PROFILES: Mapping[str, Profile]
"""Registry of the packaged profiles keyed by ``profile_id`` (read-only; built on first access)."""


@cache
def _registry() -> Mapping[str, Profile]:
    return load_profiles()


def __getattr__(name: str) -> Any:
    # PROFILES is built on first access, not at import time (STYLE 4 and 6).
    if name == "PROFILES":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def profile_ids() -> tuple[str, ...]:
    """Return the ids of the packaged profiles, sorted.

    Examples
    --------
    >>> profile_ids()
    ('baoshan-2021', 'chongqing-2019', 'shanghai-2019', 'wanzhou-2021')
    """
    return tuple(sorted(_registry()))


def get_profile(profile_id: str) -> Profile:
    """Return the packaged profile ``profile_id``.

    Raises
    ------
    UnknownProfileError
        ``PROFILE_UNKNOWN`` if there is no such profile; ``details['known']`` lists the ids.

    Examples
    --------
    >>> get_profile("baoshan-2021").schedule.day_kind
    <DayKind.WORKING: 'working'>
    >>> get_profile("beijing-2018")
    Traceback (most recent call last):
    ...
    design_rules.profiles.UnknownProfileError: Unknown policy profile 'beijing-2018'.
    """
    registry = _registry()
    try:
        return registry[profile_id]
    except KeyError:
        raise UnknownProfileError(
            f"Unknown policy profile {profile_id!r}.", profile_id=profile_id, known=sorted(registry)
        ) from None
