"""Audit log (issue 5 item 8): one row per state change in the caller's transaction, append-only, admins read it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.cli import main
from app.identity.auth import Role
from app.main import create_app
from app.platform import migrate
from app.platform.audit import as_utc, record_change, snapshot
from app.platform.db import create_db_engine
from app.platform.models import AuditLog, User
from app.platform.observability import request_id_var
from tests.app.auth_helpers import auth_headers, make_user, override_session, settings_for_tests

AUDIT = "/api/v1/audit"


@pytest.fixture
def session(db_conn: Connection) -> Session:
    return Session(bind=db_conn, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> TestClient:
    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path))
    override_session(app, db_conn)
    return TestClient(app)


def _entries(session: Session, entity_id: str) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).where(AuditLog.entity_id == entity_id).order_by(AuditLog.id)))


def test_record_change_uses_server_clock_and_request_id(session: Session) -> None:
    """R5.3: the time is the server's UTC clock at the change; the request id comes from the context."""
    token = request_id_var.set("req-audit-1")
    try:
        before_call = datetime.now(UTC)
        record_change(session, actor_user_id=7, actor_role=Role.PROJECT_MANAGER, entity="step", entity_id="s-1",
                      action="completed", before={"state": "open"},
                      after={"state": "done", "at": datetime(2026, 3, 1, 8, 0, tzinfo=UTC)})
        session.flush()
    finally:
        request_id_var.reset(token)
    (row,) = _entries(session, "s-1")
    assert before_call - timedelta(seconds=1) <= as_utc(row.occurred_at) <= datetime.now(UTC)
    assert (row.actor_user_id, row.actor_role, row.action, row.request_id) == (7, "project_manager", "completed",
                                                                               "req-audit-1")
    assert row.after == {"state": "done", "at": "2026-03-01T08:00:00+00:00"}


def test_record_change_joins_the_callers_transaction(session: Session) -> None:
    """Nothing is committed by the helper: rolling the caller back removes the row with the change."""
    savepoint = session.begin_nested()
    record_change(session, actor_user_id=None, actor_role=None, entity="step", entity_id="s-rollback",
                  action="completed", before=None, after={"state": "done"})
    session.flush()
    assert len(_entries(session, "s-rollback")) == 1
    savepoint.rollback()
    assert _entries(session, "s-rollback") == []


@pytest.mark.parametrize("statement", [
    update(AuditLog).values(action="tampered"),  # rewriting history
    delete(AuditLog),                            # erasing history
])
def test_audit_log_is_append_only_in_the_database(session: Session, statement) -> None:  # type: ignore[no-untyped-def]
    record_change(session, actor_user_id=None, actor_role=None, entity="step", entity_id="s-locked",
                  action="completed", before=None, after={"state": "done"})
    session.flush()
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(statement.where(AuditLog.entity_id == "s-locked"))
    assert [row.action for row in _entries(session, "s-locked")] == ["completed"]


def test_truncate_is_refused_on_postgis(backend: str, session: Session) -> None:
    if backend != "postgis":
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("TRUNCATE audit_log"))


def test_snapshot_leaves_secrets_out(session: Session, db_conn: Connection) -> None:
    user = session.get(User, make_user(db_conn, Role.PLANNER).id)
    values = snapshot(user)
    assert "password_hash" not in values and values["role"] == "planner"
    assert values["created_at"].endswith("+00:00")


def test_user_administration_is_audited(client: TestClient, db_conn: Connection) -> None:
    admin = make_user(db_conn, Role.ADMIN)
    headers = auth_headers(client, admin)
    created = client.post("/api/v1/users", headers=headers, json={
        "username": "audited.pm", "password": "s3cret-pass", "role": "project_manager"}).json()
    client.patch(f"/api/v1/users/{created['id']}", headers=headers,
                 json={"full_name": "张工", "password": "another-pass"})
    page = client.get(AUDIT, headers=headers, params={"entity": "user", "entity_id": str(created["id"])}).json()
    updated, made = page["items"]  # newest first
    assert (made["action"], made["before"], made["actor_user_id"]) == ("created", None, admin.id)
    assert made["after"]["username"] == "audited.pm" and "password_hash" not in made["after"]
    assert updated["action"] == "updated" and updated["actor_role"] == "admin"
    assert (updated["before"]["full_name"], updated["after"]["full_name"]) == (None, "张工")
    assert updated["after"]["password_changed"] is True and "password_hash" not in updated["after"]
    assert updated["request_id"]


