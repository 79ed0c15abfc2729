"""Customer applications (R1): apply and sign, follow the timeline, add documents, cancel; admin queue (R5.1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, select

from app.identity.auth import (
    AdminUser,
    AuthenticatedUser,
    CurrentUser,
    Role,
    grid_area_scope,
    require_roles,
)
from app.lifecycle import errors as lifecycle_errors
from app.lifecycle import states as service
from app.lifecycle import views
from app.lifecycle.contracts import current_contract
from app.lifecycle.states import Actor, ApplicationForm, ApplicationStatus, load_visible
from app.network.deps import SitingEngineDep
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, SettingsDep
from app.platform.forms import JsonPart, parse_json_field
from app.platform.idempotency import IdempotencyDep
from app.platform.models import Application, AssignmentQueueItem
from app.platform.params import JSON_INTEGER, Id, Line, Offset, Text
from app.platform.uploads import StoredFile, store_upload
from app.settings import Settings
from design_rules.profiles import DocumentKind

router = APIRouter(prefix="/api/v1/applications", tags=["applications"])
admin_router = APIRouter(prefix="/api/v1/admin/unassigned", tags=["admin"])


CustomerUser = Annotated[AuthenticatedUser, Depends(require_roles(Role.CUSTOMER))]
ApplicationReader = Annotated[AuthenticatedUser, Depends(require_roles(
    Role.CUSTOMER, Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER))]
CustomerOrManager = Annotated[AuthenticatedUser, Depends(require_roles(Role.CUSTOMER, Role.CUSTOMER_MANAGER))]
ApplicationId = Annotated[Id, Path(description="Application id.")]

_AUTH = {401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
         403: {"description": "Wrong role, not your application, or outside your grid areas (`FORBIDDEN`)."}}
_NOT_FOUND = {404: {"description": "`APPLICATION_NOT_FOUND`."}}
_IDEMPOTENCY = {409: {"description": "`IDEMPOTENCY_IN_PROGRESS`, or a state error (`APPLICATION_CLOSED`, …)."}}


def _is_staff(user: AuthenticatedUser) -> bool:
    return user.role is not Role.CUSTOMER


def _store(upload: UploadFile | None, settings: Settings, field: str) -> StoredFile | None:
    if upload is None or (not upload.filename and upload.size == 0):
        return None
    return store_upload(upload.file, upload.filename, data_dir=settings.data_dir, max_bytes=settings.upload_max_bytes,
                        field=field)


@router.get("/contract", responses=_AUTH)
def read_contract(user: CurrentUser) -> dict[str, Any]:
    """The supply contract a new application accepts: version, text and the SHA-256 to send back (R1.4)."""
    contract = current_contract()
    return {"version": contract.version, "title_zh": contract.title_zh, "text_zh": contract.text_zh,
            "sha256": contract.sha256}


@router.post("", status_code=201, responses={
    **_AUTH, **_IDEMPOTENCY,
    201: {"description": "The accepted application with its timeline, promised power-on date and design."},
    413: {"description": "`UPLOAD_TOO_LARGE`."}, 415: {"description": "`UPLOAD_TYPE_UNSUPPORTED` (PDF/JPEG/PNG)."},
    422: {"description": "`CONTRACT_MISMATCH`, `DOCUMENT_MISSING`, `NOT_ELIGIBLE` (reasons in details), "
                         "`OUT_OF_SERVICE_AREA`, `REQUEST_INVALID`, …"},
})
def create_application(
    user: CustomerUser, session: SessionDep, settings: SettingsDep, engine: SitingEngineDep, idem: IdempotencyDep,
    application: Annotated[str, Form(description="The application as JSON (`ApplicationForm`: identity, address, "
                                                 "meter-box pin with its crs, kW, phases, category, industry, "
                                                 "urban/rural, contract_version and contract_sha256)."),
                           JsonPart(ApplicationForm)],
    identity_document: Annotated[UploadFile, File(description="ID card or business licence (PDF/JPEG/PNG).")],
    property_document: Annotated[UploadFile | None, File(
        description="Proof of the address's property rights; may follow later (容缺受理).")] = None,
) -> JSONResponse:
    """Apply and sign in one step (申请签约, R1.1–R1.4).

    Checks eligibility, designs the connection (source, job class, cost, deadlines), books the capacity on the
    chosen transformer, plans the internal steps and assigns the grid area's 1+1 team, all at once. Answers the
    application with its timeline and the promised power-on date. Honours `Idempotency-Key`.
    """
    form: ApplicationForm = parse_json_field(application, ApplicationForm, "application")

    def action() -> tuple[int, dict[str, Any], dict[str, str]]:
        identity = _store(identity_document, settings, "identity_document")
        proof = _store(property_document, settings, "property_document")
        row = service.submit_application(session, engine, settings, customer=user, form=form, identity=identity,
                                         property_proof=proof, now=datetime.now(UTC))
        body = views.application_json(session, row, settings, staff=False)
        return 201, body, {"Location": f"/api/v1/applications/{row.id}"}

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response


def _list_query(user: AuthenticatedUser) -> Select[tuple[Application]]:
    query = select(Application)
    if user.role is Role.CUSTOMER:
        return query.where(Application.customer_user_id == user.id)
    scope = grid_area_scope(user)
    if scope is not None:
        query = query.where(Application.grid_area_code.in_(sorted(scope)))
    return query


@router.get("", responses=_AUTH)
def list_applications(
    user: ApplicationReader, session: SessionDep, settings: SettingsDep,
    status: Annotated[ApplicationStatus | None, Query(description="Only applications in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Offset, Query()] = 0,
) -> dict[str, Any]:
    """Applications you may see: a customer's own, a manager's grid areas, all for admins; newest first."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    query = _list_query(user)
    if status is not None:
        query = query.where(Application.status == status.value)
    rows = session.scalars(query.order_by(Application.id.desc()).limit(limit).offset(offset))
    return {"items": [{
        "id": a.id, "status": a.status, "applicant_name": a.applicant_name, "address": a.address,
        "kw": a.requested_kw, "job_class": a.job_class, "grid_area_code": a.grid_area_code,
        "promised_power_on": a.promised_power_on.isoformat() if a.promised_power_on else None,
        "created_at": a.created_at.isoformat() if a.created_at else None} for a in rows],
        "limit": limit, "offset": offset}


