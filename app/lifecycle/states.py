"""The application state machine (R1, R5): intake, 1+1 assignment, survey adjustment, confirm, stages, cancel.

Service functions over the request's session; they flush but never commit (the route commits once, so an
application, its design, its capacity booking, its steps and its audit rows succeed or fail together).
Every transition of an existing application starts with :func:`lock_for_transition`, so of N concurrent
identical requests exactly one passes its checks and the others answer 409 (docs/lifecycle.md, "Locking").
States, steps and rules: docs/lifecycle.md.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.design.service import (
    DesignRequest,
    check_if_match,
    create_design,
    load_design,
    work_calendar,
)
from app.identity.auth import AuthenticatedUser, Role, require_grid_area, require_owner
from app.lifecycle.contracts import check_acceptance
from app.lifecycle.errors import (
    AccountNumberRequiredError,
    AlreadyAssignedError,
    ApplicationClosedError,
    ApplicationNotFoundError,
    AssignmentInvalidError,
    ConfirmRequiredError,
    ConstructionAlreadyStartedError,
    DesignFrozenError,
    DocumentMissingError,
    NotAssignedError,
    PhotoRequiredError,
    StepAlreadyCompletedError,
    StepNotInPlanError,
    StepOutOfOrderError,
)
from app.lifecycle.forms import ApplicationForm, GpsFix, SurveyAdjustment
from app.network.reservations import CapacityTakenError, move_reservation, release_reservation, target_for_design
from app.network.siting import SitingEngine
from app.platform.audit import as_utc, record_change, snapshot
from app.platform.models import (
    Application,
    ApplicationDocument,
    ApplicationStep,
    AssignmentQueueItem,
    Design,
    GridArea,
    MaterialsRequest,
    User,
)
from app.platform.uploads import StoredFile
from app.settings import Settings
from design_rules.deadline_watch import deadline_status
from design_rules.profiles import DocumentKind, StepCode, get_profile
from design_rules.schedule import CHINA_TZ

#: A design is recomputed at most this often when its transformer was booked by someone else meanwhile.
DESIGN_ATTEMPTS = 3
#: The step completed by the confirm call, not by a stage report.
CONFIRM_STEP = StepCode.DESIGN_AND_BOM


class ApplicationStatus(StrEnum):
    """Where an application stands (docs/lifecycle.md)."""

    AWAITING_ASSIGNMENT = "awaiting_assignment"
    IN_PROGRESS = "in_progress"
    POWERED_ON = "powered_on"
    CANCELLED = "cancelled"


OPEN_STATUSES = frozenset({ApplicationStatus.AWAITING_ASSIGNMENT, ApplicationStatus.IN_PROGRESS})


class QueueReason(StrEnum):
    """Why an application waits in the admin assignment queue."""

    NO_GRID_AREA = "no_grid_area"
    NO_TEAM = "no_team"




@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit log."""

    user_id: int | None
    role: str | None

    @classmethod
    def of(cls, user: AuthenticatedUser) -> Actor:
        """The actor of an authenticated request."""
        return cls(user.id, str(user.role))


SYSTEM = Actor(None, None)


def china_date(moment: datetime) -> date:
    """The Asia/Shanghai calendar date of a moment (deadlines are days in China)."""
    return as_utc(moment).astimezone(CHINA_TZ).date()


