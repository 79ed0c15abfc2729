"""Project manager's mobile terminal (R5): work queue, survey package, adjustments, confirmation, stage reports.

Every mutating call honours ``Idempotency-Key`` (a retried request on a weak network replays the first
answer) and changes to a design need ``If-Match`` with its ETag (two devices never overwrite each other).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Path, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.design.service import design_etag, design_json, load_design
from app.design.survey import survey_package
from app.identity.auth import AuthenticatedUser, Role, require_roles
from app.lifecycle import errors as lifecycle_errors
from app.lifecycle import states as service
from app.lifecycle import views
from app.lifecycle.states import Actor, ApplicationStatus, GpsFix, SurveyAdjustment, load_visible
from app.network.deps import SitingEngineDep
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, SettingsDep
from app.platform.forms import JsonPart, parse_json_field
from app.platform.idempotency import IdempotencyDep
from app.platform.models import Application
from app.platform.params import Id, Line, Text
from app.platform.uploads import StoredFile, store_upload
from design_rules.deadline_watch import DeadlineStatus
from design_rules.profiles import StepCode

router = APIRouter(prefix="/api/v1/terminal", tags=["terminal"])

ProjectManager = Annotated[AuthenticatedUser, Depends(require_roles(Role.PROJECT_MANAGER))]
QueueUser = Annotated[AuthenticatedUser, Depends(require_roles(Role.PROJECT_MANAGER, Role.CUSTOMER_MANAGER))]
JobId = Annotated[Id, Path(description="Application id.")]
IfMatch = Annotated[str | None, Header(description="ETag of the design version the change starts from.")]

#: Photos per stage report.
MAX_PHOTOS = 10
#: Gzip a JSON answer above this size when the client accepts it (a phone on a weak network).
GZIP_MIN_BYTES = 1024
_RISK_ORDER = {DeadlineStatus.OVERDUE: 0, DeadlineStatus.AT_RISK: 1, DeadlineStatus.ON_TIME: 2}

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "`UNAUTHENTICATED`."},
    403: {"description": "`FORBIDDEN`: not a project manager, or the job is outside your grid areas."},
    404: {"description": "`APPLICATION_NOT_FOUND`."},
    409: {"description": "`STEP_OUT_OF_ORDER`, `STEP_ALREADY_COMPLETED`, `STEP_NOT_IN_PLAN`, `CONFIRM_REQUIRED`, "
                         "`DESIGN_FROZEN`, `APPLICATION_NOT_ASSIGNED`, `APPLICATION_CLOSED`, `CAPACITY_TAKEN`, "
                         "`CONSTRUCTION_ALREADY_STARTED`, "
                         "`IDEMPOTENCY_IN_PROGRESS`."},
    412: {"description": "`DESIGN_VERSION_CONFLICT`: If-Match is not the latest version."},
    428: {"description": "`IF_MATCH_REQUIRED`."},
}


def _job(session: Any, user: AuthenticatedUser, job_id: int) -> Application:
    return load_visible(session, user, job_id)


@router.get("/queue", responses=_ERRORS)
def read_work_queue(user: QueueUser, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """My open jobs, most urgent first: overdue, then at risk (≤ 1 working day left), then by deadline.

    A project manager sees the jobs assigned to them, a customer manager the applications they own; admins see
    every job in progress. Each item names its current step and that step's deadline.
    """
    read_only_connection(session)  # a read: never waits for a writer's lock
    query = select(Application).where(Application.status == ApplicationStatus.IN_PROGRESS.value)
    if user.role is Role.PROJECT_MANAGER:
        query = query.where(Application.project_manager_user_id == user.id)
    elif user.role is Role.CUSTOMER_MANAGER:
        query = query.where(Application.customer_manager_user_id == user.id)
    today = service.china_date(datetime.now(UTC))
    items = []
    for application in session.scalars(query):
        step = views.current_step(service.steps_of(session, application))
        if step is None:
            continue
        risk = views.live_status(step, today, settings)
        items.append({
            "application_id": application.id, "applicant_name": application.applicant_name,
            "address": application.address, "job_class": application.job_class,
            "grid_area_code": application.grid_area_code, "current_step": step.step_code,
            "current_step_name_zh": StepCode(step.step_code).label_zh, "deadline": step.deadline.isoformat(),
            "deadline_status": risk.value,
            "promised_power_on": application.promised_power_on.isoformat() if application.promised_power_on else None,
            "design_confirmed": application.confirmed_design_version is not None,
        })
    items.sort(key=lambda i: (_RISK_ORDER[DeadlineStatus(i["deadline_status"])], i["deadline"], i["application_id"]))
    return {"today": today.isoformat(), "items": items}


def _maybe_gzip(request: Request, body: dict[str, Any], headers: dict[str, str]) -> Response:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {**headers, "Vary": "Accept-Encoding"}
    if len(raw) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gzip.compress(raw, compresslevel=6), media_type="application/json",
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(raw, media_type="application/json", headers=headers)


@router.get("/jobs/{job_id}/survey-package", responses=_ERRORS)
def read_survey_package(job_id: JobId, request: Request, user: ProjectManager, session: SessionDep,
                        engine: SitingEngineDep) -> Response:
    """Everything the site visit needs in one compact answer (gzip when accepted).

    The job, the latest design with its `ETag`, the route, the other feasible candidates, the drawing as
    GeoJSON, the BOM as rows, and the existing assets within 300 m (transformers with load, access points,
    LV lines, roads, no-overhead zones). Coordinates are WGS-84 rounded to 1e-6°.
    """
    read_only_connection(session)  # a read: never waits for a writer's lock
    application = _job(session, user, job_id)
    if application.design_id is None:
        raise lifecycle_errors.ApplicationNotFoundError("The application has no design.", application_id=job_id)
    design = load_design(session, application.design_id)
    snapshot = engine.snapshot(session.connection())
    body = survey_package(snapshot, engine, application, design)
    return _maybe_gzip(request, body, {"ETag": design_etag(design)})


@router.post("/jobs/{job_id}/adjustments", status_code=201, responses={
    **_ERRORS, 201: {"description": "The new design version (`ETag` names it)."}})
def adjust_design(job_id: JobId, adjustment: SurveyAdjustment, user: ProjectManager, session: SessionDep,
                  settings: SettingsDep, engine: SitingEngineDep, idem: IdempotencyDep,
                  if_match: IfMatch = None) -> JSONResponse:
    """Survey adjustment: move the meter box, mark obstacles or no-overhead stretches, or choose another candidate.

    Adds a design version (the earlier ones stay), moves the capacity booking to the new source, and
    re-plans the open steps (e.g. 行政审批 appears when the road must now be dug). Needs `If-Match`.
    """
    application = _job(session, user, job_id)

    def action() -> tuple[int, dict[str, Any], dict[str, str]]:
        row = service.adjust_design(session, engine, settings, application, adjustment, if_match=if_match,
                                    actor=Actor.of(user), now=datetime.now(UTC))
        return 201, design_json(row), {"ETag": design_etag(row)}

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response


@router.post("/jobs/{job_id}/confirm", responses={
    **_ERRORS, 200: {"description": "The frozen version and the materials request (with the stock check)."}})
def confirm_design(job_id: JobId, user: ProjectManager, session: SessionDep, settings: SettingsDep,
                   idem: IdempotencyDep, if_match: IfMatch = None) -> JSONResponse:
    """Confirm the design after the survey: freeze the version and its BOM, request the materials (R5.5) and
    complete 外线设计并生成物料清单. Needs `If-Match` naming the latest version."""
    application = _job(session, user, job_id)

    def action() -> tuple[int, dict[str, Any]]:
        request = service.confirm_design(session, settings, application, if_match=if_match, actor=Actor.of(user),
                                         now=datetime.now(UTC))
        return 200, {"application_id": application.id, "design_id": request.design_id,
                     "confirmed_version": request.design_version,
                     "materials_request": {"id": request.id, "total_cny": request.total_cny,
                                           "lines": len(request.lines), "stock_check": request.stock_check,
                                           "requested_at": request.requested_at.isoformat()}}

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response


@router.post("/jobs/{job_id}/construction-start", responses={
    **_ERRORS, 200: {"description": "The recorded start of construction (server time)."}})
def start_construction(job_id: JobId, user: ProjectManager, session: SessionDep,
                       idem: IdempotencyDep) -> JSONResponse:
    """Record that construction (接入工程施工) starts now: 工程实施时间 of the project detail table (annex 2 #18).

    The server's clock is the time (R5.3); only while construction is the open step, and once
    (`CONSTRUCTION_ALREADY_STARTED`). Honours `Idempotency-Key`.
    """
    application = _job(session, user, job_id)

    def action() -> tuple[int, dict[str, Any]]:
        service.start_construction(session, application, actor=Actor.of(user), now=datetime.now(UTC))
        started = application.construction_started_at
        assert started is not None
        return 200, {"application_id": application.id, "construction_started_at": started.isoformat()}

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response


class StageReport(BaseModel):
    """A stage completion report. The server's clock is the completion time; ``client_time`` is a note only."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "gps": {"lon_wgs84": 106.48834, "lat_wgs84": 29.49931, "accuracy_m": 6.5},
        "client_time": "2026-12-07T10:31:00+08:00", "note": "表箱已安装"}]})

    gps: GpsFix = Field(description="The device's GPS fix when reporting.")
    client_time: Line | None = Field(default=None, max_length=64,
                                     description="The device's clock as it reads it (ISO 8601 by convention), kept "
                                                 "verbatim as a note; never used as the time.")
    note: Text | None = Field(default=None, max_length=1000)
    account_number: Line | None = Field(
        default=None, min_length=1, max_length=32, description="户号 the meter is energised under: required with "
        "`meter_and_energise` (`ACCOUNT_NUMBER_REQUIRED`), ignored with the other steps.")
    customer_charged_cny: float | None = Field(
        default=None, strict=True, ge=0, le=100_000_000, description="What the customer paid outside the red line, "
        "CNY (target 0; default 0), with `meter_and_energise`; ignored with the other steps.")


