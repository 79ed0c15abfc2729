"""Test helpers for protected endpoints: make a user of a role, sign in, run the app on the test transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, insert
from sqlalchemy.orm import Session

from app.identity.auth import Role, hash_password, new_api_key
from app.platform.deps import get_session
from app.platform.models import ApiKey, User
from app.settings import Settings

DEFAULT_PASSWORD = "correct horse battery staple"
# A fixed HS256 key for tests (≥ 32 characters), so no secret file is written.
TEST_JWT_SECRET = "sanling-test-jwt-secret-0123456789abcdef"


@dataclass(frozen=True)
class AuthUser:
    """A user created by :func:`make_user`, with the clear-text password to sign in with."""

    id: int
    username: str
    password: str
    role: Role
    grid_area_codes: tuple[str, ...] = ()


@contextmanager
def _connection(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Engine):
        with bind.begin() as conn:  # committed: visible to an app using its own engine
            yield conn
    else:
        yield bind  # the caller's transaction (rolled back after the test)


def make_user(bind: Engine | Connection, role: Role | str, *, grid_areas: Sequence[str] = (),
              username: str | None = None, password: str = DEFAULT_PASSWORD, is_active: bool = True,
              full_name: str | None = None) -> AuthUser:
    """Insert a user of ``role`` and return it with its password.

    Parameters
    ----------
    bind : Engine or Connection
        A ``Connection`` (e.g. the ``db_conn`` fixture): the row lives in that transaction and is rolled
        back with it; use with :func:`override_session`. An ``Engine``: the row is committed, for apps
        that use their own engine (e.g. a session-scoped client on ``demo_db_url``); pick unique names.
    role : Role or str
        One of ``app.identity.auth.Role``.
    grid_areas : sequence of str
        Grid area codes of a customer manager or project manager (not checked against ``grid_areas``).
    username : str, optional
        Defaults to ``<role>-<8 random hex>``, unique across tests.
    password : str
        Clear-text password (default :data:`DEFAULT_PASSWORD`).
    is_active : bool
        False creates a deactivated user.
    full_name : str, optional
        Display name.

    Returns
    -------
    AuthUser
        ``id``, ``username``, ``password``, ``role`` and ``grid_area_codes``. Passwords are hashed with the
        cheap ``fast`` argon2 profile, so making many users stays quick.

    Examples
    --------
    A test module whose app answers inside the test's rolled-back transaction::

        @pytest.fixture
        def client(db_conn, demo_db_url, tmp_path):
            app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path))
            override_session(app, db_conn)
            return TestClient(app)

        def test_project_manager_sees_only_their_area(client, db_conn):
            pm = make_user(db_conn, Role.PROJECT_MANAGER, grid_areas=["GA-01"])
            response = client.get("/api/v1/...", headers=auth_headers(client, pm))
    """
    role = Role(role)
    username = username or f"{role}-{uuid.uuid4().hex[:8]}"
    with _connection(bind) as conn:
        user_id = conn.execute(insert(User).values(
            username=username, full_name=full_name, role=str(role), password_hash=hash_password(password, "fast"),
            is_active=is_active, grid_area_codes=list(grid_areas), phone=None, created_at=datetime.now(UTC),
        ).returning(User.id)).scalar_one()
    return AuthUser(id=user_id, username=username, password=password, role=role, grid_area_codes=tuple(grid_areas))


def make_api_key(bind: Engine | Connection, user: AuthUser | int, *, name: str = "test terminal",
                 expires_at: datetime | None = None, revoked_at: datetime | None = None) -> str:
    """Insert an API key for ``user`` and return the full key ``sl_<prefix>_<secret>``.

    Parameters
    ----------
    bind : Engine or Connection
        As for :func:`make_user`.
    user : AuthUser or int
        The owner, or its id.
    name : str
        The key's label.
    expires_at, revoked_at : datetime, optional
        Set them (UTC) to make an expired or revoked key.

    Returns
    -------
    str
        The key; send it with :func:`api_key_headers`.
    """
    prefix, key = new_api_key()
    with _connection(bind) as conn:
        conn.execute(insert(ApiKey).values(
            user_id=user if isinstance(user, int) else user.id, name=name, prefix=prefix,
            key_hash=hash_password(key, "fast"), created_at=datetime.now(UTC), expires_at=expires_at,
            revoked_at=revoked_at,
        ))
    return key


def auth_headers(client: TestClient, user: AuthUser | str, password: str | None = None) -> dict[str, str]:
    """Sign in through ``POST /api/v1/auth/token`` and return ``{"Authorization": "Bearer <jwt>"}``.

    Parameters
    ----------
    client : TestClient
        A client of the app under test.
    user : AuthUser or str
        A user from :func:`make_user` (its password is used), or a username.
    password : str, optional
        The password when ``user`` is a username (default :data:`DEFAULT_PASSWORD`).

    Returns
    -------
    dict
        Headers to pass as ``headers=`` on requests.
    """
    username = user.username if isinstance(user, AuthUser) else user
    secret = password or (user.password if isinstance(user, AuthUser) else DEFAULT_PASSWORD)
    response = client.post("/api/v1/auth/token", data={"username": username, "password": secret})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def api_key_headers(key: str) -> dict[str, str]:
    """Return ``{"X-API-Key": key}`` for a key from :func:`make_api_key` or the API."""
    return {"X-API-Key": key}


def settings_for_tests(database_url: str, **overrides: Any) -> Settings:
    """Return app settings for tests: a fixed JWT secret, ``fast`` password hashing, plain-text logs.

    Parameters
    ----------
    database_url : str
        The database under test.
    **overrides
        Any other ``Settings`` field, e.g. ``data_dir=tmp_path`` or ``access_token_minutes=5``.

    Returns
    -------
    Settings
        Pass to ``create_app``.
    """
    values: dict[str, Any] = {"jwt_secret": TEST_JWT_SECRET, "password_hash_profile": "fast", "log_json": False}
    return Settings(database_url=database_url, **{**values, **overrides})


def override_session(app: FastAPI, conn: Connection) -> None:
    """Make the app's request sessions join ``conn``'s transaction (SAVEPOINTs), so commits are rolled back too.

    Parameters
    ----------
    app : FastAPI
        The app under test (no lifespan needed: ``TestClient(app)`` without ``with`` is enough).
    conn : Connection
        A connection inside an outer transaction, e.g. the ``db_conn`` fixture.
    """

    def session_on_test_connection() -> Iterator[Session]:
        with Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False) as session:
            yield session

    app.dependency_overrides[get_session] = session_on_test_connection
