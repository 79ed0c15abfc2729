"""Every denial and rule of the application lifecycle through the HTTP API, on both databases (issue 5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select

from app.identity.auth import Role
from app.lifecycle.deadlines import watch_deadlines
from app.main import create_app
from app.platform.models import ApplicationStep, AuditLog, Notification, Transformer
from tests.app.auth_helpers import AuthUser, make_user, override_session, settings_for_tests
from tests.app.lifecycle_helpers import (
    PIN_OUTSIDE_GRID_AREAS,
    PNG,
    application_form,
    apply,
    make_teams,
    new_key,
    report,
    sample,
    signed_in,
)

UPLOAD_MAX_BYTES = 4096


@pytest.fixture
def client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path, upload_max_bytes=UPLOAD_MAX_BYTES))
    override_session(app, db_conn)
    yield TestClient(app)


@pytest.fixture
def teams(db_conn: Connection) -> dict[str, tuple[AuthUser, AuthUser]]:
    return make_teams(db_conn)


def _applied(client: TestClient, db_conn: Connection, job_class: str = "overhead",
             **kwargs: Any) -> tuple[dict[str, Any], dict[str, str]]:
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
    response = apply(client, customer, application_form(sample(job_class)), **kwargs)
    assert response.status_code == 201, response.text
    return response.json(), customer


def _pm(client: TestClient, teams: dict[str, tuple[AuthUser, AuthUser]], body: dict[str, Any]) -> dict[str, str]:
    return signed_in(client, teams[body["grid_area_code"]][1])


def test_customers_see_only_their_own_applications(client: TestClient, db_conn: Connection, teams: Any) -> None:
    mine, me = _applied(client, db_conn)
    other, _ = _applied(client, db_conn, "direct_meter")
    assert client.get(f"/api/v1/applications/{mine['id']}", headers=me).status_code == 200
    denied = client.get(f"/api/v1/applications/{other['id']}", headers=me)
    assert denied.status_code == 403 and denied.json()["code"] == "FORBIDDEN"
    assert [i["id"] for i in client.get("/api/v1/applications", headers=me).json()["items"]] == [mine["id"]]
    assert client.post(f"/api/v1/applications/{other['id']}/cancel", json={}, headers=me).status_code == 403
    assert client.get("/api/v1/terminal/queue", headers=me).status_code == 403
    assert client.get(f"/api/v1/terminal/jobs/{mine['id']}/survey-package", headers=me).status_code == 403
    assert client.get("/api/v1/admin/unassigned", headers=me).status_code == 403
    assert client.get(f"/api/v1/applications/{10**9}", headers=me).json()["code"] == "APPLICATION_NOT_FOUND"


def test_staff_are_limited_to_their_roles_and_grid_areas(client: TestClient, db_conn: Connection,
                                                         teams: Any) -> None:
    body, _ = _applied(client, db_conn)
    other_area = next(code for code in teams if code != body["grid_area_code"])
    outsider_pm = signed_in(client, teams[other_area][1])
    assert client.get(f"/api/v1/applications/{body['id']}", headers=outsider_pm).status_code == 403
    assert client.get(f"/api/v1/terminal/jobs/{body['id']}/survey-package", headers=outsider_pm).status_code == 403
    assert report(client, outsider_pm, body["id"], "site_survey").status_code == 403
    assert client.get("/api/v1/terminal/queue", headers=outsider_pm).json()["items"] == []
    listed = client.get("/api/v1/applications", headers=outsider_pm).json()["items"]
    assert body["id"] not in [i["id"] for i in listed]
    cm = signed_in(client, teams[body["grid_area_code"]][0])
    assert client.get(f"/api/v1/applications/{body['id']}", headers=cm).status_code == 200
    assert report(client, cm, body["id"], "site_survey").status_code == 403  # customer managers do not report
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    assert client.get("/api/v1/applications", headers=planner).status_code == 403
    staff = signed_in(client, make_user(db_conn, Role.PROJECT_MANAGER, grid_areas=[other_area]))
    assert apply(client, staff, application_form(sample("overhead"))).status_code == 403  # customers apply
    assert client.get("/api/v1/admin/unassigned", headers=staff).status_code == 403
    assert client.post(f"/api/v1/admin/unassigned/{body['id']}/assign", json={"grid_area_code": other_area},
                       headers=staff).status_code == 403


def test_steps_run_in_order_on_the_server_clock(client: TestClient, db_conn: Connection, teams: Any) -> None:
    body, _ = _applied(client, db_conn)
    pm = _pm(client, teams, body)
    early = report(client, pm, body["id"], "construction")
    assert early.status_code == 409 and early.json()["code"] == "STEP_OUT_OF_ORDER"
    assert "site_survey" in early.json()["details"]["waiting_for"]
    assert report(client, pm, body["id"], "design_and_bom").json()["code"] == "CONFIRM_REQUIRED"
    assert report(client, pm, body["id"], "admin_approval").json()["code"] == "STEP_NOT_IN_PLAN"  # not dug
    before = datetime.now(UTC)
    done = report(client, pm, body["id"], "site_survey", photos=0, client_time="2020-01-01T08:00:00+08:00")
    assert done.status_code == 200, done.text
    completed_at = datetime.fromisoformat(done.json()["completed_at"])
    assert before - timedelta(seconds=5) <= completed_at <= datetime.now(UTC) + timedelta(seconds=5)  # not 2020
    assert done.json()["client_time_note"] == "2020-01-01T08:00:00+08:00"
    again = report(client, pm, body["id"], "site_survey", photos=0)
    assert again.status_code == 409 and again.json()["code"] == "STEP_ALREADY_COMPLETED"
    bad_gps = client.post(f"/api/v1/terminal/jobs/{body['id']}/steps/construction_prep",
                          data={"report": json.dumps({"gps": {"lon_wgs84": 500, "lat_wgs84": 29.5, "accuracy_m": 5}})},
                          headers=pm)
    assert bad_gps.status_code == 422


def test_designs_change_only_with_if_match_and_freeze_on_confirm(client: TestClient, db_conn: Connection,
                                                                 teams: Any) -> None:
    body, _ = _applied(client, db_conn)
    pm = _pm(client, teams, body)
    url = f"/api/v1/terminal/jobs/{body['id']}"
    etag = client.get(f"{url}/survey-package", headers=pm).headers["ETag"]
    stretch = {"no_overhead_stretches": []}
    assert client.post(f"{url}/adjustments", json=stretch, headers=pm).json()["code"] == "IF_MATCH_REQUIRED"
    stale = client.post(f"{url}/adjustments", json=stretch, headers={**pm, "If-Match": '"x.v9"'})
    assert stale.status_code == 412 and stale.json()["code"] == "DESIGN_VERSION_CONFLICT"
    early = client.post(f"{url}/confirm", headers={**pm, "If-Match": etag})
    assert early.status_code == 409 and early.json()["code"] == "STEP_OUT_OF_ORDER"  # survey first
    assert report(client, pm, body["id"], "site_survey", photos=0).status_code == 200
    assert client.post(f"{url}/confirm", headers={**pm, "If-Match": etag}).status_code == 200
    frozen = client.post(f"{url}/adjustments", json=stretch, headers={**pm, "If-Match": etag})
    assert frozen.status_code == 409 and frozen.json()["code"] == "DESIGN_FROZEN"


def test_marking_a_no_overhead_stretch_turns_the_overhead_job_into_cable(client: TestClient, db_conn: Connection,
                                                                          teams: Any) -> None:
    body, _ = _applied(client, db_conn)
    pm = _pm(client, teams, body)
    url = f"/api/v1/terminal/jobs/{body['id']}"
    package = client.get(f"{url}/survey-package", headers=pm)
    route = package.json()["route"]["geometry"]
    adjusted = client.post(f"{url}/adjustments", json={"no_overhead_stretches": [route]},
                           headers={**pm, "If-Match": package.headers["ETag"], "Idempotency-Key": new_key()})
    assert adjusted.status_code == 201, adjusted.text
    assert adjusted.json()["job_class"] == "underground_cable"
    timeline = client.get(f"/api/v1/applications/{body['id']}", headers=pm).json()
    assert timeline["job_class"] == "underground_cable" and timeline["promised_power_on"] >= body["promised_power_on"]


def test_an_idempotent_application_is_accepted_once(client: TestClient, db_conn: Connection, teams: Any) -> None:
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
    form = application_form(sample("direct_meter"))
    key = new_key()
    first = apply(client, customer, form, key=key)
    second = apply(client, customer, form, key=key)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true" and second.json()["id"] == first.json()["id"]
    assert len(client.get("/api/v1/applications", headers=customer).json()["items"]) == 1
    reused = apply(client, customer, {**form, "kw": 12}, key=key)
    assert reused.status_code == 422 and reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_intake_refuses_bad_contracts_documents_and_ineligible_customers(client: TestClient,
                                                                         db_conn: Connection) -> None:
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
    form = application_form(sample("overhead"))
    wrong = apply(client, customer, {**form, "contract_sha256": "0" * 64})
    assert wrong.status_code == 422 and wrong.json()["code"] == "CONTRACT_MISMATCH"
    text_file = client.post("/api/v1/applications", data={"application": json.dumps(form)},
                            files=[("identity_document", ("id.txt", b"hello", "application/pdf"))], headers=customer)
    assert text_file.status_code == 415 and text_file.json()["code"] == "UPLOAD_TYPE_UNSUPPORTED"
    huge = client.post("/api/v1/applications", data={"application": json.dumps(form)},
                       files=[("identity_document", ("id.png", PNG + bytes(UPLOAD_MAX_BYTES), "image/png"))],
                       headers=customer)
    assert huge.status_code == 413 and huge.json()["code"] == "UPLOAD_TOO_LARGE"
    residential = apply(client, customer, {**form, "category": "residential"})
    assert residential.status_code == 422 and residential.json()["code"] == "NOT_ELIGIBLE"
    assert client.get("/api/v1/applications", headers=customer).json()["items"] == []


def test_deferred_property_proof_blocks_power_on_until_uploaded(client: TestClient, db_conn: Connection,
                                                                teams: Any) -> None:
    body, customer = _applied(client, db_conn, "direct_meter", property_proof=False)
    assert body["documents_missing"] == ["property_proof"]
    pm = _pm(client, teams, body)
    url = f"/api/v1/terminal/jobs/{body['id']}"
    etag = client.get(f"{url}/survey-package", headers=pm).headers["ETag"]
    assert report(client, pm, body["id"], "site_survey", photos=0).status_code == 200
    assert client.post(f"{url}/confirm", headers={**pm, "If-Match": etag}).status_code == 200
    for code in ("construction_prep", "construction"):
        assert report(client, pm, body["id"], code).status_code == 200
    assert report(client, pm, body["id"], "meter_and_energise", photos=0).json()["code"] == "PHOTO_REQUIRED"
    assert report(client, pm, body["id"], "meter_and_energise").json()["code"] == "DOCUMENT_MISSING"
    added = client.post(f"/api/v1/applications/{body['id']}/documents", data={"kind": "property_proof"},
                        files={"document": ("deed.png", PNG, "image/png")}, headers=customer)
    assert added.status_code == 201 and added.json()["documents_complete"] is True
    assert report(client, pm, body["id"], "meter_and_energise").json()["application_status"] == "powered_on"


def test_a_pin_in_no_grid_area_waits_for_an_admin(client: TestClient, db_conn: Connection, teams: Any) -> None:
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
    lon, lat = PIN_OUTSIDE_GRID_AREAS
    applied = apply(client, customer, application_form(sample("direct_meter"), lon=lon, lat=lat, crs="wgs84",
                                                        area_type="urban"))
    assert applied.status_code == 201, applied.text
    body = applied.json()
    assert body["status"] == "awaiting_assignment" and body["grid_area_code"] is None
    admin = signed_in(client, make_user(db_conn, Role.ADMIN))
    queue = client.get("/api/v1/admin/unassigned", headers=admin).json()["items"]
    assert [(i["application_id"], i["reason"]) for i in queue] == [(body["id"], "no_grid_area")]
    cm, pm = teams["CQ-YB-01"]
    assert report(client, signed_in(client, pm), body["id"], "site_survey").status_code == 403  # not yet in area
    bad = client.post(f"/api/v1/admin/unassigned/{body['id']}/assign",
                      json={"grid_area_code": "CQ-YB-01", "project_manager_user_id": cm.id}, headers=admin)
    assert bad.status_code == 422 and bad.json()["code"] == "ASSIGNMENT_INVALID"
    assigned = client.post(f"/api/v1/admin/unassigned/{body['id']}/assign", json={"grid_area_code": "CQ-YB-01"},
                           headers=admin)
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["team"]["project_manager"]["user_id"] == pm.id
    assert client.get("/api/v1/admin/unassigned", headers=admin).json()["items"] == []
    assert report(client, signed_in(client, pm), body["id"], "site_survey", photos=0).status_code == 200


def test_cancelling_releases_the_booking_and_is_audited(client: TestClient, db_conn: Connection,
                                                         teams: Any) -> None:
    def reserved(asset_id: str) -> float:
        return float(db_conn.execute(select(Transformer.reserved_kva)
                                     .where(Transformer.asset_id == asset_id)).scalar_one())

    body, customer = _applied(client, db_conn)
    staff_view = client.get(f"/api/v1/applications/{body['id']}", headers=_pm(client, teams, body)).json()
    asset_id, kva = staff_view["reservation"]["transformer_asset_id"], staff_view["reservation"]["reserved_kva"]
    held = reserved(asset_id)
    cancelled = client.post(f"/api/v1/applications/{body['id']}/cancel", json={"reason": "改期"}, headers=customer)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert reserved(asset_id) == pytest.approx(held - kva, abs=1e-3)
    again = client.post(f"/api/v1/applications/{body['id']}/cancel", json={}, headers=customer)
    assert again.status_code == 409 and again.json()["code"] == "APPLICATION_CLOSED"
    actions = db_conn.execute(select(AuditLog.action).where(AuditLog.entity == "application",
                                                            AuditLog.entity_id == str(body["id"]))).scalars().all()
    assert actions == ["created", "booking_released", "cancelled"]  # a cancel is a release too (issue 15 item 1)


def test_the_deadline_watch_warns_then_escalates_once(client: TestClient, db_conn: Connection, teams: Any,
                                                      demo_db_url: str, tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    body, _ = _applied(client, db_conn)
    cm, pm = teams[body["grid_area_code"]]
    survey = next(s for s in body["steps"] if s["step_code"] == "site_survey")
    deadline = datetime.fromisoformat(survey["deadline"]).replace(hour=10, tzinfo=UTC)
    settings = settings_for_tests(demo_db_url, data_dir=tmp_path)
    with Session(bind=db_conn, join_transaction_mode="create_savepoint") as session:
        on_deadline = watch_deadlines(session, settings, now=deadline)
        again = watch_deadlines(session, settings, now=deadline)
        overdue = watch_deadlines(session, settings, now=deadline + timedelta(days=1))
        status = session.scalar(select(ApplicationStep.deadline_status).where(
            ApplicationStep.application_id == body["id"], ApplicationStep.step_code == "site_survey"))
        session.commit()  # releases the savepoint; the test's outer transaction is still rolled back
    assert (body["id"], "site_survey", "at_risk") in on_deadline.changed_steps
    assert on_deadline.notifications >= 1 and again.notifications == 0  # deduplicated
    assert overdue.overdue >= 1 and status == "overdue"
    kinds = db_conn.execute(select(Notification.user_id, Notification.kind).where(
        Notification.entity_id == str(body["id"])).order_by(Notification.id)).all()
    assert (pm.id, "deadline_at_risk") in kinds
    assert {(pm.id, "deadline_overdue"), (cm.id, "deadline_overdue")} <= set(kinds)


def test_a_booking_lost_to_another_application_is_redesigned_without_leaving_a_version(
        client: TestClient, db_conn: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """R2.3/R5: when the transformer is booked full between siting and booking (another worker won the row
    lock), the design is dropped and made again; the application keeps one version, booked once."""
    import app.lifecycle.states as applications
    from app.network.reservations import CapacityTakenError
    from app.platform.models import Design

    real_move = applications.move_reservation
    calls: list[str] = []

    def lose_the_first_race(session: Any, application: Any, target: Any) -> Any:
        calls.append(target.transformer_asset_id)
        if len(calls) == 1:
            raise CapacityTakenError(transformer_asset_id=target.transformer_asset_id)
        return real_move(session, application, target)

    def stored_designs() -> int:
        return int(db_conn.execute(select(func.count()).select_from(Design)).scalar_one())

    monkeypatch.setattr(applications, "move_reservation", lose_the_first_race)
    before = stored_designs()
    body, _ = _applied(client, db_conn)
    assert stored_designs() == before + 1
    assert len(calls) == 2
    design_id = body["design"]["design_id"]
    assert body["design"]["latest_version"] == 1
    versions = db_conn.execute(select(Design.version).where(Design.design_id == design_id)).scalars().all()
    assert versions == [1]
