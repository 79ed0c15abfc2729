"""What the reports read from the database (the I/O edge of the reporting room)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.lifecycle.states import team_for_area
from app.platform.models import Application, ApplicationStep, AuditLog, Design, GridArea, User
from app.reporting.project_detail import ProjectRecord
from app.reporting.roster import RosterRecord
from app.reporting.self_assessment import AssessmentRecord
from design_rules.profiles import StepCode
from design_rules.schedule import CHINA_TZ

#: Rows fetched per round trip while a table streams.
BATCH_ROWS = 2_000


@dataclass(frozen=True)
class ReportFilter:
    """Which applications a report covers: accepted from ``date_from`` to ``date_to`` (China dates, both
    inclusive, either open), of one supply unit (供电单位 or 供电所), within ``grid_areas`` (None: all)."""

    date_from: date | None = None
    date_to: date | None = None
    supply_unit: str | None = None
    grid_areas: Collection[str] | None = None


def _china_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=CHINA_TZ)


def project_records(session: Session, where: ReportFilter) -> Iterator[ProjectRecord]:
    """Every application the filter covers, oldest acceptance first, read in batches (100k rows stream)."""
    construction = aliased(ApplicationStep)
    approval = aliased(ApplicationStep)
    query = (
        select(Application.id, Application.status, GridArea.supply_company, GridArea.supply_station,
               Application.account_number, Application.applicant_name, Application.address,
               Application.contact_phone, Application.channel, Application.category, Application.job_class,
               approval.id.is_not(None).label("road_dug"), Design.total_cost_cny, Application.business_type,
               Application.industry, Application.requested_kw, Application.phases,
               Application.contract_accepted_at, Application.construction_started_at,
               construction.completed_at, Application.powered_on_at,
               func.coalesce(Application.area_type, GridArea.area_type))
        .outerjoin(GridArea, GridArea.code == Application.grid_area_code)
        .outerjoin(construction, and_(construction.application_id == Application.id,
                                      construction.step_code == StepCode.CONSTRUCTION.value))
        .outerjoin(approval, and_(approval.application_id == Application.id,
                                  approval.step_code == StepCode.ADMIN_APPROVAL.value))
        .outerjoin(Design, and_(Design.design_id == Application.design_id,
                                Design.version == Application.confirmed_design_version))
        .order_by(Application.contract_accepted_at, Application.id)
    )
    if where.date_from is not None:
        query = query.where(Application.contract_accepted_at >= _china_midnight(where.date_from))
    if where.date_to is not None:
        query = query.where(Application.contract_accepted_at < _china_midnight(where.date_to + timedelta(days=1)))
    if where.supply_unit is not None:
        query = query.where(or_(GridArea.supply_company == where.supply_unit,
                                GridArea.supply_station == where.supply_unit))
    if where.grid_areas is not None:
        query = query.where(Application.grid_area_code.in_(sorted(where.grid_areas)))
    for row in session.execute(query.execution_options(yield_per=BATCH_ROWS)):
        yield ProjectRecord(*row)


def assessment_records(session: Session, month_from: date, month_after: date, *, supply_unit: str | None,
                       grid_areas: Collection[str] | None) -> Iterator[AssessmentRecord]:
    """Every order energised (装表送电) on a China date from ``month_from`` to before ``month_after``, with its
    confirmed design's cost and ``needs_outage``, and the audit log's count of its contacts with the customer (the
    application and each later document), read in batches."""
    contacts = (select(func.count()).select_from(AuditLog)
                .where(AuditLog.entity == "application", AuditLog.entity_id == cast(Application.id, String),
                       AuditLog.action.in_(("created", "document_added")))
                .scalar_subquery())
    query = (
        select(Application.id, Application.account_number, Application.applicant_name, Application.job_class,
               Application.contract_accepted_at, Application.powered_on_at, Application.customer_charged_cny,
               Design.total_cost_cny, Design.result["needs_outage"].as_boolean(), contacts)
        .outerjoin(GridArea, GridArea.code == Application.grid_area_code)
        .outerjoin(Design, and_(Design.design_id == Application.design_id,
                                Design.version == Application.confirmed_design_version))
        .where(Application.powered_on_at >= _china_midnight(month_from),
               Application.powered_on_at < _china_midnight(month_after))
        .order_by(Application.powered_on_at, Application.id)
    )
    if supply_unit is not None:
        query = query.where(or_(GridArea.supply_company == supply_unit, GridArea.supply_station == supply_unit))
    if grid_areas is not None:
        query = query.where(Application.grid_area_code.in_(sorted(grid_areas)))
    for row in session.execute(query.execution_options(yield_per=BATCH_ROWS)):
        yield AssessmentRecord(*row)


def roster_records(session: Session, where: ReportFilter) -> list[RosterRecord]:
    """Every grid area the filter covers with the names of the team the assignment would pick (active users of
    the role listing the area, the one ``grid_areas`` names first), else the names ``grid_areas`` holds."""
    query = select(GridArea).order_by(GridArea.code)
    if where.supply_unit is not None:
        query = query.where(or_(GridArea.supply_company == where.supply_unit,
                                GridArea.supply_station == where.supply_unit))
    if where.grid_areas is not None:
        query = query.where(GridArea.code.in_(sorted(where.grid_areas)))
    records = []
    for area in session.scalars(query):
        customer_manager, project_manager = team_for_area(session, area.code)
        records.append(RosterRecord(
            grid_area_code=area.code, grid_area_name=area.name, supply_company=area.supply_company,
            supply_station=area.supply_station, admin_region=area.admin_region,
            customer_manager=_name(customer_manager) or area.customer_manager,
            project_manager=_name(project_manager) or area.project_manager))
    return records


def _name(user: User | None) -> str | None:
    return None if user is None else (user.full_name or user.username)