@router.get("/{application_id}", responses={**_AUTH, **_NOT_FOUND})
def read_application(application_id: ApplicationId, user: ApplicationReader, session: SessionDep,
                     settings: SettingsDep) -> dict[str, Any]:
    """The application and its timeline: the customer's two procedures (申请签约, 施工接电) and every internal
    step (R5.2) with its deadline, actual completion time and deadline status."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    application = load_visible(session, user, application_id)
    return views.application_json(session, application, settings, staff=_is_staff(user))


@router.post("/{application_id}/documents", status_code=201, responses={
    **_AUTH, **_NOT_FOUND, **_IDEMPOTENCY, 413: {"description": "`UPLOAD_TOO_LARGE`."},
    415: {"description": "`UPLOAD_TYPE_UNSUPPORTED`."}})
def add_document(application_id: ApplicationId, user: CustomerOrManager, session: SessionDep, settings: SettingsDep,
                 idem: IdempotencyDep,
                 kind: Annotated[DocumentKind, Form(description="`identity` or `property_proof`.")],
                 document: Annotated[UploadFile, File(description="PDF, JPEG or PNG.")]) -> JSONResponse:
    """Add a document later (容缺受理: the property proof before power-on). Honours `Idempotency-Key`."""
    application = load_visible(session, user, application_id)

    def action() -> tuple[int, dict[str, Any]]:
        stored = _store(document, settings, "document")
        if stored is None:
            raise lifecycle_errors.DocumentMissingError("The document file is empty.", field="document")
        row = service.add_document(session, settings, application, kind, stored, actor=Actor.of(user),
                                   now=datetime.now(UTC))
        return 201, {"id": row.id, "kind": row.kind, "filename": row.filename, "sha256": row.sha256,
                     "size_bytes": row.size_bytes, "documents_complete": application.documents_complete}

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response


class CancelRequest(BaseModel):
    """Why the application is cancelled."""

    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, max_length=500)


@router.post("/{application_id}/cancel", responses={**_AUTH, **_NOT_FOUND, **_IDEMPOTENCY})
def cancel_application(application_id: ApplicationId, body: CancelRequest, user: CustomerOrManager, session: SessionDep,
                       settings: SettingsDep, idem: IdempotencyDep) -> JSONResponse:
    """Cancel an open application (its customer, a customer manager of its area, or an admin); the capacity
    booked on its transformer is released. Honours `Idempotency-Key`."""
    application = load_visible(session, user, application_id)

    def action() -> tuple[int, dict[str, Any]]:
        service.cancel_application(session, application, reason=body.reason, actor=Actor.of(user),
                                   now=datetime.now(UTC))
        return 200, views.application_json(session, application, settings, staff=_is_staff(user))

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response


# --- admin assignment queue (R5.1) ----------------------------------------------------------------------------


@admin_router.get("", responses=_AUTH)
def list_unassigned(user: AdminUser, session: SessionDep) -> dict[str, Any]:
    """Applications waiting for a 1+1 team: the pin lies in no grid area, or the area has no team."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    rows = session.execute(select(AssignmentQueueItem, Application)
                           .join(Application, Application.id == AssignmentQueueItem.application_id)
                           .where(AssignmentQueueItem.resolved_at.is_(None))
                           .order_by(AssignmentQueueItem.queued_at, AssignmentQueueItem.id)).all()
    return {"items": [{"application_id": a.id, "reason": item.reason, "queued_at": item.queued_at.isoformat(),
                       "applicant_name": a.applicant_name, "address": a.address, "kw": a.requested_kw,
                       "pin": {"lon": a.pin_lon, "lat": a.pin_lat, "crs": a.pin_crs},
                       "grid_area_code": a.grid_area_code, "status": a.status} for item, a in rows]}


