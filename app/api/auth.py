"""Sign-in (OAuth2 password flow), the caller's identity, API keys and user administration (docs/auth.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from app.identity import users as user_service
from app.identity.auth import (
    AdminUser,
    CurrentUser,
    ForbiddenError,
    Role,
    SignInAttempt,
    issue_access_token,
    start_sign_in,
)
from app.platform.audit import record_change, snapshot
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, SettingsDep
from app.platform.models import ApiKey, User
from app.platform.params import Id
from app.platform.ratelimit import request_client_address
from app.settings import Settings
from gis.errors import InvalidInputError

router = APIRouter(prefix="/api/v1", tags=["auth"])



def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for DateTime(timezone=True); Sanling stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

_ERROR_BODY = {"application/json": {"example": {"code": "UNAUTHENTICATED", "message": "…", "details": {}}}}
_UNAUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid credentials (`UNAUTHENTICATED`, `CREDENTIALS_INVALID`, `TOKEN_EXPIRED`).",
          "content": _ERROR_BODY},
}
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    **_UNAUTHENTICATED,
    403: {"description": "The role does not allow this (`FORBIDDEN`)."},
}


class TokenResponse(BaseModel):
    """An access token from the password flow."""

    access_token: str = Field(description="HS256 JWT; send as `Authorization: Bearer <token>`.")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Lifetime in seconds.", examples=[3600])


class UserView(BaseModel):
    """A user as shown to administrators and to the user themselves (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str = Field(examples=["pm.wanzhou"])
    full_name: str | None = Field(examples=["张工"])
    role: Role
    is_active: bool
    grid_area_codes: list[str] = Field(examples=[["WZ-01"]])
    phone: str | None
    created_at: UtcDatetime


class MeView(UserView):
    """The caller, with how this request was authenticated."""

    auth_method: Literal["password", "api_key"] = Field(description="`password` (JWT) or `api_key`.")
    api_key_id: int | None = None


class ApiKeyView(BaseModel):
    """An API key without its secret; ``prefix`` identifies it (the key starts ``sl_<prefix>_``)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str = Field(examples=["3f9a0c1e"])
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None
    expires_at: UtcDatetime | None


class ApiKeyCreated(ApiKeyView):
    """A new API key, including the key itself, which is shown this once and never stored."""

    key: str = Field(description="`sl_<prefix>_<secret>`; send as `X-API-Key` or `Authorization: Bearer`.")


@router.post("/auth/token", response_model=TokenResponse, responses={
    401: {"description": "Incorrect username or password (`CREDENTIALS_INVALID`)."},
    429: {"description": "Too many failed sign-ins on this account or from this address (`RATE_LIMITED`); "
                         "retry after `Retry-After` seconds.",
          "headers": {"Retry-After": {"description": "Seconds until the lock ends.", "schema": {"type": "integer"}}}},
})
async def create_token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
                       settings: SettingsDep) -> Response:
    """Exchange a username and password for an access token (OAuth2 password flow).

    Unknown users, wrong passwords and deactivated users get the same answer after the same work. Failed attempts
    are counted per account and per client address; too many lock them for a while (docs/auth.md).
    """
    address = request_client_address(request)  # behind a trusted proxy, the forwarded client (not the proxy)
    attempt = await start_sign_in(session, username=form.username, password=form.password, settings=settings,
                                  address=address)
    return _TokenAnswer(attempt, settings)


class _TokenAnswer(Response):
    """The token route's answer, which verifies the password while it is being sent.

    By then the endpoint has returned and given back its request slot (``SANLING_REQUEST_CONCURRENCY``, a
    function-scoped dependency in ``app/main.py``), so sign-ins waiting for one of the process's few hash slots
    (``SANLING_PASSWORD_HASH_CONCURRENCY``) hold no request slot, and ``/healthz`` and the other requests of the
    worker are not queued behind their argon2 work. An error raised here is answered by the app's error
    handlers like any other; the session (a request-scoped dependency) is still open.
    """

    def __init__(self, attempt: SignInAttempt, settings: Settings) -> None:
        super().__init__(media_type="application/json")
        self.attempt = attempt
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = await self.attempt.verify()
        token, expires_in = issue_access_token(user, self.settings)
        answer = TokenResponse(access_token=token, expires_in=expires_in)
        await JSONResponse(answer.model_dump(mode="json"))(scope, receive, send)


@router.get("/auth/me", response_model=MeView, responses=_UNAUTHENTICATED)
def read_me(user: CurrentUser, session: SessionDep) -> MeView:
    """Return the signed-in user."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    row = user_service.get_user(session, user_id=user.id)
    return MeView.model_validate({**UserView.model_validate(row).model_dump(),
                                  "auth_method": user.auth_method, "api_key_id": user.api_key_id})


@router.post("/auth/api-keys", response_model=ApiKeyCreated, status_code=201, responses={
    **_FORBIDDEN, 404: {"description": "No user has `user_id` (`NOT_FOUND`)."}})
def create_api_key(body: user_service.ApiKeyCreate, user: CurrentUser, session: SessionDep,
                   settings: SettingsDep) -> ApiKeyCreated:
    """Create an API key for a terminal; the key is in this response only.

    Staff create keys for themselves; an admin may set ``user_id`` to create one for another user.
    A request authenticated by an API key cannot create keys, so a leaked key cannot outlive its revocation.
    """
    if user.auth_method == "api_key":
        raise ForbiddenError("API keys cannot create API keys; sign in with a password.")
    if body.user_id is not None and body.user_id != user.id:
        if not user.is_admin:
            raise ForbiddenError("Only an admin may create API keys for another user.", user_id=body.user_id)
        owner = user_service.get_user(session, user_id=body.user_id)
        if not owner.is_active:
            raise InvalidInputError("The user is deactivated.", field="user_id", user_id=body.user_id)
    else:
        if user.role is Role.CUSTOMER:
            raise ForbiddenError("API keys are for staff terminals; customers sign in with a password.")
        owner = user_service.get_user(session, user_id=user.id)
    row, key = user_service.create_api_key(session, user=owner, name=body.name, expires_days=body.expires_days,
                                           hash_profile=settings.password_hash_profile)
    record_change(session, actor_user_id=user.id, actor_role=user.role, entity="api_key", entity_id=str(row.id),
                  action="created", before=None, after=snapshot(row))
    session.commit()
    return ApiKeyCreated.model_validate({**ApiKeyView.model_validate(row).model_dump(), "key": key})


@router.get("/auth/api-keys", response_model=list[ApiKeyView], responses=_FORBIDDEN)
def list_api_keys(
    user: CurrentUser,
    session: SessionDep,
    user_id: Annotated[Id | None, Query(description="Another user's keys (admins only).")] = None,
) -> list[ApiKey]:
    """List your API keys (admins: another user's with ``user_id``), revoked and expired ones included."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    if user_id is not None and user_id != user.id and not user.is_admin:
        raise ForbiddenError("Only an admin may list another user's API keys.", user_id=user_id)
    return user_service.list_api_keys(session, user_id=user_id or user.id)


@router.delete("/auth/api-keys/{key_id}", response_model=ApiKeyView,
               responses={**_UNAUTHENTICATED, 404: {"description": "No such key among yours (`NOT_FOUND`)."}})
def revoke_api_key(key_id: Annotated[Id, Path(description="API key id.")], user: CurrentUser,
                   session: SessionDep) -> ApiKey:
    """Revoke an API key at once; admins may revoke anyone's. Another user's key answers 404."""
    existing = session.get(ApiKey, key_id)
    was_revoked = existing is not None and existing.revoked_at is not None
    row = user_service.revoke_api_key(session, key_id=key_id, actor=user)
    if not was_revoked:  # revoking twice changes nothing, so it is not logged twice
        record_change(session, actor_user_id=user.id, actor_role=user.role, entity="api_key", entity_id=str(row.id),
                      action="revoked", before={"revoked_at": None}, after={"revoked_at": row.revoked_at})
    session.commit()
    return row


@router.post("/users", response_model=UserView, status_code=201,
             responses={**_FORBIDDEN, 409: {"description": "Username taken (`USERNAME_TAKEN`)."}})
def create_user(body: user_service.UserCreate, admin: AdminUser, session: SessionDep,
                settings: SettingsDep) -> User:
    """Create a user (admins only); recorded in the audit log."""
    user = user_service.create_user(session, data=body, hash_profile=settings.password_hash_profile)
    record_change(session, actor_user_id=admin.id, actor_role=admin.role, entity="user", entity_id=str(user.id),
                  action="created", before=None, after=snapshot(user))
    session.commit()
    return user


@router.get("/users", response_model=list[UserView], responses=_FORBIDDEN)
def list_users(
    _admin: AdminUser,
    session: SessionDep,
    role: Annotated[Role | None, Query(description="Only users of this role.")] = None,
) -> list[User]:
    """List users (admins only)."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    return user_service.list_users(session, role=role)


@router.patch("/users/{user_id}", response_model=UserView,
              responses={**_FORBIDDEN, 404: {"description": "No such user (`NOT_FOUND`)."}})
def update_user(user_id: Annotated[Id, Path(description="User id.")], body: user_service.UserUpdate, admin: AdminUser,
                session: SessionDep, settings: SettingsDep) -> User:
    """Change a user's role, grid areas, contact details or password, or deactivate them (admins only).

    The change is recorded in the audit log with the user's state before and after (never the password).

    An admin cannot deactivate or demote themselves, so the last admin cannot lock everyone out by mistake.
    """
    user = user_service.get_user(session, user_id=user_id)
    if user.id == admin.id and (body.is_active is False or (body.role is not None and body.role is not Role.ADMIN)):
        raise InvalidInputError("You cannot deactivate or demote yourself.",
                                field="is_active" if body.is_active is False else "role")
    before = snapshot(user)
    user_service.update_user(session, user=user, data=body, hash_profile=settings.password_hash_profile)
    after = snapshot(user)
    if body.password is not None:  # the hash is never logged, only the fact that it changed
        after["password_changed"] = True
    record_change(session, actor_user_id=admin.id, actor_role=admin.role, entity="user", entity_id=str(user.id),
                  action="updated", before=before, after=after)
    session.commit()
    return user
