"""Annex 2 — 低压小微企业项目明细表 (CQ-32 四(二)2; R8.1): one row per application, 23 columns in the seed's order.

Pure: :func:`build_row` turns a :class:`ProjectRecord` (what the database holds about one application) into a
:class:`ProjectDetailRow` with the calendar and power factor passed in. The Chinese labels are the seed's, verbatim
(../shared/REPORTING.md); the JSON keys are English.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from design_rules.calendar import WorkCalendar
from design_rules.profiles import Category
from design_rules.schedule import CHINA_TZ

TITLE_ZH = "低压小微企业项目明细表"

#: (JSON key, header label) of annex 2, in the seed's order; the labels verbatim, punctuation included.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("supply_company", "供电单位"),
    ("supply_station", "所在单位"),
    ("account_number", "户号"),
    ("account_name", "户名"),
    ("supply_address", "用电地址"),
    ("contact_phone", "联系电话"),
    ("application_channel", "申请方式"),
    ("small_micro_enterprise", "是否小微企业"),
    ("supporting_works_class", "配套工程情况（6 类）"),
    ("funding_source", "工程资金来源"),
    ("works_cost_10k_cny", "工程金额（万元）"),
    ("business_type", "业务类型"),
    ("industry", "行业分类"),
    ("use_category", "用电类别"),
    ("capacity_kva", "容量（kVA）"),
    ("voltage_level", "电压等级"),
    ("accepted_at", "业务受理时间"),
    ("works_started_at", "工程实施时间"),
    ("works_completed_at", "工程竣工时间"),
    ("energised_at", "装表送电时间"),
    ("whole_process_working_days", "全流程时长（天）"),
    ("supporting_works_working_days", "配套工程时长(天)"),
    ("urban_rural", "城乡类别"),
)
KEYS = tuple(key for key, _label in COLUMNS)
LABELS = tuple(label for _key, label in COLUMNS)

CHANNEL_ZH = {"app": "手机App", "government_platform": "政务服务平台", "counter": "营业厅"}
BUSINESS_TYPE_ZH = {"new": "新装", "capacity_increase": "增容"}
VOLTAGE_ZH = {1: "交流220V", 3: "交流380V"}
URBAN_RURAL_ZH = {"urban": "城市", "rural": "农村"}
#: 配套工程情况: the seed names "6 类" without listing them; these are annex 3's three-way wording plus the MV
#: transformer upgrade (REPORTING.md). Sanling's choice.
WORKS_CLASS_ZH = {"none": "无外线工程", "no_excavation": "有外线无掘路工程", "excavation": "有外线有掘路工程",
                  "transformer_upgrade": "中压配变改造"}
#: 工程资金来源 (CQ-45 m5): LV works are drawn as special cost, the MV transformer upgrade is capital expenditure.
FUNDING_ZH = {"lv": "专项成本", "transformer_upgrade": "资本性支出"}


def notes(power_factor: float) -> tuple[str, ...]:
    """The note row: units and conventions of the table (R8.1; annex 3 reports the cycle in 工作日)."""
    return (
        "注：全流程时长（天）、配套工程时长(天)的单位为工作日，按国家法定节假日及调休安排计算；全流程自业务受理之日起"
        "（不含当日）计至装表送电之日，配套工程自工程实施之日起（不含当日）计至工程竣工之日；无外线工程为 0。"
        f"容量（kVA）= 申请容量（kW）÷ 功率因数 {power_factor:g}。时间为北京时间（Asia/Shanghai）。"
        "工程金额取确认版设计方案（仅含供电企业出资部分）。已撤销工单照列，无装表送电时间。",
    )


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """What the database holds about one application for annex 2 (times aware or naive UTC)."""

    application_id: int
    status: str
    supply_company: str | None
    supply_station: str | None
    account_number: str | None
    applicant_name: str
    address: str
    contact_phone: str | None
    channel: str | None
    category: str
    job_class: str | None
    road_dug: bool
    confirmed_cost_cny: float | None
    business_type: str | None
    industry: str | None
    requested_kw: float
    phases: int
    accepted_at: datetime
    construction_started_at: datetime | None
    construction_completed_at: datetime | None
    powered_on_at: datetime | None
    area_type: str | None


class ProjectDetailRow(BaseModel):
    """One row of annex 2 with English keys; texts are the table's Chinese values, times Asia/Shanghai."""

    model_config = ConfigDict(frozen=True)

    application_id: int = Field(description="Sanling's application id (not a column of annex 2).")
    status: str = Field(description="`in_progress`, `powered_on`, `cancelled`, … (not a column of annex 2).")
    supply_company: str | None = Field(description="供电单位 (the grid area's).")
    supply_station: str | None = Field(description="所在单位 (the grid area's supply station).")
    account_number: str | None = Field(description="户号 (given at power-on).")
    account_name: str = Field(description="户名.")
    supply_address: str = Field(description="用电地址.")
    contact_phone: str | None = Field(description="联系电话.")
    application_channel: str | None = Field(description="申请方式: 手机App, 政务服务平台 or 营业厅.")
    small_micro_enterprise: str = Field(description="是否小微企业: 是 or 否.")
    supporting_works_class: str | None = Field(description="配套工程情况（6 类）.")
    funding_source: str | None = Field(description="工程资金来源: 专项成本 or 资本性支出.")
    works_cost_10k_cny: float | None = Field(description="工程金额（万元）, the confirmed design version's cost.")
    business_type: str | None = Field(description="业务类型: 新装 or 增容.")
    industry: str | None = Field(description="行业分类.")
    use_category: str = Field(description="用电类别.")
    capacity_kva: float = Field(description="容量（kVA）: requested kW ÷ the profile's power factor.")
    voltage_level: str = Field(description="电压等级: 交流220V or 交流380V.")
    accepted_at: datetime = Field(description="业务受理时间, Asia/Shanghai.")
    works_started_at: datetime | None = Field(description="工程实施时间, Asia/Shanghai.")
    works_completed_at: datetime | None = Field(description="工程竣工时间, Asia/Shanghai.")
    energised_at: datetime | None = Field(description="装表送电时间, Asia/Shanghai.")
    whole_process_working_days: int | None = Field(description="全流程时长（天）, working days.")
    supporting_works_working_days: int | None = Field(description="配套工程时长(天), working days.")
    urban_rural: str | None = Field(description="城乡类别: 城市 or 农村.")

    def cells(self) -> list[Any]:
        """The 23 values in the order of :data:`COLUMNS`."""
        return [getattr(self, key) for key in KEYS]


