"""Roles and authentication: tokens, API keys, the role matrix, user administration and the CLI (issue 5, item 1)."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from geoalchemy2 import WKTElement
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.orm import Session

from app.cli import main
from app.identity.auth import (
    AuthenticatedUser,
    CredentialsInvalidError,
    ForbiddenError,
    Role,
    TokenExpiredError,
    authenticate_api_key,
    can_access_grid_area,
    issue_access_token,
    require_grid_area,
    require_owner,
    require_roles,
)
from app.main import create_app
from app.platform import migrate
from app.platform.db import create_db_engine
from app.platform.errors import add_exception_handlers
from app.platform.models import ApiKey, GridArea, User
from app.settings import Settings
from app.wiring import error_table
from tests.app.auth_helpers import (
    TEST_JWT_SECRET,
    api_key_headers,
    auth_headers,
    make_api_key,
    make_user,
    override_session,
    settings_for_tests,
)
from tests.support.databases import rolled_back

GRID_AREAS = ("GA-N", "GA-S")
ME = "/api/v1/auth/me"
TOKEN = "/api/v1/auth/token"
KEYS = "/api/v1/auth/api-keys"
USERS = "/api/v1/users"
STAFF_ROLES = [Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER, Role.PLANNER, Role.GIS_ADMIN]
NON_ADMIN_ROLES = [Role.CUSTOMER, *STAFF_ROLES]


@pytest.fixture(scope="module")
def auth_engine(backend: str, migrated_engine) -> Engine:  # type: ignore[no-untyped-def]
    """A migrated database with two grid areas and no users (treat as read-only)."""
    engine = migrated_engine(backend)
    with engine.begin() as conn:
        for i, code in enumerate(GRID_AREAS):
            square = f"MULTIPOLYGON((({106 + i} 29,{106.1 + i} 29,{106.1 + i} 29.1,{106 + i} 29.1,{106 + i} 29)))"
            conn.execute(insert(GridArea).values(code=code, name=code, area_type="urban",
                                                 geom=WKTElement(square, srid=4326)))
    return engine  # type: ignore[no-any-return]


@pytest.fixture
def conn(auth_engine: Engine) -> Iterator[Connection]:
    """A connection inside an outer transaction that is rolled back after the test."""
    with rolled_back(auth_engine) as connection:
        yield connection


@pytest.fixture
def settings(auth_engine: Engine, tmp_path: Path) -> Settings:
    return settings_for_tests(auth_engine.url.render_as_string(hide_password=False), data_dir=tmp_path)


@pytest.fixture
def client(settings: Settings, conn: Connection) -> TestClient:
    app = create_app(settings)
    override_session(app, conn)
    return TestClient(app)


def _error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and set(body) == {"code", "message", "details"}
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


# --- password flow and tokens ---------------------------------------------------------------------------------


def test_token_flow_issues_jwt_and_me_answers(client: TestClient, conn: Connection) -> None:
    planner = make_user(conn, Role.PLANNER, full_name="规划 王")
    response = client.post(TOKEN, data={"username": planner.username.upper(), "password": planner.password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(planner.id) and claims["role"] == "planner"
    assert claims["exp"] - claims["iat"] == 3600 and len(claims["jti"]) == 32
    me = client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert me["username"] == planner.username and me["role"] == "planner" and me["auth_method"] == "password"
    assert "password_hash" not in me


def test_login_failures_look_the_same(client: TestClient, conn: Connection) -> None:
    user = make_user(conn, Role.PROJECT_MANAGER)
    gone = make_user(conn, Role.PROJECT_MANAGER, is_active=False)
    answers = [
        client.post(TOKEN, data={"username": user.username, "password": "wrong password"}),  # wrong password
        client.post(TOKEN, data={"username": "nobody-here", "password": user.password}),  # unknown user
        client.post(TOKEN, data={"username": gone.username, "password": gone.password}),  # deactivated user
    ]
    bodies = [_error(response, 401, "CREDENTIALS_INVALID") for response in answers]
    assert all(body == bodies[0] for body in bodies)  # no user enumeration
    _error(client.post(TOKEN, data={"username": user.username}), 422, "REQUEST_INVALID")  # no password field


def test_unknown_user_still_costs_one_hash(monkeypatch: pytest.MonkeyPatch, conn: Connection,
                                           settings: Settings) -> None:
    import app.identity.auth as auth
    import app.identity.passwords as passwords

    calls: list[str] = []
    real = passwords.verify_password
    monkeypatch.setattr(passwords, "verify_password", lambda h, p, **kw: calls.append(h) or real(h, p, **kw))
    with Session(bind=conn) as session, pytest.raises(auth.CredentialsInvalidError):
        anyio.run(partial(auth.authenticate_password, session, username="ghost", password="whatever1",
                          settings=settings))
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def _forge(token: str, **claims: object) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**body, **claims}).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_expired_tampered_and_foreign_tokens_are_refused(client: TestClient, conn: Connection,
                                                         settings: Settings) -> None:
    pm = make_user(conn, Role.PROJECT_MANAGER)
    row = Session(bind=conn).get(User, pm.id)
    good, _ = issue_access_token(row, settings)
    expired, _ = issue_access_token(row, settings, now=datetime.now(UTC) - timedelta(hours=2))
    claims = jwt.decode(good, TEST_JWT_SECRET, algorithms=["HS256"])
    cases = [
        (expired, 401, "TOKEN_EXPIRED"),  # past exp
        (_forge(good, role="admin", sub="1"), 401, "CREDENTIALS_INVALID"),  # payload edited, signature kept
        (jwt.encode(claims, "another-secret-of-at-least-32-chars!!", algorithm="HS256"), 401,
         "CREDENTIALS_INVALID"),  # signed with another key
        (jwt.encode(claims, None, algorithm="none"), 401, "CREDENTIALS_INVALID"),  # unsigned
        (jwt.encode({k: v for k, v in claims.items() if k != "jti"}, TEST_JWT_SECRET), 401,
         "CREDENTIALS_INVALID"),  # a required claim missing
        (jwt.encode({**claims, "sub": "x"}, TEST_JWT_SECRET), 401, "CREDENTIALS_INVALID"),  # sub not an id
        ("not-a-jwt", 401, "CREDENTIALS_INVALID"),  # garbage
    ]
    for token, status, code in cases:
        _error(client.get(ME, headers={"Authorization": f"Bearer {token}"}), status, code)
    assert client.get(ME, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    _error(client.get(ME), 401, "UNAUTHENTICATED")  # no credentials at all
    _error(client.get(ME, headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, "UNAUTHENTICATED")


def test_a_token_verified_before_still_expires_on_the_clock(conn: Connection, settings: Settings) -> None:
    """Verified signatures are remembered per token; the expiry is checked against the clock on every use."""
    from app.identity.auth import decode_access_token

    row = Session(bind=conn).get(User, make_user(conn, Role.PLANNER).id)
    token, lifetime_s = issue_access_token(row, settings)
    assert decode_access_token(token, settings)["sub"] == str(row.id)
    assert decode_access_token(token, settings)["sub"] == str(row.id)  # remembered
    with pytest.raises(TokenExpiredError):
        decode_access_token(token, settings, now=datetime.now(UTC) + timedelta(seconds=lifetime_s + 1))
    other = Settings(database_url=settings.database_url, jwt_secret="another-secret-of-at-least-32-chars!!")
    with pytest.raises(CredentialsInvalidError):  # remembered per signing key, not per token alone
        decode_access_token(token, other)


def test_deactivation_stops_tokens_and_keys(client: TestClient, conn: Connection) -> None:
    admin = make_user(conn, Role.ADMIN)
    pm = make_user(conn, Role.PROJECT_MANAGER)
    pm_headers = auth_headers(client, pm)
    key = make_api_key(conn, pm)
    assert client.get(ME, headers=api_key_headers(key)).status_code == 200
    response = client.patch(f"{USERS}/{pm.id}", json={"is_active": False}, headers=auth_headers(client, admin))
    assert response.status_code == 200 and response.json()["is_active"] is False
    _error(client.get(ME, headers=pm_headers), 401, "CREDENTIALS_INVALID")
    _error(client.get(ME, headers=api_key_headers(key)), 401, "CREDENTIALS_INVALID")


@pytest.mark.parametrize("change", [{"password": "a brand new password"}, {"role": "planner"}])
def test_a_password_or_role_change_revokes_the_tokens_issued_before(client: TestClient, conn: Connection,
                                                                    change: dict) -> None:
    """Issue 13 item 11: the token version of the user row, carried in the token, moves with the change."""
    admin_headers = auth_headers(client, make_user(conn, Role.ADMIN))
    pm = make_user(conn, Role.PROJECT_MANAGER, grid_areas=["GA-N"])
    before = auth_headers(client, pm)
    assert client.get(ME, headers=before).status_code == 200
    response = client.patch(f"{USERS}/{pm.id}", json=change, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = _error(client.get(ME, headers=before), 401, "CREDENTIALS_INVALID")
    assert "revoked" in body["message"]
    after = auth_headers(client, pm.username, change.get("password", pm.password))
    assert client.get(ME, headers=after).json()["role"] == change.get("role", "project_manager")
    # a change of grid areas or contact details keeps the tokens
    assert client.patch(f"{USERS}/{pm.id}", json={"phone": "13800000000"}, headers=admin_headers).status_code == 200
    assert client.get(ME, headers=after).status_code == 200
    # setting the role it already has is no change either
    same = {"role": change.get("role", "project_manager")}
    assert client.patch(f"{USERS}/{pm.id}", json=same, headers=admin_headers).status_code == 200
    assert client.get(ME, headers=after).status_code == 200


def test_a_token_living_longer_than_the_setting_is_refused(client: TestClient, conn: Connection,
                                                          settings: Settings) -> None:
    """Issue 13 item 11: exp − iat may not exceed SANLING_ACCESS_TOKEN_MINUTES, however well signed."""
    row = Session(bind=conn).get(User, make_user(conn, Role.PLANNER).id)
    good, lifetime_s = issue_access_token(row, settings)
    claims = jwt.decode(good, TEST_JWT_SECRET, algorithms=["HS256"])
    now = int(datetime.now(UTC).timestamp())
    for iat, exp in ((now, now + 31 * 365 * 86400), (now, now + lifetime_s + 60), (now + 3600, now + 3600 + 60)):
        forged = jwt.encode({**claims, "iat": iat, "exp": exp}, TEST_JWT_SECRET, algorithm="HS256")
        _error(client.get(ME, headers={"Authorization": f"Bearer {forged}"}), 401, "CREDENTIALS_INVALID")
    exact = jwt.encode({**claims, "iat": now - 10, "exp": now - 10 + lifetime_s}, TEST_JWT_SECRET, algorithm="HS256")
    assert client.get(ME, headers={"Authorization": f"Bearer {exact}"}).status_code == 200
    without_version = jwt.encode({k: v for k, v in claims.items() if k != "ver"}, TEST_JWT_SECRET, algorithm="HS256")
    _error(client.get(ME, headers={"Authorization": f"Bearer {without_version}"}), 401, "CREDENTIALS_INVALID")
    # a shorter setting shortens the tokens already issued
    shorter = Settings(database_url=settings.database_url, jwt_secret=TEST_JWT_SECRET, access_token_minutes=30)
    from app.identity.auth import decode_access_token

    with pytest.raises(CredentialsInvalidError):
        decode_access_token(good, shorter)


# --- API keys -------------------------------------------------------------------------------------------------


def test_api_key_create_use_list_and_revoke(client: TestClient, conn: Connection) -> None:
    pm = make_user(conn, Role.PROJECT_MANAGER, grid_areas=["GA-N"])
    headers = auth_headers(client, pm)
    response = client.post(KEYS, json={"name": " tablet 3 ", "expires_days": 30}, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    key = created["key"]
    assert key.startswith(f"sl_{created['prefix']}_") and len(created["prefix"]) == 8
    assert created["name"] == "tablet 3" and created["user_id"] == pm.id and created["expires_at"]
    for key_headers in (api_key_headers(key), {"Authorization": f"Bearer {key}"}):
        me = client.get(ME, headers=key_headers).json()
        assert me["auth_method"] == "api_key" and me["api_key_id"] == created["id"]
    listed = client.get(KEYS, headers=headers).json()
    assert [item["prefix"] for item in listed] == [created["prefix"]] and "key" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    body = _error(client.post(KEYS, json={"name": "more"}, headers=api_key_headers(key)), 403, "FORBIDDEN")
    assert "password" in body["message"]  # a key cannot mint keys
    revoked = client.delete(f"{KEYS}/{created['id']}", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.delete(f"{KEYS}/{created['id']}", headers=headers).json() == revoked.json()  # idempotent
    _error(client.get(ME, headers=api_key_headers(key)), 401, "CREDENTIALS_INVALID")


def test_expired_revoked_and_malformed_keys_are_refused(client: TestClient, conn: Connection) -> None:
    pm = make_user(conn, Role.PROJECT_MANAGER)
    now = datetime.now(UTC)
    good = make_api_key(conn, pm)
    cases = [
        (make_api_key(conn, pm, expires_at=now - timedelta(seconds=1)), "TOKEN_EXPIRED"),  # expired
        (make_api_key(conn, pm, revoked_at=now), "CREDENTIALS_INVALID"),  # revoked
        (good[:-4] + "AAAA", "CREDENTIALS_INVALID"),  # right prefix, wrong secret
        ("sl_00000000_" + good[12:], "CREDENTIALS_INVALID"),  # unknown prefix
        ("sl_short", "CREDENTIALS_INVALID"),  # malformed
        ("sl_ZZZZZZZZ_secret", "CREDENTIALS_INVALID"),  # prefix not hex
    ]
    for key, code in cases:
        _error(client.get(ME, headers=api_key_headers(key)), 401, code)
    assert client.get(ME, headers=api_key_headers(good)).status_code == 200


def test_api_key_expiry_follows_the_clock(conn: Connection, settings: Settings) -> None:
    pm = make_user(conn, Role.PROJECT_MANAGER)
    key = make_api_key(conn, pm, expires_at=datetime.now(UTC) + timedelta(days=1))
    with Session(bind=conn) as session:
        user, row = authenticate_api_key(session, key, settings=settings)
        assert user.id == pm.id and row.last_used_at is not None
        with pytest.raises(TokenExpiredError):
            authenticate_api_key(session, key, settings=settings, now=datetime.now(UTC) + timedelta(days=2))


def test_api_key_denials(client: TestClient, conn: Connection) -> None:
    admin, pm, other = make_user(conn, Role.ADMIN), make_user(conn, Role.PROJECT_MANAGER), make_user(conn, Role.PLANNER)
    customer = make_user(conn, Role.CUSTOMER)
    pm_headers, admin_headers = auth_headers(client, pm), auth_headers(client, admin)
    other_key_id = Session(bind=conn).scalar(select(ApiKey.id).where(ApiKey.prefix == make_api_key(conn, other)[3:11]))
    _error(client.post(KEYS, json={"name": "t"}, headers=auth_headers(client, customer)), 403, "FORBIDDEN")
    _error(client.post(KEYS, json={"name": "t", "user_id": other.id}, headers=pm_headers), 403, "FORBIDDEN")
    _error(client.get(KEYS, params={"user_id": other.id}, headers=pm_headers), 403, "FORBIDDEN")
    _error(client.delete(f"{KEYS}/{other_key_id}", headers=pm_headers), 404, "NOT_FOUND")  # not revealed
    _error(client.post(KEYS, json={"name": ""}, headers=pm_headers), 422, "REQUEST_INVALID")
    _error(client.post(KEYS, json={"name": "t", "expires_days": 0}, headers=pm_headers), 422, "REQUEST_INVALID")
    _error(client.post(KEYS, json={"name": "t"}), 401, "UNAUTHENTICATED")
    made = client.post(KEYS, json={"name": "for customer app", "user_id": customer.id}, headers=admin_headers)
    assert made.status_code == 201 and made.json()["user_id"] == customer.id
    assert [k["user_id"] for k in client.get(KEYS, params={"user_id": other.id}, headers=admin_headers).json()] == [
        other.id]
    assert client.delete(f"{KEYS}/{other_key_id}", headers=admin_headers).status_code == 200
    _error(client.delete(f"{KEYS}/999999", headers=admin_headers), 404, "NOT_FOUND")


# --- roles ----------------------------------------------------------------------------------------------------


ROUTE_ROLES = {
    "/customer": (Role.CUSTOMER,),
    "/team": (Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER),
    "/planner": (Role.PLANNER,),
    "/gis": (Role.GIS_ADMIN,),
    "/admin": (Role.ADMIN,),
}


def _ok() -> dict[str, bool]:
    return {"ok": True}


@pytest.fixture
def role_app(settings: Settings, conn: Connection) -> TestClient:
    """A minimal app with one route per ``require_roles`` combination."""
    app = FastAPI()
    app.state.settings = settings
    add_exception_handlers(app, error_table())
    override_session(app, conn)
    for path, roles in ROUTE_ROLES.items():
        app.get(path, dependencies=[Depends(require_roles(*roles))])(_ok)
    return TestClient(app)


@pytest.mark.parametrize("role", list(Role))
def test_require_roles_matrix(role_app: TestClient, conn: Connection, settings: Settings, role: Role) -> None:
    row = Session(bind=conn).get(User, make_user(conn, role).id)
    headers = {"Authorization": f"Bearer {issue_access_token(row, settings)[0]}"}
    for path, allowed in ROUTE_ROLES.items():
        response = role_app.get(path, headers=headers)
        if role in allowed or role is Role.ADMIN:  # admin passes every role check
            assert response.status_code == 200, (path, response.text)
        else:
            body = _error(response, 403, "FORBIDDEN")
            assert body["details"] == {"required_roles": sorted(allowed), "role": role}
        _error(role_app.get(path), 401, "UNAUTHENTICATED")


def test_require_roles_needs_a_role() -> None:
    with pytest.raises(ValueError):
        require_roles()


def test_user_administration_is_admin_only(client: TestClient, conn: Connection) -> None:
    target = make_user(conn, Role.CUSTOMER)
    new_user = {"username": "someone", "password": "long enough", "role": "planner"}
    for role in NON_ADMIN_ROLES:
        headers = auth_headers(client, make_user(conn, role))
        _error(client.post(USERS, json=new_user, headers=headers), 403, "FORBIDDEN")
        _error(client.get(USERS, headers=headers), 403, "FORBIDDEN")
        _error(client.patch(f"{USERS}/{target.id}", json={"is_active": False}, headers=headers), 403, "FORBIDDEN")
    for method, path in (("post", USERS), ("get", USERS), ("patch", f"{USERS}/{target.id}")):
        _error(client.request(method, path, json=new_user if method == "post" else {}), 401, "UNAUTHENTICATED")


def test_admin_creates_lists_and_updates_users(client: TestClient, conn: Connection) -> None:
    admin = make_user(conn, Role.ADMIN)
    headers = auth_headers(client, admin)
    body = {"username": "PM.Wanzhou", "password": "s3cret-enough", "role": "project_manager",
            "full_name": "张工", "grid_area_codes": ["GA-N", "GA-N"], "phone": "13800000000"}
    created = client.post(USERS, json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "pm.wanzhou" and created.json()["grid_area_codes"] == ["GA-N"]
    assert auth_headers(client, "pm.wanzhou", "s3cret-enough")  # the new user signs in
    _error(client.post(USERS, json=body, headers=headers), 409, "USERNAME_TAKEN")
    listed = client.get(USERS, params={"role": "project_manager"}, headers=headers).json()
    assert [user["username"] for user in listed] == ["pm.wanzhou"]
    moved = client.patch(f"{USERS}/{created.json()['id']}", json={"grid_area_codes": ["GA-S"]}, headers=headers)
    assert moved.status_code == 200 and moved.json()["grid_area_codes"] == ["GA-S"]
    _error(client.patch(f"{USERS}/{admin.id}", json={"role": "planner"}, headers=headers), 422, "INVALID_INPUT")
    _error(client.patch(f"{USERS}/999999", json={}, headers=headers), 404, "NOT_FOUND")


@pytest.mark.parametrize(("change", "status", "code", "field"), [
    ({"grid_area_codes": ["NOPE"]}, 422, "INVALID_INPUT", "grid_area_codes"),  # unknown grid area
    ({"role": "planner", "grid_area_codes": ["GA-N"]}, 422, "REQUEST_INVALID", "body"),  # area on unscoped role
    ({"role": "wizard"}, 422, "REQUEST_INVALID", "body.role"),  # unknown role
    ({"password": "Qz7#x"}, 422, "REQUEST_INVALID", "body.password"),  # too short
    ({"username": "a b"}, 422, "REQUEST_INVALID", "body.username"),  # space in username
    ({"is_superuser": True}, 422, "REQUEST_INVALID", "body.is_superuser"),  # unknown field
])
def test_bad_user_input_names_the_field(client: TestClient, conn: Connection, change: dict, status: int,
                                        code: str, field: str) -> None:
    body = {"username": "new.user", "password": "long enough", "role": "project_manager", **change}
    answer = _error(client.post(USERS, json=body, headers=auth_headers(client, make_user(conn, Role.ADMIN))),
                    status, code)
    fields = [answer["details"].get("field")] + [e["field"] for e in answer["details"].get("errors", [])]
    assert field in fields
    assert "Qz7#x" not in json.dumps(answer)  # a rejected password is never echoed


def test_the_openapi_declares_what_user_and_key_input_must_be(client: TestClient, conn: Connection) -> None:
    """Issue 13 item 13 in this file's models: the schema says what the server enforces, on the raw input."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    username = schemas["UserCreate"]["properties"]["username"]
    assert re.fullmatch(username["pattern"], "PM.Wanzhou") and not re.fullmatch(username["pattern"], " pm.wanzhou")
    for model in ("UserCreate", "UserUpdate"):
        password = schemas[model]["properties"]["password"]
        password = next((p for p in password.get("anyOf", []) if p.get("type") == "string"), password)
        assert (password["minLength"], password["maxLength"]) == (8, 256)
    name = schemas["ApiKeyCreate"]["properties"]["name"]
    assert (name["minLength"], name["maxLength"]) == (1, 100)
    assert re.search(name["pattern"], "PM tablet 3") and not re.search(name["pattern"], "   ")
    user_id = next(p for p in schemas["ApiKeyCreate"]["properties"]["user_id"]["anyOf"] if p.get("type") == "integer")
    assert user_id["maximum"] == 2**31 - 1
    admin = auth_headers(client, make_user(conn, Role.ADMIN))
    for body in ({"name": "   "}, {"name": "x" + " " * 120}, {"name": "t", "user_id": 2**31},
                 {"name": "t", "expires_days": "30"}):
        _error(client.post(KEYS, json=body, headers=admin), 422, "REQUEST_INVALID")
    _error(client.post(KEYS, json={"name": "t", "user_id": 2**31 - 1}, headers=admin), 404, "NOT_FOUND")
    assert "404" in client.get("/openapi.json").json()["paths"][KEYS]["post"]["responses"]
    _error(client.post(USERS, json={"username": " spaced", "password": "long enough", "role": "planner"},
                       headers=admin), 422, "REQUEST_INVALID")
    target = make_user(conn, Role.PLANNER)
    _error(client.patch(f"{USERS}/{target.id}", json={"is_active": 0}, headers=admin), 422, "REQUEST_INVALID")


