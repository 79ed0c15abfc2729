"""Eligibility for the LV small-enterprise 三零 service (R1.3; CQ-32 一, BS 4.3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from design_rules.profiles import (
    AreaType,
    Category,
    DocumentKind,
    HighReliabilityKind,
    MunicipalFacilityKind,
    UrbanRural,
)
from design_rules.reasons import Reason

if TYPE_CHECKING:
    from design_rules.profiles import Profile

__all__ = [
    "Category",
    "DocumentKind",
    "EligibilityInput",
    "EligibilityResult",
    "HighReliabilityKind",
    "MunicipalFacilityKind",
    "check_eligibility",
]

_SUB_KINDS: dict[Category, type[MunicipalFacilityKind] | type[HighReliabilityKind]] = {
    Category.MUNICIPAL_FACILITY: MunicipalFacilityKind,
    Category.HIGH_RELIABILITY: HighReliabilityKind,
}
_AREA_URBAN_RURAL = {AreaType.URBAN: UrbanRural.URBAN, AreaType.RURAL: UrbanRural.RURAL}


class EligibilityInput(BaseModel):
    """The facts of an application that eligibility depends on (R1.1, R1.3).

    Parameters
    ----------
    kw : float
        Requested capacity (报装容量), kW.
    category : Category
        Customer category; ``sub_kind`` refines ``municipal_facility`` and ``high_reliability``.
    sub_kind : MunicipalFacilityKind or HighReliabilityKind, optional
    voltage_kv : float
        Requested supply voltage, kV (0.22 or 0.38/0.4 for LV).
    area_type : AreaType
    urban_rural : UrbanRural, optional
        城乡类别; may be omitted only when ``area_type`` is ``urban`` or ``rural``.
    closed_account_at_address_on : date, optional
        When the same customer last closed an account at this address (销户日期).
    extra_account_at_address : bool
        The application would add a second account / metering point at an address that already
        has one (violates 一址一户). A capacity increase (增容) of the existing account is not.
    source_is_grid_owned : bool
        The supply would come from grid-company-owned equipment (供电公司产权的供配电设施).
    documents_provided : frozenset of DocumentKind, optional
        Documents in hand; ``None`` = not checked here.

    Examples
    --------
    >>> EligibilityInput(kw=60, category="small_enterprise", area_type="urban").urban_rural
    <UrbanRural.URBAN: 'urban'>
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kw: float = Field(gt=0, description="Requested capacity (报装容量), kW.")
    category: Category
    sub_kind: MunicipalFacilityKind | HighReliabilityKind | None = None
    voltage_kv: float = Field(default=0.38, gt=0, description="Requested supply voltage, kV.")
    area_type: AreaType
    urban_rural: UrbanRural | None = None
    closed_account_at_address_on: date | None = None
    extra_account_at_address: bool = False
    source_is_grid_owned: bool = True
    documents_provided: frozenset[DocumentKind] | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse_sub_kind(cls, data: object) -> object:
        # The same sub-kind value ("other") exists in both enums: parse it against the category's enum.
        if isinstance(data, dict) and data.get("sub_kind") is not None:
            kind_enum = _SUB_KINDS.get(Category(data["category"])) if data.get("category") else None
            if kind_enum is None:
                raise ValueError(f"sub_kind is only allowed for {sorted(c.value for c in _SUB_KINDS)}")
            data = {**data, "sub_kind": kind_enum(data["sub_kind"])}
        return data

    @model_validator(mode="after")
    def _derive_urban_rural(self) -> Self:
        if self.urban_rural is None:
            derived = _AREA_URBAN_RURAL.get(self.area_type)
            if derived is None:
                raise ValueError(f"urban_rural is required when area_type is {self.area_type.value!r}")
            object.__setattr__(self, "urban_rural", derived)
        return self


@dataclass(frozen=True, slots=True)
class EligibilityResult:
    """Outcome of ``check_eligibility``.

    Attributes
    ----------
    eligible : bool
        True when no rule failed.
    reasons : list of Reason
        One entry per failed rule (empty when eligible), each with a stable code, the seed's
        reason text and its source.
    notes : list of Reason
        Supporting information that does not block: the capacity limit applied, documents that may
        follow later (容缺受理), categories treated as small enterprises.
    max_kw : float or None
        The capacity limit applied on that date, if any.
    """

    eligible: bool
    reasons: list[Reason] = field(default_factory=list)
    notes: list[Reason] = field(default_factory=list)
    max_kw: float | None = None


def _one_year_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February → 1 March
        return date(day.year + years, 3, 1)


