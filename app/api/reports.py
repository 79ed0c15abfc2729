"""Accountability reports (R8; issue 14): the annex-2 project detail table and the annex-1 "1+1" roster.

Customer managers see their grid areas, planners and admins everything, customers (and the other roles) nothing;
every export writes an audit row (`report_exported`: who exported which report, filters, format, rows).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import IO, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from app.design.service import work_calendar
from app.identity.auth import AuthenticatedUser, Role, grid_area_scope, require_roles
from app.platform.audit import record_change
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, SettingsDep
from app.platform.params import IsoDate, Line
from app.reporting import project_detail, roster, self_assessment
from app.reporting.queries import ReportFilter, assessment_records, project_records, roster_records
from app.reporting.writers import (
    MEDIA_TYPES,
    ReportFormat,
    Table,
    Written,
    negotiate,
    write,
    write_xlsx,
)
from design_rules.profiles import get_profile

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

ReportReader = Annotated[AuthenticatedUser, Depends(require_roles(Role.CUSTOMER_MANAGER, Role.PLANNER))]
#: Dates outside these years select nothing more than the open bound (and never overflow a timestamp).
_FIRST_DAY, _LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)
_CHUNK = 256 * 1024

FormatParam = Annotated[ReportFormat | None, Query(
    alias="format", description="`xlsx`, `csv` (UTF-8 with BOM) or `json`; default: from `Accept`, else XLSX.")]
AcceptHeader = Annotated[str | None, Header(include_in_schema=False)]
SupplyUnit = Annotated[Line | None, Query(max_length=200, description="Only grid areas whose 供电单位 (supply company) "
                                                                      "or 供电所 (supply station) is this name.")]


def _table_content() -> dict[str, Any]:
    return {MEDIA_TYPES[ReportFormat.XLSX]: {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}}}


_AUTH = {401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
         403: {"description": "Not a customer manager, planner or admin (`FORBIDDEN`)."}}


def _filter(user: AuthenticatedUser, date_from: date | None, date_to: date | None,
            supply_unit: str | None) -> ReportFilter:
    scope = grid_area_scope(user)
    return ReportFilter(date_from=date_from if date_from is not None and date_from > _FIRST_DAY else None,
                        date_to=date_to if date_to is not None and date_to < _LAST_DAY else None,
                        supply_unit=supply_unit, grid_areas=None if scope is None else frozenset(scope))


def _stream(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(_CHUNK):
            yield chunk


def _answer(written: Written, report_format: ReportFormat, filename: str) -> StreamingResponse:
    name = f"{filename}.{report_format.value}"
    disposition = "inline" if report_format is ReportFormat.JSON else "attachment"
    return StreamingResponse(_stream(written.file), media_type=report_format.media_type, headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "X-Report-Rows": str(written.rows), "Cache-Control": "no-store"})


def _audit(session: Any, user: AuthenticatedUser, report: str, report_format: ReportFormat, where: ReportFilter,
           rows: int, **extra: Any) -> None:
    session.rollback()  # end the read (SQLite: a DEFERRED transaction) before the audit row is written
    record_change(session, actor_user_id=user.id, actor_role=str(user.role), entity="report", entity_id=report,
                  action="report_exported", before=None, after={
                      "report": report, "format": report_format.value, "rows": rows,
                      "from": where.date_from, "to": where.date_to, "supply_unit": where.supply_unit,
                      "grid_areas": sorted(where.grid_areas) if where.grid_areas is not None else "all", **extra})
    session.commit()


@router.get("/project-detail", responses={
    **_AUTH, 200: {"model": project_detail.ProjectDetailReport,
                   "description": "低压小微企业项目明细表 (annex 2): the 23 labels as the header row, the rows, a "
                                  "note row (durations in working days). JSON: the same with English keys.",
                   "content": _table_content()}})
def export_project_detail(
    user: ReportReader, session: SessionDep, settings: SettingsDep,
    date_from: Annotated[IsoDate | None, Query(alias="from", description="Accepted (业务受理) on or after this China "
                                                                         "date, `YYYY-MM-DD`.")] = None,
    date_to: Annotated[IsoDate | None, Query(alias="to", description="Accepted on or before this China date; a "
                                                                     "`to` before `from` selects nothing.")] = None,
    supply_unit: SupplyUnit = None, report_format: FormatParam = None, accept: AcceptHeader = None,
) -> StreamingResponse:
    """Annex 2 — 低压小微企业项目明细表 (R8.1, CQ-32 四(二)2): one row per application accepted in the period.

    Every application is listed (全口径), cancelled ones too (no power-on time). Durations 全流程时长 and
    配套工程时长 are working days on the statutory calendar (the note row says so); times are Asia/Shanghai.
    A customer manager gets the applications of their grid areas. XLSX is streamed (openpyxl write-only).
    """
    read_only_connection(session)  # the rows are a read; the audit row commits after them
    chosen = negotiate(report_format, accept, ReportFormat.XLSX)
    where = _filter(user, date_from, date_to, supply_unit)
    power_factor = get_profile(settings.profile).power_factor.value
    calendar = work_calendar()
    rows = (project_detail.build_row(record, calendar, power_factor=power_factor)
            for record in project_records(session, where))
    table = Table(title_zh=project_detail.TITLE_ZH, columns=project_detail.COLUMNS,
                  notes=project_detail.notes(power_factor), widths=project_detail.WIDTHS, meta={
                      "report": "project_detail", "from": _iso(where.date_from), "to": _iso(where.date_to),
                      "supply_unit": supply_unit, "generated_at": datetime.now(UTC).isoformat(),
                      "duration_unit": "working_days"})
    written = write(table, rows, chosen)
    _audit(session, user, "project_detail", chosen, where, written.rows)
    period = f"{_iso(where.date_from) or '起'}_{_iso(where.date_to) or '今'}"
    return _answer(written, chosen, f"{project_detail.TITLE_ZH}_{period}")


@router.get("/roster", responses={
    **_AUTH, 200: {"model": roster.RosterReport,
                   "description": '"1+1"双经理情况统计 (annex 1): one row per grid area with its two managers.',
                   "content": _table_content()}})
def export_roster(user: ReportReader, session: SessionDep, supply_unit: SupplyUnit = None,
                  report_format: FormatParam = None, accept: AcceptHeader = None) -> StreamingResponse:
    """Annex 1 — "1+1"双经理情况统计 (CQ-32 四(二)1; R5.1): 序号, 供电单位, 供电所, 服务片区（行政区域）, 是否营配融合,
    营销客户经理, 配电项目经理. XLSX unless `format` or `Accept` asks for CSV or JSON."""
    read_only_connection(session)
    chosen = negotiate(report_format, None if report_format else accept, ReportFormat.XLSX)
    where = _filter(user, None, None, supply_unit)
    rows = roster.build_rows(roster_records(session, where))
    table = Table(title_zh=roster.TITLE_ZH, columns=roster.COLUMNS, notes=roster.notes(), widths=roster.WIDTHS,
                  meta={"report": "roster", "supply_unit": supply_unit,
                        "generated_at": datetime.now(UTC).isoformat()})
    written = write(table, rows, chosen)
    _audit(session, user, "roster", chosen, where, written.rows)
    return _answer(written, chosen, "1+1双经理情况统计")


class AssessmentFormat(StrEnum):
    """The formats of the self-assessment: a JSON object, or an XLSX sheet of one line per figure."""

    XLSX = "xlsx"
    JSON = "json"


Month = Annotated[str, Query(pattern=r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$", examples=["2026-11"],
                             description="The month assessed, `YYYY-MM` (China dates): the orders energised in it.")]


@router.get("/getting-electricity", responses={
    **_AUTH, 422: {"description": "`REQUEST_INVALID`: `month` is not `YYYY-MM`."},
    200: {"model": self_assessment.SelfAssessment,
          "description": "获得电力指标月度自评: every figure next to its target from the profile. XLSX: one line per "
                         "figure (指标 · 分项 · 数值 · 单位 · 目标 · 是否达标 · 目标依据).",
          "content": {MEDIA_TYPES[ReportFormat.XLSX]: {"schema": {"type": "string", "format": "binary"}}}}})
def export_getting_electricity(
    user: ReportReader, session: SessionDep, settings: SettingsDep, month: Month, supply_unit: SupplyUnit = None,
    report_format: Annotated[AssessmentFormat | None, Query(
        alias="format", description="`json` or `xlsx`; default: from `Accept`, else XLSX.")] = None,
    accept: AcceptHeader = None,
) -> StreamingResponse:
    """Monthly self-assessment by the World Bank "Getting Electricity" method (R8.3, CQ-45 措施14).

    Over the orders energised (装表送电) in `month`: procedures (2 per order) and customer interactions from the
    audit log (flagged above the target); time per job class (count, mean, median, p90, max in working and
    calendar days, share within the profile's deadline, overdue count); the customer's cost outside the red line
    (target 0; every charged order listed); the grid company's cost in 万元; the no-outage connection rate (from
    the confirmed designs' `needs_outage`); SAIDI/SAIFI over the last 12 months — null with a warning while there
    are no reliability statistics, never 0. Each figure next to its target from the profile (docs/reporting.md).
    """
    read_only_connection(session)
    chosen = ReportFormat(negotiate(ReportFormat(report_format.value) if report_format else None, accept,
                                    ReportFormat.XLSX))
    if chosen is ReportFormat.CSV:
        chosen = ReportFormat.XLSX
    first, after = self_assessment.month_bounds(month)
    where = _filter(user, first, date.fromordinal(after.toordinal() - 1), supply_unit)
    profile = get_profile(settings.profile)
    result = self_assessment.assess(
        assessment_records(session, first, after, supply_unit=supply_unit, grid_areas=where.grid_areas),
        profile, work_calendar(), month=month, supply_unit=supply_unit, generated_at=datetime.now(UTC).isoformat())
    if chosen is ReportFormat.JSON:
        written = Written(io.BytesIO(result.model_dump_json().encode("utf-8")), result.orders)  # a few kB
    else:
        table = Table(title_zh=self_assessment.TITLE_ZH, columns=self_assessment.COLUMNS,
                      notes=self_assessment.notes(result), widths=self_assessment.WIDTHS, meta={})
        written = write_xlsx(table, self_assessment.lines(result))
        written.rows = result.orders
    _audit(session, user, self_assessment.REPORT, chosen, where, result.orders, month=month)
    return _answer(written, chosen, f"{self_assessment.TITLE_ZH}_{month}")


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None