class ReportColumn(BaseModel):
    """A column of a report: its JSON key and its Chinese header label."""

    key: str
    label_zh: str


class ProjectDetailReport(BaseModel):
    """The JSON form of annex 2 (the XLSX and CSV carry the same rows under the Chinese header)."""

    report: str = Field(description="`project_detail`.")
    from_: str | None = Field(alias="from", description="First acceptance date covered, or null (open).")
    to: str | None = Field(description="Last acceptance date covered, or null (open).")
    supply_unit: str | None
    generated_at: str = Field(description="Server time of the export (UTC, ISO 8601).")
    duration_unit: str = Field(description="`working_days`: 全流程时长 and 配套工程时长 count statutory working days.")
    title_zh: str
    columns: list[ReportColumn]
    notes: list[str]
    rows: list[ProjectDetailRow]


#: Column widths of the XLSX sheet (characters).
WIDTHS = (16, 16, 14, 24, 36, 14, 12, 10, 18, 12, 12, 8, 12, 14, 10, 10, 20, 20, 20, 20, 12, 12, 8)


def china_time(moment: datetime | None) -> datetime | None:
    """``moment`` (aware, or naive UTC as SQLite returns it) in Asia/Shanghai, to the second."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(CHINA_TZ).replace(microsecond=0)


def _day(moment: datetime | None) -> date | None:
    local = china_time(moment)
    return local.date() if local is not None else None


def whole_process_working_days(accepted_at: datetime | None, powered_on_at: datetime | None,
                               calendar: WorkCalendar) -> int | None:
    """全流程时长 (annex 2 #21): working days from the acceptance date to the power-on date (China dates; the start
    day excluded, the end day included, as the schedule counts deadlines); None before power-on."""
    accepted, energised = _day(accepted_at), _day(powered_on_at)
    return calendar.count_working_days(accepted, energised) if accepted and energised else None


def works_class(job_class: str | None, road_dug: bool) -> str | None:
    """配套工程情况 of a job class: no external works, external without or with digging the road, MV upgrade."""
    if job_class is None:
        return None
    if job_class == "transformer_upgrade":
        return WORKS_CLASS_ZH["transformer_upgrade"]
    if job_class == "direct_meter":
        return WORKS_CLASS_ZH["none"]
    return WORKS_CLASS_ZH["excavation" if road_dug else "no_excavation"]


def build_row(record: ProjectRecord, calendar: WorkCalendar, *, power_factor: float) -> ProjectDetailRow:
    """The annex-2 row of one application.

    Durations are working days on the statutory calendar, counted like the schedule counts deadlines (the start
    day excluded, the end day included): 全流程 from the acceptance date to the power-on date (None before
    power-on), 配套工程 from the start of construction to its completion (0 for a direct meter, which has no
    supporting works; None while either time is missing).
    """
    direct = record.job_class == "direct_meter"
    started = None if direct else record.construction_started_at
    completed = None if direct else record.construction_completed_at
    whole = whole_process_working_days(record.accepted_at, record.powered_on_at, calendar)
    if direct:
        works_days: int | None = 0
    elif started is not None and completed is not None:
        works_days = calendar.count_working_days(_day(started), _day(completed))  # type: ignore[arg-type]
    else:
        works_days = None
    funding = None if record.job_class is None else FUNDING_ZH[
        "transformer_upgrade" if record.job_class == "transformer_upgrade" else "lv"]
    try:
        category = Category(record.category).label_zh
    except ValueError:
        category = record.category
    return ProjectDetailRow(
        application_id=record.application_id, status=record.status,
        supply_company=record.supply_company, supply_station=record.supply_station,
        account_number=record.account_number, account_name=record.applicant_name, supply_address=record.address,
        contact_phone=record.contact_phone,
        application_channel=CHANNEL_ZH.get(record.channel) if record.channel else None,
        small_micro_enterprise="是" if record.category == Category.SMALL_ENTERPRISE.value else "否",
        supporting_works_class=works_class(record.job_class, record.road_dug), funding_source=funding,
        works_cost_10k_cny=(round(record.confirmed_cost_cny / 10_000, 4)
                            if record.confirmed_cost_cny is not None else None),
        business_type=BUSINESS_TYPE_ZH.get(record.business_type) if record.business_type else None,
        industry=record.industry, use_category=category,
        capacity_kva=round(record.requested_kw / power_factor, 2),
        voltage_level=VOLTAGE_ZH.get(record.phases, f"{record.phases}相"),
        accepted_at=china_time(record.accepted_at),  # type: ignore[arg-type]
        works_started_at=china_time(started), works_completed_at=china_time(completed),
        energised_at=china_time(record.powered_on_at),
        whole_process_working_days=whole, supporting_works_working_days=works_days,
        urban_rural=URBAN_RURAL_ZH.get(record.area_type, record.area_type) if record.area_type else None,
    )