def test_api_key_creation_and_revocation_are_audited_once(client: TestClient, db_conn: Connection) -> None:
    pm = make_user(db_conn, Role.PROJECT_MANAGER)
    admin = make_user(db_conn, Role.ADMIN)
    key = client.post("/api/v1/auth/api-keys", headers=auth_headers(client, pm), json={"name": "PM tablet"}).json()
    for _ in range(2):  # revoking twice changes nothing the second time
        client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=auth_headers(client, pm))
    page = client.get(AUDIT, headers=auth_headers(client, admin),
                      params={"entity": "api_key", "entity_id": str(key["id"])}).json()
    assert [item["action"] for item in page["items"]] == ["revoked", "created"]
    assert "key_hash" not in page["items"][1]["after"] and page["items"][0]["actor_user_id"] == pm.id


def test_audit_listing_filters_and_pages(client: TestClient, db_conn: Connection, session: Session) -> None:
    admin = make_user(db_conn, Role.ADMIN)
    for i in range(5):
        record_change(session, actor_user_id=admin.id if i % 2 else None, actor_role="admin", entity="paging",
                      entity_id=f"p-{i}", action="touched", before=None, after={"i": i})
    session.commit()
    headers = auth_headers(client, admin)
    first = client.get(AUDIT, headers=headers, params={"entity": "paging", "limit": 2}).json()
    second = client.get(AUDIT, headers=headers, params={"entity": "paging", "limit": 2, "offset": 2}).json()
    assert first["total"] == 5 and [e["entity_id"] for e in first["items"] + second["items"]] == [
        "p-4", "p-3", "p-2", "p-1"]  # newest first
    by_actor = client.get(AUDIT, headers=headers, params={"entity": "paging", "actor": admin.id}).json()
    assert [e["entity_id"] for e in by_actor["items"]] == ["p-3", "p-1"]
    now = datetime.now(UTC)
    window = {"entity": "paging", "since": (now - timedelta(minutes=5)).isoformat(), "until": now.isoformat()}
    assert client.get(AUDIT, headers=headers, params=window).json()["total"] == 5
    later = {"entity": "paging", "since": (now + timedelta(minutes=1)).isoformat()}
    assert client.get(AUDIT, headers=headers, params=later).json()["total"] == 0
    # A local time with an offset is compared in UTC: 08:00+08:00 is 00:00Z.
    local = (now + timedelta(hours=8)).replace(tzinfo=None).isoformat() + "+08:00"
    assert client.get(AUDIT, headers=headers, params={"entity": "paging", "until": local}).json()["total"] == 5


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER, Role.PLANNER,
                                  Role.GIS_ADMIN])
def test_only_admins_read_the_audit_log(client: TestClient, db_conn: Connection, role: Role) -> None:
    response = client.get(AUDIT, headers=auth_headers(client, make_user(db_conn, role)))
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"


def test_audit_log_needs_credentials(client: TestClient) -> None:
    assert client.get(AUDIT).status_code == 401


def test_no_update_path_in_code() -> None:
    """Append-only in code too: nothing in app/ updates or deletes audit rows."""
    root = Path(__file__).resolve().parents[2]
    forbidden = ("update(AuditLog", "delete(AuditLog", "UPDATE audit_log", "DELETE FROM audit_log")
    offenders = [str(path) for path in (root / "app").rglob("*.py")
                 if any(pattern in path.read_text(encoding="utf-8") for pattern in forbidden)]
    assert offenders == []


@pytest.fixture
def cli_db_url(backend: str, fresh_database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from app.settings import get_settings

    url = str(fresh_database(backend))
    migrate.upgrade(url)
    monkeypatch.setenv("SANLING_DATABASE_URL", url)
    monkeypatch.setenv("SANLING_PASSWORD_HASH_PROFILE", "fast")
    monkeypatch.setenv("AUDIT_PW", "s3cret-enough")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_cli_user_administration_is_audited(cli_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Changes made with the CLI are logged too, with no actor and ``"via": "cli"``."""
    assert main(["user", "create", "audit.cli", "--role", "project_manager", "--password-env", "AUDIT_PW"]) == 0
    assert main(["apikey", "create", "audit.cli", "--name", "tablet"]) == 0
    key_id = capsys.readouterr().err.split("API key ", 1)[1].split(" ", 1)[0]
    assert main(["apikey", "revoke", key_id]) == main(["apikey", "revoke", key_id]) == 0
    engine = create_db_engine(cli_db_url)
    with Session(engine) as session:
        rows = list(session.scalars(select(AuditLog).order_by(AuditLog.id)))
    engine.dispose()
    assert [(row.entity, row.action, row.actor_user_id) for row in rows] == [
        ("user", "created", None), ("api_key", "created", None), ("api_key", "revoked", None)]
    assert all(row.after and row.after["via"] == "cli" for row in rows)
