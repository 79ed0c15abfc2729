"""Annex 1 — "1+1"双经理情况统计 (CQ-32 四(二)1; R5.1): one row per grid area with its two managers.

Pure: :func:`build_rows` numbers the :class:`RosterRecord` rows. 是否营配融合 is 是 when one person holds both
roles for the area ("营配融合的执行'一岗双责'": the same full name as customer manager and project manager).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

TITLE_ZH = '"1+1"双经理情况统计'

COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "序号"),
    ("supply_company", "供电单位"),
    ("supply_station", "供电所"),
    ("service_area", "服务片区（行政区域）"),
    ("marketing_distribution_merged", "是否营配融合"),
    ("customer_manager", "营销客户经理"),
    ("project_manager", "配电项目经理"),
)
LABELS = tuple(label for _key, label in COLUMNS)
KEYS = tuple(key for key, _label in COLUMNS)


def notes() -> tuple[str, ...]:
    """The note row of annex 1."""
    return ("注：每个网格一行；客户经理、项目经理为该网格在岗的营销客户经理和配电项目经理"
            "（未配置账号时取网格资料中的姓名）；同一人兼任两岗即为营配融合（一岗双责）。",)


@dataclass(frozen=True, slots=True)
class RosterRecord:
    """One grid area and the names of its team (the users the assignment picks, else the grid area's names)."""

    grid_area_code: str
    grid_area_name: str
    supply_company: str | None
    supply_station: str | None
    admin_region: str | None
    customer_manager: str | None
    project_manager: str | None


class RosterRow(BaseModel):
    """One row of annex 1 with English keys."""

    model_config = ConfigDict(frozen=True)

    seq: int = Field(description="序号.")
    grid_area_code: str = Field(description="Sanling's grid area code (not a column of annex 1).")
    supply_company: str | None = Field(description="供电单位.")
    supply_station: str | None = Field(description="供电所.")
    service_area: str = Field(description="服务片区（行政区域）: the grid area's name and its administrative region.")
    marketing_distribution_merged: str = Field(description="是否营配融合: 是 or 否.")
    customer_manager: str | None = Field(description="营销客户经理.")
    project_manager: str | None = Field(description="配电项目经理.")

    def cells(self) -> list[object]:
        """The 7 values in the order of :data:`COLUMNS`."""
        return [getattr(self, key) for key in KEYS]


class RosterColumn(BaseModel):
    """A column of the roster: its JSON key and its Chinese header label."""

    key: str
    label_zh: str


class RosterReport(BaseModel):
    """The JSON form of annex 1."""

    report: str = Field(description="`roster`.")
    supply_unit: str | None
    generated_at: str = Field(description="Server time of the export (UTC, ISO 8601).")
    title_zh: str
    columns: list[RosterColumn]
    notes: list[str]
    rows: list[RosterRow]


#: Column widths of the XLSX sheet (characters).
WIDTHS = (6, 18, 18, 30, 12, 14, 14)


def build_rows(records: Iterable[RosterRecord]) -> list[RosterRow]:
    """Annex-1 rows in supply company, station and grid-area order, numbered from 1."""
    ordered = sorted(records, key=lambda r: (r.supply_company or "", r.supply_station or "", r.grid_area_code))
    return [RosterRow(
        seq=seq, grid_area_code=r.grid_area_code, supply_company=r.supply_company, supply_station=r.supply_station,
        service_area=f"{r.grid_area_name}（{r.admin_region}）" if r.admin_region else r.grid_area_name,
        marketing_distribution_merged="是" if r.customer_manager and r.customer_manager == r.project_manager else "否",
        customer_manager=r.customer_manager, project_manager=r.project_manager) for seq, r in enumerate(ordered, 1)]