def _photos(photos: list[UploadFile] | None, user_settings: Any) -> list[StoredFile]:
    files = [p for p in photos or [] if p.filename or p.size]
    if len(files) > MAX_PHOTOS:
        raise lifecycle_errors.PhotoRequiredError(f"At most {MAX_PHOTOS} photos per report.", field="photos")
    return [store_upload(p.file, p.filename, data_dir=user_settings.data_dir, max_bytes=user_settings.upload_max_bytes,
                         field="photos") for p in files]


@router.post("/jobs/{job_id}/steps/{step_code}", responses={
    **_ERRORS, 200: {"description": "The completed step, with the server's completion time."}})
def report_step(
    job_id: JobId, step_code: StepCode, user: ProjectManager, session: SessionDep, settings: SettingsDep,
    idem: IdempotencyDep,
    report: Annotated[str, Form(description="`StageReport` as JSON: `gps` {lon_wgs84, lat_wgs84, accuracy_m}, "
                                            "optional `client_time` and `note`."), JsonPart(StageReport)],
    photos: Annotated[list[UploadFile] | None, File(description="Site photos (JPEG/PNG/PDF); required for "
                                                                "construction and meter_and_energise.")] = None,
) -> JSONResponse:
    """Report a stage as completed now (R5.3: no back-dating; out-of-order reports answer `STEP_OUT_OF_ORDER`).

    `meter_and_energise` powers the application on. `design_and_bom` is completed by `/confirm`.
    """
    stage: StageReport = parse_json_field(report, StageReport, "report")
    application = _job(session, user, job_id)

    def action() -> tuple[int, dict[str, Any]]:
        stored = _photos(photos, settings)
        step = service.report_step(session, settings, application, step_code, gps=stage.gps, photos=stored,
                                   client_time=stage.client_time, note=stage.note, actor=Actor.of(user),
                                   now=datetime.now(UTC), account_number=stage.account_number,
                                   customer_charged_cny=stage.customer_charged_cny)
        return 200, {"application_id": application.id, "application_status": application.status,
                     **views.step_json(step, service.china_date(datetime.now(UTC)), settings, staff=True)}

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response
