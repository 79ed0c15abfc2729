"""How an application is shown: its timeline of steps and procedures, for the customer or for staff (R1.4, R5.2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.design.service import work_calendar
from app.lifecycle.states import china_date, missing_documents, steps_of
from app.platform.audit import as_utc
from app.platform.models import Application, ApplicationDocument, ApplicationStep, Design, User
from app.settings import Settings
from design_rules.deadline_watch import DeadlineStatus, deadline_status
from design_rules.profiles import StepCode


def current_step(steps: Sequence[ApplicationStep]) -> ApplicationStep | None:
    """The first open step (None once every step is done)."""
    return next((s for s in steps if s.completed_at is None), None)


def live_status(step: ApplicationStep, today: date, settings: Settings) -> DeadlineStatus:
    """The step's deadline status as of ``today`` (the stored one may lag until the watch job runs)."""
    completed_on = china_date(step.completed_at) if step.completed_at is not None else None
    return deadline_status(step.deadline, today, work_calendar(), completed_on=completed_on,
                           at_risk_working_days=settings.deadline_at_risk_working_days)


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def _user_card(session: Session, user_id: int | None) -> dict[str, Any] | None:
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        return None
    return {"user_id": user.id, "username": user.username, "full_name": user.full_name, "phone": user.phone}


def step_json(step: ApplicationStep, today: date, settings: Settings, *, staff: bool) -> dict[str, Any]:
    """One step of the timeline; GPS and photos only for staff."""
    data: dict[str, Any] = {
        "seq": step.seq, "step_code": step.step_code, "name_zh": StepCode(step.step_code).label_zh,
        "starts_on": step.starts_on.isoformat(), "deadline": step.deadline.isoformat(),
        "completed_at": _iso(step.completed_at),
        "deadline_status": live_status(step, today, settings).value,
    }
    if staff:
        data.update({
            "completed_by_user_id": step.completed_by_user_id, "client_time_note": step.client_time_note,
            "gps": None if step.gps_lon_wgs84 is None else {
                "lon_wgs84": step.gps_lon_wgs84, "lat_wgs84": step.gps_lat_wgs84, "accuracy_m": step.gps_accuracy_m},
            "photos": [{k: p[k] for k in ("filename", "content_type", "size_bytes", "sha256")}
                       for p in step.photos or []],
            "note": step.note,
        })
    return data


def reservation_json(application: Application) -> dict[str, Any]:
    """The application's capacity booking (R2.3): what it holds now and, once given back, what was released,
    when and why (issue 15 item 1: ``cancelled``, ``reading_after_power_on`` with the reading's time,
    ``timeout_after_power_on``)."""
    released_kva = application.booking_released_kva
    return {"transformer_asset_id": application.reserved_transformer_asset_id,
            "reserved_kva": round(float(application.reserved_kva or 0.0), 3),
            "status": "released" if application.booking_released_at is not None
            else "open" if application.reserved_transformer_asset_id is not None else "none",
            "released_at": _iso(application.booking_released_at),
            "release_reason": application.booking_release_reason,
            "released_kva": None if released_kva is None else round(float(released_kva), 3),
            "released_transformer_asset_id": application.booking_released_transformer_asset_id,
            "release_reading_at": _iso(application.booking_release_reading_at)}


def application_json(session: Session, application: Application, settings: Settings, *, staff: bool,
                     now: datetime | None = None) -> dict[str, Any]:
    """The application with its timeline: the customer's two procedures and every internal step (R1.4, R5.2)."""
    today = china_date(now or datetime.now(UTC))
    steps = steps_of(session, application)
    latest_version = None
    if application.design_id is not None:
        latest_version = session.scalar(select(Design.version).where(Design.design_id == application.design_id)
                                        .order_by(Design.version.desc()).limit(1))
    documents = session.scalars(select(ApplicationDocument).where(
        ApplicationDocument.application_id == application.id).order_by(ApplicationDocument.id))
    signed = steps[0] if steps else None
    power_on = next((s for s in steps if s.step_code == StepCode.METER_AND_ENERGISE), None)
    procedures = [
        {"code": "apply_and_sign", "name_zh": "申请签约", "completed_at": _iso(application.contract_accepted_at),
         "deadline": signed.deadline.isoformat() if signed else None},
        {"code": "build_and_connect", "name_zh": "施工接电", "completed_at": _iso(application.powered_on_at),
         "deadline": application.promised_power_on.isoformat() if application.promised_power_on else None,
         "deadline_status": live_status(power_on, today, settings).value if power_on else None},
    ]
    return {
        "id": application.id,
        "status": application.status,
        "applicant_name": application.applicant_name,
        "address": application.address,
        "contact_phone": application.contact_phone,
        "kw": application.requested_kw,
        "phases": application.phases,
        "category": application.category,
        "industry": application.industry,
        "pin": {"lon": application.pin_lon, "lat": application.pin_lat, "crs": application.pin_crs},
        "job_class": application.job_class,
        "promised_power_on": application.promised_power_on.isoformat() if application.promised_power_on else None,
        "wanted_power_on": application.wanted_power_on.isoformat() if application.wanted_power_on else None,
        "grid_area_code": application.grid_area_code,
        "team": {"customer_manager": _user_card(session, application.customer_manager_user_id),
                 "project_manager": _user_card(session, application.project_manager_user_id),
                 "assigned_at": _iso(application.assigned_at), "assigned_by": application.assigned_by},
        "design": {"design_id": application.design_id, "latest_version": latest_version,
                   "confirmed_version": application.confirmed_design_version,
                   "confirmed_at": _iso(application.confirmed_at)},
        "reservation": reservation_json(application) if staff else None,
        "contract": {"version": application.contract_version, "sha256": application.contract_sha256,
                     "accepted_at": _iso(application.contract_accepted_at),
                     "accepted_by_user_id": application.contract_accepted_by_user_id},
        "documents": [{"id": d.id, "kind": d.kind, "filename": d.filename, "content_type": d.content_type,
                       "size_bytes": d.size_bytes, "sha256": d.sha256, "uploaded_at": _iso(d.uploaded_at)}
                      for d in documents],
        "documents_missing": missing_documents(session, application, settings),
        "customer_procedures": procedures,
        "steps": [step_json(s, today, settings, staff=staff) for s in steps],
        "created_at": _iso(application.created_at),
        "powered_on_at": _iso(application.powered_on_at),
        "cancelled_at": _iso(application.cancelled_at),
        "cancel_reason": application.cancel_reason,
    }