class AssignRequest(BaseModel):
    """An admin's assignment: the grid area, and optionally the two people (default: the area's team)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grid_area_code": "CQ-YB-01"}]})

    grid_area_code: Line = Field(min_length=1, max_length=64)
    customer_manager_user_id: Annotated[Id, JSON_INTEGER] | None = None
    project_manager_user_id: Annotated[Id, JSON_INTEGER] | None = None


@admin_router.post("/{application_id}/assign", responses={
    **_AUTH, **_NOT_FOUND, 422: {"description": "`ASSIGNMENT_INVALID`."},
    409: {"description": "`APPLICATION_ALREADY_ASSIGNED` (this grid area and team already), `APPLICATION_CLOSED`, "
                         "`IDEMPOTENCY_IN_PROGRESS`."}})
def assign_application(application_id: ApplicationId, body: AssignRequest, user: AdminUser, session: SessionDep,
                       settings: SettingsDep, idem: IdempotencyDep) -> JSONResponse:
    """Assign a queued application to a grid area and its customer manager and project manager (or re-assign an
    open one to another team; the same assignment twice answers 409 `APPLICATION_ALREADY_ASSIGNED`)."""
    application = service.get_application(session, application_id)

    def action() -> tuple[int, dict[str, Any]]:
        service.assign_by_admin(session, application, grid_area_code=body.grid_area_code,
                                customer_manager_user_id=body.customer_manager_user_id,
                                project_manager_user_id=body.project_manager_user_id, actor=Actor.of(user),
                                now=datetime.now(UTC))
        return 200, views.application_json(session, application, settings, staff=True)

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response