def check_eligibility(application: EligibilityInput, profile: Profile, on_date: date) -> EligibilityResult:
    """Check an application against the profile's 三零 eligibility rules (R1.3, R1.2).

    Every rule is checked and every failure reported: category exclusions (CQ-32 一.1–一.8),
    capacity limit for the 城乡类别 on ``on_date`` (BS 4.3.3: rural 100 kW until 2022-12-31),
    LV supply ≤0.4 kV from grid-owned equipment, 一址一户, re-application within a year of closing
    an account, and — when ``documents_provided`` is given — the identity document (the property
    proof may follow later where the profile allows 容缺受理).

    Parameters
    ----------
    application : EligibilityInput
    profile : Profile
    on_date : date
        Date of the application (dated limits are chosen by it; no clock is read).

    Returns
    -------
    EligibilityResult

    Examples
    --------
    >>> from design_rules.profiles import get_profile
    >>> bs = get_profile("baoshan-2021")
    >>> app = EligibilityInput(kw=120, category="farmer_cooperative", area_type="rural")
    >>> r = check_eligibility(app, bs, date(2022, 6, 1))
    >>> r.eligible, [x.code for x in r.reasons]
    (False, ['CAPACITY_ABOVE_LIMIT'])
    >>> check_eligibility(app, bs, date(2023, 1, 1)).eligible
    True
    """
    rules = profile.eligibility
    reasons: list[Reason] = []
    notes: list[Reason] = []
    category = application.category

    exclusion = rules.excluded_categories.get(category)
    if exclusion is not None:
        detail = f"（{application.sub_kind.label_zh}）" if application.sub_kind else ""
        reasons.append(
            Reason("EXCLUDED_CATEGORY", f"{category.label_zh}{detail}：{exclusion.reason_zh}", exclusion.source)
        )
    equivalent = rules.small_enterprise_equivalents.get(category)
    if equivalent is not None:
        notes.append(Reason("TREATED_AS_SMALL_ENTERPRISE", equivalent.note_zh, equivalent.source))

    urban_rural = application.urban_rural or UrbanRural.URBAN  # set by the model validator
    limit = rules.capacity_kw.limit_on(urban_rural, on_date)
    if limit is None:
        reasons.append(
            Reason(
                "NO_CAPACITY_LIMIT_ON_DATE",
                f"{on_date.isoformat()} 无适用的{urban_rural.label_zh}“三零”容量上限（口径 {profile.profile_id}）。",
                profile.profile_id,
            )
        )
    elif application.kw > limit.max_kw:
        reasons.append(
            Reason(
                "CAPACITY_ABOVE_LIMIT",
                f"报装容量 {application.kw:g} kW 超过{urban_rural.label_zh}“三零”上限 {limit.max_kw:g} kW。",
                limit.source,
            )
        )
    else:
        notes.append(
            Reason(
                "CAPACITY_WITHIN_LIMIT",
                f"报装容量 {application.kw:g} kW ≤ {urban_rural.label_zh}上限 {limit.max_kw:g} kW。",
                limit.source,
            )
        )

    supply = rules.supply_voltage
    if application.voltage_kv > supply.max_kv:
        reasons.append(
            Reason(
                "VOLTAGE_ABOVE_LV",
                f"供电电压 {application.voltage_kv:g} kV 高于 {supply.max_kv:g} kV，不属低压“三零”服务。",
                supply.source,
            )
        )
    if supply.grid_owned_source_required and not application.source_is_grid_owned:
        reasons.append(
            Reason("SOURCE_NOT_GRID_OWNED", "电源须由供电公司产权的供配电设施提供。", supply.source)
        )

    if rules.one_address_one_account.required and application.extra_account_at_address:
        reasons.append(
            Reason(
                "ONE_ADDRESS_ONE_ACCOUNT",
                "“一址一户”：一个用电地址权属证明对应一个低压小微企业，原则上只安装一套计量装置。",
                rules.one_address_one_account.source,
            )
        )

    block = rules.reapplication_block
    closed_on = application.closed_account_at_address_on
    if block is not None and closed_on is not None and on_date < _one_year_after(closed_on, block.min_years):
        reasons.append(
            Reason(
                "REAPPLICATION_WITHIN_BLOCK",
                f"同一客户同一地址于 {closed_on.isoformat()} 销户，{block.min_years} 年内申请新装不适用“三零”。",
                block.source,
            )
        )

    docs = profile.required_documents
    if application.documents_provided is not None:
        for kind in docs.required:
            if kind in application.documents_provided:
                continue
            if kind in docs.deferrable:
                until = f"，{docs.deferred_until_zh}" if docs.deferred_until_zh else ""
                notes.append(Reason("DOCUMENT_DEFERRED", f"容缺受理：{kind.label_zh}可后补{until}。", docs.source))
            else:
                reasons.append(Reason("MISSING_REQUIRED_DOCUMENT", f"缺少申请资料：{kind.label_zh}。", docs.source))

    return EligibilityResult(
        eligible=not reasons, reasons=reasons, notes=notes, max_kw=limit.max_kw if limit else None
    )