# --- scoping helpers (no database) ----------------------------------------------------------------------------


def _user(role: Role, *areas: str, user_id: int = 7) -> AuthenticatedUser:
    return AuthenticatedUser(id=user_id, username="u", role=role, grid_area_codes=areas)


@pytest.mark.parametrize(("user", "code", "allowed"), [
    (_user(Role.PROJECT_MANAGER, "GA-N"), "GA-N", True),  # own area
    (_user(Role.PROJECT_MANAGER, "GA-N"), "GA-S", False),  # another area
    (_user(Role.PROJECT_MANAGER, "GA-N"), None, False),  # unassigned work
    (_user(Role.CUSTOMER_MANAGER, "GA-N", "GA-S"), "GA-S", True),  # second of two areas
    (_user(Role.CUSTOMER_MANAGER), "GA-N", False),  # no areas assigned yet
    (_user(Role.CUSTOMER), "GA-N", False),  # customers are scoped by ownership
    (_user(Role.PLANNER), "GA-S", True),  # planners read the whole network
    (_user(Role.GIS_ADMIN), None, True),  # GIS admins maintain the whole network
    (_user(Role.ADMIN), "GA-S", True),  # admin sees everything
])
def test_grid_area_scope(user: AuthenticatedUser, code: str | None, allowed: bool) -> None:
    assert can_access_grid_area(user, code) is allowed
    with nullcontext() if allowed else pytest.raises(ForbiddenError):
        require_grid_area(user, code)