def _audit(session: Session, actor: Actor, application: Application, action: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    record_change(session, actor_user_id=actor.user_id, actor_role=actor.role, entity="application",
                  entity_id=str(application.id), action=action, before=before, after=after)


def _state(application: Application) -> dict[str, Any]:
    return snapshot(application, exclude=("identity_number",))


# --- loading and scope ----------------------------------------------------------------------------------------


def get_application(session: Session, application_id: int) -> Application:
    """The application, or ``APPLICATION_NOT_FOUND``."""
    application = session.get(Application, application_id)
    if application is None:
        raise ApplicationNotFoundError(application_id=application_id)
    return application


def load_visible(session: Session, user: AuthenticatedUser, application_id: int) -> Application:
    """The application if the caller may see it: customers their own, managers their grid areas, admins all."""
    application = get_application(session, application_id)
    if user.role is Role.CUSTOMER:
        require_owner(user, application.customer_user_id)
    else:
        require_grid_area(user, application.grid_area_code)
    return application


def lock_for_transition(session: Session, application: Application) -> Application:
    """Re-read ``application`` under ``SELECT … FOR UPDATE`` before a transition checks and changes its state.

    PostgreSQL: a concurrent transition of the same application waits here until the first one commits (or
    rolls back) and then reads the row that one left, so of N identical transitions exactly one passes the
    state checks that follow and the others answer 409; the lock is held to the end of the transaction, and
    it is taken before the transformer rows of a booking (app.network.reservations), so the two never
    deadlock. SQLite renders no FOR UPDATE: the transaction holds the database's write lock since its
    ``BEGIN IMMEDIATE``, and the refresh makes the checks read the row as it is now, not the session's copy.
    """
    session.refresh(application, with_for_update=True)
    return application


def lock_or_skip(session: Session, application_id: int) -> Application | None:
    """The application re-read under ``SELECT … FOR UPDATE SKIP LOCKED``, or ``None`` while a transition holds it.

    For the periodic jobs (deadline watch, booking release): they take the lock every transition takes
    (:func:`lock_for_transition`) before they write, but never wait for it — an application locked now is seen
    by the next run. SQLite renders no FOR UPDATE: the job's transaction holds the database's write lock since
    its ``BEGIN IMMEDIATE``, so no transition runs meanwhile and the re-read is what is stored.
    """
    return session.scalar(select(Application).where(Application.id == application_id)
                          .with_for_update(skip_locked=True).execution_options(populate_existing=True))


def steps_of(session: Session, application: Application) -> list[ApplicationStep]:
    """The application's steps in process order."""
    return list(session.scalars(select(ApplicationStep).where(ApplicationStep.application_id == application.id)
                                .order_by(ApplicationStep.seq)))


def require_open(application: Application) -> None:
    """Raise unless the application is still open."""
    if application.status not in OPEN_STATUSES:
        raise ApplicationClosedError(application_id=application.id, status=application.status)


def require_assigned(application: Application) -> None:
    """Raise unless the application is open and has its 1+1 team."""
    require_open(application)
    if application.status != ApplicationStatus.IN_PROGRESS:
        raise NotAssignedError(application_id=application.id, status=application.status)


# --- design and capacity --------------------------------------------------------------------------------------


def _design_and_book(session: Session, engine: SitingEngine, settings: Settings, application: Application,
                     request: DesignRequest, *, design_id: str | None, accepted_at: datetime,
                     now: datetime, based_on_version: int | None = None) -> Design:
    """Compute and store a design version and move the application's booking onto its transformer.

    When the transformer was booked full by someone else since this worker's snapshot (``CAPACITY_TAKEN``),
    the booking's generation bump makes the next attempt site on the new state, so it picks the next
    feasible source (or a transformer upgrade). A surveyor's explicit candidate is not replaced.
    ``based_on_version``: the version a redesign starts from (``create_design``).
    """
    for attempt in range(1, DESIGN_ATTEMPTS + 1):
        row = create_design(session, engine, settings, request, design_id=design_id, now=now,
                            accepted_at=accepted_at, based_on_version=based_on_version)
        try:
            move_reservation(session, application, target_for_design(row, settings))
        except CapacityTakenError:
            if attempt == DESIGN_ATTEMPTS or request.transformer_asset_id is not None:
                raise
            session.execute(delete(Design).where(Design.id == row.id))
            continue
        return row
    raise AssertionError("unreachable")  # the loop returns or raises


def _plan_steps(session: Session, application: Application, design: Design, *, today: date,
                settings: Settings) -> None:
    """Create or update the steps from the design's schedule (R5.2); completed steps keep their record.

    A redesign may add 行政审批 (the road is now dug) or drop it; deadlines of open steps follow the
    new schedule, which still counts from the original acceptance.
    """
    planned = design.result["schedule"]["steps"]
    existing = {step.step_code: step for step in steps_of(session, application)}
    wanted = {item["step_code"] for item in planned}
    for code, step in existing.items():
        if code not in wanted:
            if step.completed_at is not None:
                raise StepNotInPlanError("A completed step cannot leave the plan.", step_code=code)
            session.delete(step)
    calendar = work_calendar()
    for seq, item in enumerate(planned, start=1):
        step = existing.get(item["step_code"])
        if step is None:
            step = ApplicationStep(application_id=application.id, step_code=item["step_code"], photos=[])
            session.add(step)
        step.seq = seq
        if step.completed_at is None:
            step.starts_on = date.fromisoformat(item["starts_on"])
            step.deadline = date.fromisoformat(item["deadline"])
            step.deadline_status = deadline_status(step.deadline, today, calendar,
                                                   at_risk_working_days=settings.deadline_at_risk_working_days)
    application.job_class = design.job_class
    application.promised_power_on = date.fromisoformat(design.result["schedule"]["promised_power_on"])
    session.flush()


# --- 1+1 assignment (R5.1) ------------------------------------------------------------------------------------


def _manager(users: Sequence[User], role: Role, code: str, named: str | None) -> User | None:
    """The area's manager of ``role``: active users of that role listing ``code``; the one named in
    ``grid_areas`` (full name or username) first, else the lowest id."""
    candidates = sorted((u for u in users if u.role == role and code in (u.grid_area_codes or [])),
                        key=lambda u: u.id)
    for user in candidates:
        if named and named in (user.full_name, user.username):
            return user
    return candidates[0] if candidates else None


def team_for_area(session: Session, code: str) -> tuple[User | None, User | None]:
    """The 1+1 team (customer manager, project manager) of a grid area (docs/lifecycle.md "Assignment")."""
    area = session.scalar(select(GridArea).where(GridArea.code == code))
    users = list(session.scalars(select(User).where(
        User.is_active.is_(True), User.role.in_([Role.CUSTOMER_MANAGER.value, Role.PROJECT_MANAGER.value]))))
    return (_manager(users, Role.CUSTOMER_MANAGER, code, area.customer_manager if area else None),
            _manager(users, Role.PROJECT_MANAGER, code, area.project_manager if area else None))


def _assign_automatically(session: Session, application: Application, *, now: datetime) -> None:
    code = application.grid_area_code
    customer_manager, project_manager = team_for_area(session, code) if code else (None, None)
    if customer_manager is not None and project_manager is not None:
        application.customer_manager_user_id = customer_manager.id
        application.project_manager_user_id = project_manager.id
        application.assigned_at, application.assigned_by = now, "grid_area"
        application.status = ApplicationStatus.IN_PROGRESS
        return
    application.status = ApplicationStatus.AWAITING_ASSIGNMENT
    reason = QueueReason.NO_TEAM if code else QueueReason.NO_GRID_AREA
    session.add(AssignmentQueueItem(application_id=application.id, reason=reason, queued_at=now))


def assign_by_admin(session: Session, application: Application, *, grid_area_code: str,
                    customer_manager_user_id: int | None, project_manager_user_id: int | None, actor: Actor,
                    now: datetime) -> Application:
    """Assign a queued (or re-assign an open) application to a grid area's team; users default to the area's.

    Raises
    ------
    AssignmentInvalidError
        Unknown grid area, or a user who is inactive, of another role or without that grid area.
    AlreadyAssignedError
        The application is in progress with this very grid area and team already (409).
    """
    lock_for_transition(session, application)
    require_open(application)
    if session.scalar(select(GridArea.id).where(GridArea.code == grid_area_code)) is None:
        raise AssignmentInvalidError("No grid area has this code.", field="grid_area_code", value=grid_area_code)
    default_cm, default_pm = team_for_area(session, grid_area_code)
    chosen: dict[Role, User | None] = {}
    for role, user_id, default in ((Role.CUSTOMER_MANAGER, customer_manager_user_id, default_cm),
                                   (Role.PROJECT_MANAGER, project_manager_user_id, default_pm)):
        user = session.get(User, user_id) if user_id is not None else default
        if user is None or not user.is_active or user.role != role or grid_area_code not in (
                user.grid_area_codes or []):
            raise AssignmentInvalidError(
                f"No active {role.value} with grid area {grid_area_code} was named or found.",
                field=f"{role.value}_user_id", value=user_id, grid_area_code=grid_area_code)
        chosen[role] = user
    if (application.status == ApplicationStatus.IN_PROGRESS and application.grid_area_code == grid_area_code
            and application.customer_manager_user_id == chosen[Role.CUSTOMER_MANAGER].id  # type: ignore[union-attr]
            and application.project_manager_user_id == chosen[Role.PROJECT_MANAGER].id):  # type: ignore[union-attr]
        raise AlreadyAssignedError(application_id=application.id, grid_area_code=grid_area_code,
                                   customer_manager_user_id=application.customer_manager_user_id,
                                   project_manager_user_id=application.project_manager_user_id)
    before = _state(application)
    application.grid_area_code = grid_area_code
    application.customer_manager_user_id = chosen[Role.CUSTOMER_MANAGER].id  # type: ignore[union-attr]
    application.project_manager_user_id = chosen[Role.PROJECT_MANAGER].id  # type: ignore[union-attr]
    application.assigned_at, application.assigned_by = now, "admin"
    application.status = ApplicationStatus.IN_PROGRESS
    application.updated_at = now
    _resolve_queue_item(session, application, now=now, actor=actor)
    session.flush()
    _audit(session, actor, application, "assigned", before, _state(application))
    return application


def _resolve_queue_item(session: Session, application: Application, *, now: datetime, actor: Actor) -> None:
    """Close the application's open entry in the admin assignment queue, if it has one."""
    item = session.scalar(select(AssignmentQueueItem).where(AssignmentQueueItem.application_id == application.id))
    if item is not None and item.resolved_at is None:
        item.resolved_at, item.resolved_by_user_id = now, actor.user_id


# --- intake (R1) ----------------------------------------------------------------------------------------------


def _add_document(session: Session, application: Application, kind: DocumentKind, stored: StoredFile,
                  *, actor: Actor, now: datetime) -> ApplicationDocument:
    document = ApplicationDocument(
        application_id=application.id, kind=kind.value, filename=stored.filename,
        content_type=stored.content_type, size_bytes=stored.size_bytes, sha256=stored.sha256,
        storage_path=stored.storage_path, uploaded_at=now, uploaded_by_user_id=actor.user_id)
    session.add(document)
    return document


def missing_documents(session: Session, application: Application, settings: Settings) -> list[str]:
    """Required documents (profile) not yet uploaded."""
    profile = get_profile(settings.profile)
    present = set(session.scalars(select(ApplicationDocument.kind)
                                  .where(ApplicationDocument.application_id == application.id)))
    return [kind.value for kind in profile.required_documents.required if kind.value not in present]


def submit_application(session: Session, engine: SitingEngine, settings: Settings, *, customer: AuthenticatedUser,
                       form: ApplicationForm, identity: StoredFile | None, property_proof: StoredFile | None,
                       now: datetime | None = None) -> Application:
    """Accept an application with its signed contract: design, book capacity, plan steps, assign the team.

    The contract is signed at application (R1.4), so 受理申请并签约 is completed at once at the server's
    time. 容缺受理 (R1.2): the identity document is required now; the property proof may follow when the
    profile lists it as deferrable.

    Raises
    ------
    CONTRACT_MISMATCH, DOCUMENT_MISSING, NOT_ELIGIBLE, CAPACITY_TAKEN, and the design errors.
    """
    now = now or datetime.now(UTC)
    contract = check_acceptance(form.contract_version, form.contract_sha256)
    profile = get_profile(settings.profile)
    if identity is None:
        raise DocumentMissingError("The identity document (ID card or business licence) is required.",
                                   field="identity_document", kind=DocumentKind.IDENTITY.value)
    if property_proof is None and DocumentKind.PROPERTY_PROOF not in profile.required_documents.deferrable:
        raise DocumentMissingError("The property proof is required.", field="property_document",
                                   kind=DocumentKind.PROPERTY_PROOF.value)
    actor = Actor.of(customer)
    application = Application(
        customer_user_id=customer.id, applicant_name=form.applicant_name, identity_kind=form.identity_kind,
        identity_number=form.identity_number, contact_phone=form.contact_phone, address=form.address,
        pin_lon=form.lon, pin_lat=form.lat, pin_crs=form.crs, requested_kw=form.kw, phases=form.phases,
        category=form.category.value, industry=form.industry, area_type=form.area_type,
        wanted_power_on=form.wanted_power_on, channel=form.channel, business_type=form.business_type,
        status=ApplicationStatus.AWAITING_ASSIGNMENT,
        documents_complete=property_proof is not None, contract_version=contract.version,
        contract_sha256=contract.sha256, contract_accepted_at=now, contract_accepted_by_user_id=customer.id,
        created_at=now, updated_at=now, reserved_kva=0.0,
        meter_box=from_shape(shapely.Point(0.0, 0.0), srid=4326),
    )
    design = _design_and_book(session, engine, settings, application, form.design_request(), design_id=None,
                              accepted_at=now, now=now)
    pin = design.result["pin"]
    application.meter_box = from_shape(shapely.Point(pin["lon_wgs84"], pin["lat_wgs84"]), srid=4326)
    application.design_id = design.design_id
    application.grid_area_code = design.result.get("grid_area_code")
    session.add(application)
    session.flush()
    _add_document(session, application, DocumentKind.IDENTITY, identity, actor=actor, now=now)
    if property_proof is not None:
        _add_document(session, application, DocumentKind.PROPERTY_PROOF, property_proof, actor=actor, now=now)
    _plan_steps(session, application, design, today=china_date(now), settings=settings)
    first = steps_of(session, application)[0]
    first.completed_at, first.completed_by_user_id = now, customer.id
    first.note = f"电子签约：{contract.version}"
    first.deadline_status = deadline_status(first.deadline, china_date(now), work_calendar(),
                                            completed_on=china_date(now))
    _assign_automatically(session, application, now=now)
    session.flush()
    _audit(session, actor, application, "created", None, _state(application))
    return application


def add_document(session: Session, settings: Settings, application: Application, kind: DocumentKind,
                 stored: StoredFile, *, actor: Actor, now: datetime) -> ApplicationDocument:
    """Add a document later (容缺: the property proof); marks the application complete when nothing is missing."""
    lock_for_transition(session, application)
    require_open(application)
    document = _add_document(session, application, kind, stored, actor=actor, now=now)
    session.flush()
    before = application.documents_complete
    application.documents_complete = not missing_documents(session, application, settings)
    application.updated_at = now
    session.flush()
    record_change(session, actor_user_id=actor.user_id, actor_role=actor.role, entity="application",
                  entity_id=str(application.id), action="document_added",
                  before={"documents_complete": before},
                  after={"documents_complete": application.documents_complete, "kind": kind.value,
                         "sha256": stored.sha256, "size_bytes": stored.size_bytes})
    return document


def cancel_application(session: Session, application: Application, *, reason: str | None, actor: Actor,
                       now: datetime) -> Application:
    """Cancel an open application and release its capacity booking (once: the second of two cancels finds it
    cancelled under the lock and answers ``APPLICATION_CLOSED``)."""
    lock_for_transition(session, application)
    require_open(application)
    before = _state(application)
    release_reservation(session, application, now=now, actor_user_id=actor.user_id, actor_role=actor.role)
    application.status = ApplicationStatus.CANCELLED
    application.cancelled_at, application.cancel_reason, application.updated_at = now, reason, now
    _resolve_queue_item(session, application, now=now, actor=actor)
    session.flush()
    _audit(session, actor, application, "cancelled", before, _state(application))
    return application


# --- terminal: survey, confirm, stages (R5) -------------------------------------------------------------------


def adjust_design(session: Session, engine: SitingEngine, settings: Settings, application: Application,
                  adjustment: SurveyAdjustment, *, if_match: str | None, actor: Actor, now: datetime) -> Design:
    """Apply a survey adjustment: a new design version, the booking moved to its transformer, steps re-planned.

    Under the application's lock the latest version is read after any concurrent adjustment committed, so of
    N adjustments with the same ``If-Match`` one adds the next version and the others answer 412.
    """
    lock_for_transition(session, application)
    require_assigned(application)
    if application.confirmed_design_version is not None:
        raise DesignFrozenError(confirmed_version=application.confirmed_design_version)
    assert application.design_id is not None
    latest = load_design(session, application.design_id)
    check_if_match(latest, if_match, required=True)
    request = adjustment.apply(latest.request)
    before = _state(application)
    design = _design_and_book(session, engine, settings, application, request, design_id=application.design_id,
                              accepted_at=as_utc(application.contract_accepted_at), now=now,
                              based_on_version=latest.version)
    pin = design.result["pin"]
    application.meter_box = from_shape(shapely.Point(pin["lon_wgs84"], pin["lat_wgs84"]), srid=4326)
    application.updated_at = now
    _plan_steps(session, application, design, today=china_date(now), settings=settings)
    _audit(session, actor, application, "design_adjusted", before,
           {**_state(application), "design_version": design.version,
            "adjustment": adjustment.model_dump(mode="json", exclude_none=True)})
    return design


@lru_cache(maxsize=4)
def _depot_stock(path: Path) -> dict[str, float]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["material_code"]: float(row["on_hand_quantity"]) for row in csv.DictReader(handle)}


