"""The vocabulary of the policy profiles and the rules: string enums that also carry a Chinese label.

Values are the strings used in TOML and JSON. Import them from :mod:`design_rules.profiles`, which
re-exports every name here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

__all__ = [
    "AreaType",
    "Category",
    "CountFrom",
    "DayKind",
    "DocumentKind",
    "HighReliabilityKind",
    "JobClass",
    "MunicipalFacilityKind",
    "RoadClass",
    "StepCode",
    "UrbanRural",
]


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