@pytest.mark.parametrize(("user", "owner_id", "allowed"), [
    (_user(Role.CUSTOMER, user_id=7), 7, True),  # own application
    (_user(Role.CUSTOMER, user_id=7), 8, False),  # someone else's
    (_user(Role.PROJECT_MANAGER, "GA-N"), 8, True),  # staff are scoped by grid area instead
])
def test_require_owner(user: AuthenticatedUser, owner_id: int, allowed: bool) -> None:
    with nullcontext() if allowed else pytest.raises(ForbiddenError):
        require_owner(user, owner_id)


# --- settings -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "error"), [
    ({"env": "production"}, "SANLING_JWT_SECRET must be set"),  # generated secret refused in production
    ({"env": "production", "jwt_secret": "x" * 40, "password_hash_profile": "fast"}, "refused in production"),
    ({"jwt_secret": "too-short"}, "at least 32"),  # weak key in any environment
    ({"access_token_minutes": 0}, "access_token_minutes"),
])
def test_settings_refuse_unsafe_auth_values(values: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Settings(**values)


def test_development_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "data").jwt_signing_key()
    path = tmp_path / "data" / "jwt_secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(first) >= 32
    assert Settings(data_dir=tmp_path / "data").jwt_signing_key() == first  # another worker reads the same
    assert Settings(data_dir=tmp_path / "data", jwt_secret="y" * 32).jwt_signing_key() == "y" * 32
    assert Settings(env="production", jwt_secret="z" * 32).jwt_signing_key() == "z" * 32