def stock_check(lines: Sequence[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Check BOM quantities against the depot stock file (R5.5), if the deployment has one."""
    path = settings.depot_stock_file
    if path is None:
        return {"checked": False, "reason": "SANLING_DEPOT_STOCK_FILE is not set"}
    stock = _depot_stock(Path(path))
    shortages = [{"material_code": line["material_code"], "name_zh": line.get("name_zh"),
                  "needed": line["quantity"], "on_hand": stock.get(line["material_code"], 0.0)}
                 for line in lines if stock.get(line["material_code"], 0.0) < float(line["quantity"])]
    return {"checked": True, "depot_file": Path(path).name, "all_in_stock": not shortages, "shortages": shortages}


def _complete(step: ApplicationStep, *, actor: Actor, now: datetime, gps: GpsFix | None,
              photos: Sequence[StoredFile], client_time: str | None, note: str | None) -> None:
    step.completed_at, step.completed_by_user_id = now, actor.user_id
    if gps is not None:
        step.gps_lon_wgs84, step.gps_lat_wgs84, step.gps_accuracy_m = gps.lon_wgs84, gps.lat_wgs84, gps.accuracy_m
    step.photos = [{"filename": p.filename, "content_type": p.content_type, "size_bytes": p.size_bytes,
                    "sha256": p.sha256, "storage_path": p.storage_path} for p in photos]
    step.client_time_note = client_time[:64] if client_time else None
    step.note = note
    step.deadline_status = deadline_status(step.deadline, china_date(now), work_calendar(),
                                           completed_on=china_date(now))


def _open_step(session: Session, application: Application, code: StepCode) -> ApplicationStep:
    """The step to complete now, refusing repeats and steps out of order (R5.2, R5.3)."""
    steps = steps_of(session, application)
    step = next((s for s in steps if s.step_code == code), None)
    if step is None:
        raise StepNotInPlanError(step_code=code.value, plan=[s.step_code for s in steps])
    if step.completed_at is not None:
        raise StepAlreadyCompletedError(step_code=code.value, completed_at=as_utc(step.completed_at).isoformat())
    waiting = [s.step_code for s in steps if s.seq < step.seq and s.completed_at is None]
    if waiting:
        raise StepOutOfOrderError(step_code=code.value, waiting_for=waiting)
    return step


def confirm_design(session: Session, settings: Settings, application: Application, *, if_match: str | None,
                   actor: Actor, now: datetime) -> MaterialsRequest:
    """Freeze the latest design version and its BOM, request the materials, complete 外线设计并生成物料清单.

    Once: a second confirm waits for the first under the application's lock and answers ``DESIGN_FROZEN``.
    """
    lock_for_transition(session, application)
    require_assigned(application)
    if application.confirmed_design_version is not None:
        raise DesignFrozenError(confirmed_version=application.confirmed_design_version)
    assert application.design_id is not None
    latest = load_design(session, application.design_id)
    check_if_match(latest, if_match, required=True)
    step = _open_step(session, application, CONFIRM_STEP)
    before = _state(application)
    application.confirmed_design_version, application.confirmed_at = latest.version, now
    application.updated_at = now
    bom = latest.result["bom"]
    request = MaterialsRequest(
        application_id=application.id, design_id=latest.design_id, design_version=latest.version,
        lines=bom["lines"], total_cny=float(bom["total_cny"]), stock_check=stock_check(bom["lines"], settings),
        requested_at=now, requested_by_user_id=actor.user_id)
    session.add(request)
    _complete(step, actor=actor, now=now, gps=None, photos=(), client_time=None,
              note=f"方案确认：第 {latest.version} 版")
    session.flush()
    _audit(session, actor, application, "design_confirmed", before,
           {**_state(application), "materials_request_id": request.id})
    return request


def start_construction(session: Session, application: Application, *, actor: Actor, now: datetime) -> Application:
    """Record the start of construction (工程实施时间, annex 2 #18) now, at the server's clock (R5.3).

    Only while 接入工程施工 is the open step (its predecessors done: the materials, and 行政审批 when the road
    is dug), and once: a second call answers ``CONSTRUCTION_ALREADY_STARTED``.
    """
    lock_for_transition(session, application)
    require_assigned(application)
    _open_step(session, application, StepCode.CONSTRUCTION)
    if application.construction_started_at is not None:
        started = as_utc(application.construction_started_at).isoformat()
        raise ConstructionAlreadyStartedError(application_id=application.id, construction_started_at=started)
    application.construction_started_at, application.updated_at = now, now
    session.flush()
    _audit(session, actor, application, "construction_started", {"construction_started_at": None},
           {"construction_started_at": now})
    return application


def report_step(session: Session, settings: Settings, application: Application, code: StepCode, *, gps: GpsFix,
                photos: Sequence[StoredFile], client_time: str | None, note: str | None, actor: Actor,
                now: datetime, account_number: str | None = None,
                customer_charged_cny: float | None = None) -> ApplicationStep:
    """Record a stage as completed now (the server's clock; the device's time is a note only, R5.3).

    Once: a second report of the step waits under the application's lock and answers ``STEP_ALREADY_COMPLETED``.
    装表接电 needs the ``account_number`` (户号) the meter is energised under and keeps ``customer_charged_cny``
    (what the customer paid outside the red line, default 0); other steps ignore both.
    """
    lock_for_transition(session, application)
    require_assigned(application)
    if code == CONFIRM_STEP:
        raise ConfirmRequiredError(step_code=code.value)
    step = _open_step(session, application, code)
    if code in get_profile(settings.profile).stage_evidence.photo_required_steps and not photos:
        raise PhotoRequiredError(step_code=code.value, field="photos")
    if code == StepCode.METER_AND_ENERGISE and not application.documents_complete:
        raise DocumentMissingError("The property proof (容缺) must be uploaded before power-on.",
                                   missing=missing_documents(session, application, settings))
    if code == StepCode.METER_AND_ENERGISE and not account_number:
        raise AccountNumberRequiredError(field="report.account_number", step_code=code.value)
    before = {"step_code": step.step_code, "completed_at": None, "status": application.status}
    _complete(step, actor=actor, now=now, gps=gps, photos=photos, client_time=client_time, note=note)
    if code == StepCode.METER_AND_ENERGISE:
        application.status = ApplicationStatus.POWERED_ON
        application.powered_on_at = now
        application.account_number = account_number
        application.customer_charged_cny = customer_charged_cny or 0.0
    application.updated_at = now
    session.flush()
    _audit(session, actor, application, "step_completed", before,
           {"step_code": step.step_code, "completed_at": now, "deadline": step.deadline,
            "deadline_status": step.deadline_status, "gps": gps.model_dump(), "photos": len(photos),
            "client_time_note": step.client_time_note, "status": application.status,
            **({"account_number": application.account_number,
                "customer_charged_cny": application.customer_charged_cny}
               if code == StepCode.METER_AND_ENERGISE else {})})
    return step