# --- CLI ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_db_url(backend: str, fresh_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database the CLI tests write to (committed; tests use unique names)."""
    url = fresh_database(backend)
    migrate.upgrade(url)
    return str(url)


@pytest.fixture
def cli_db(cli_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from app.settings import get_settings

    url = cli_db_url
    monkeypatch.setenv("SANLING_DATABASE_URL", url)
    monkeypatch.setenv("SANLING_PASSWORD_HASH_PROFILE", "fast")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _row_counts(url: str) -> tuple[int, int]:
    engine = create_db_engine(url)
    with engine.connect() as connection:  # closed before the CLI runs: SQLite allows one writer
        counts = (connection.scalar(select(func.count()).select_from(User)) or 0,
                  connection.scalar(select(func.count()).select_from(ApiKey)) or 0)
    engine.dispose()
    return counts


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_creates_users_and_keys(cli_db: str, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_PASSWORD", "s3cret-enough")
    assert _cli(capsys, "user", "create", "PM1", "--role", "project_manager", "--password-env", "PM_PASSWORD",
                "--full-name", "张工")[0] == 0
    code, out, _ = _cli(capsys, "user", "list")
    assert code == 0 and ["pm1", "project_manager", "active", "-", "张工"] in [
        line.split("\t")[1:] for line in out.splitlines()]
    code, out, err = _cli(capsys, "apikey", "create", "pm1", "--name", "tablet", "--expires-days", "30")
    key = out.strip()
    assert code == 0 and key.startswith("sl_") and "not shown again" in err
    engine = create_db_engine(cli_db)
    with Session(engine) as session:
        user, row = authenticate_api_key(session, key, settings=settings_for_tests(cli_db))
        assert user.username == "pm1" and row.expires_at is not None
    assert _cli(capsys, "apikey", "revoke", str(row.id))[0] == 0
    with Session(engine) as session, pytest.raises(CredentialsInvalidError, match="revoked"):
        authenticate_api_key(session, key, settings=settings_for_tests(cli_db))
    engine.dispose()


@pytest.mark.parametrize(("argv", "field"), [
    (["user", "create", "x1y", "--role", "wizard", "--password-env", "GOOD_PW"], "role"),  # unknown role
    (["user", "create", "a b", "--role", "planner", "--password-env", "GOOD_PW"], "username"),  # bad username
    (["user", "create", "pm2", "--role", "planner", "--password-env", "SHORT_PW"], "password"),  # too short
    (["user", "create", "pm2", "--role", "planner", "--password-env", "UNSET_PW"], "password"),  # env var unset
    (["user", "create", "pm2", "--role", "project_manager", "--password-env", "GOOD_PW", "--grid-area", "NOPE"],
     "grid_area_codes"),  # unknown grid area
    (["apikey", "create", "ghost", "--name", "t"], "username"),  # unknown user
    (["apikey", "create", "ghost", "--name", "t", "--expires-days", "0"], "expires_days"),  # not positive
    (["apikey", "revoke", "999"], "api_key_id"),  # unknown key
])
def test_cli_bad_input_exits_non_zero_naming_the_field(cli_db: str, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                       field: str) -> None:
    monkeypatch.setenv("GOOD_PW", "long enough")
    monkeypatch.setenv("SHORT_PW", "Qz7#x")
    monkeypatch.delenv("UNSET_PW", raising=False)
    before = _row_counts(cli_db)
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and field in err and "Qz7#x" not in err
    assert _row_counts(cli_db) == before  # nothing written


def test_cli_password_from_stdin(cli_db: str, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin-pw\n"))
    assert _cli(capsys, "user", "create", "gis1", "--role", "gis_admin", "--password-stdin")[0] == 0
    engine = create_db_engine(cli_db)
    with Session(engine) as session:
        from app.identity.auth import authenticate_password

        user = anyio.run(partial(authenticate_password, session, username="gis1", password="from-stdin-pw",
                                 settings=settings_for_tests(cli_db)))
        assert user.role == "gis_admin"
    engine.dispose()
