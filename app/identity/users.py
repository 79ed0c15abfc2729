"""User and API-key management shared by the API and the CLI; helpers flush but never commit."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.identity.api_keys import new_api_key
from app.identity.passwords import hash_password
from app.identity.roles import GRID_SCOPED_ROLES, AuthenticatedUser, Role
from app.platform.errors import ErrorStatuses
from app.platform.models import ApiKey, GridArea, User
from app.platform.params import JSON_INTEGER, Id, Line
from gis.errors import InvalidInputError, NotFoundError, SanlingError

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{2,63}$")
#: What a username may be as typed (upper-case ASCII is lower-cased), declared in the OpenAPI.
USERNAME_INPUT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$"
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
MAX_API_KEY_DAYS = 3650
#: An API key's name: one line (no control character) with at least one character that is not a space.
KEY_NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"


class UsernameTakenError(SanlingError):
    """Another user already has this username (HTTP 409)."""

    code = "USERNAME_TAKEN"
    default_message = "This username is already taken."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = (
    (UsernameTakenError, 409),
)

GridAreaCode = Annotated[Line, Field(min_length=1, max_length=64)]

#: The JSON Schema of the rule ``_check_scope`` enforces: grid areas only for the roles they scope. Declared on
#: the input models so a client (and a fuzzer) knows it; a role left out of a PATCH keeps the stored one, which
#: the server checks (``update_user``) and no schema can.
GRID_SCOPE_RULE = {
    "if": {"required": ["role"], "properties": {"role": {
        "enum": sorted(str(role) for role in Role if role not in GRID_SCOPED_ROLES)}}},
    "then": {"properties": {"grid_area_codes": {"maxItems": 0}}},
}


class _Declared:
    """Adds JSON-schema keywords to a field's schema whose check runs in a validator (as ``app.platform.params``)."""

    __slots__ = ("keywords",)

    def __init__(self, **keywords: object) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


#: A password as sent: 8–256 characters (checked by ``_check_password``, declared in the OpenAPI).
Password = Annotated[SecretStr, _Declared(minLength=MIN_PASSWORD_CHARS, maxLength=MAX_PASSWORD_CHARS)]


def _normalise_username(value: object) -> object:
    # ASCII only: str.lower() would turn some other letters (the Kelvin sign) into ASCII the pattern refuses
    return value.lower() if isinstance(value, str) and value.isascii() else value


def _check_username(value: str) -> str:
    if not USERNAME_RE.fullmatch(value):
        raise ValueError("3-64 characters: lower-case letters, digits and _ . @ -, starting with a letter or digit")
    return value


def _check_password(value: SecretStr | None) -> SecretStr | None:
    if value is not None and not MIN_PASSWORD_CHARS <= len(value.get_secret_value()) <= MAX_PASSWORD_CHARS:
        raise ValueError(f"must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    return value


def _dedupe(codes: list[str] | None) -> list[str] | None:
    return None if codes is None else list(dict.fromkeys(code.strip() for code in codes))


def _check_scope(role: Role | None, codes: list[str] | None) -> None:
    if role is not None and codes and role not in GRID_SCOPED_ROLES:
        raise ValueError("grid_area_codes apply only to customer_manager and project_manager")


class UserCreate(BaseModel):
    """A new user (POST /api/v1/users, ``sanling user create``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=GRID_SCOPE_RULE)

    username: str = Field(description="Login name; stored in lower case.", examples=["pm.wanzhou"],
                          json_schema_extra={"pattern": USERNAME_INPUT_PATTERN})
    password: Password = Field(description=f"{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters.")
    role: Role = Field(description="One of the roles in docs/auth.md.", examples=["project_manager"])
    full_name: Line | None = Field(default=None, max_length=200, examples=["张工"])
    grid_area_codes: list[GridAreaCode] = Field(
        default_factory=list, max_length=200,
        description="Grid areas of a customer manager or project manager (must exist); none for the other "
                    "roles.", examples=[["WZ-01"]])
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{4,30}$", examples=["13800000000"])

    _username_before = field_validator("username", mode="before")(_normalise_username)
    _username = field_validator("username")(_check_username)
    _password = field_validator("password")(_check_password)
    _codes = field_validator("grid_area_codes")(_dedupe)

    @model_validator(mode="after")
    def _check_grid_scope(self) -> UserCreate:
        _check_scope(self.role, self.grid_area_codes)
        return self


class UserUpdate(BaseModel):
    """Changes to a user (PATCH /api/v1/users/{id}); omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=GRID_SCOPE_RULE)

    password: Password | None = Field(default=None, description="A new password.")
    role: Role | None = None
    full_name: Line | None = Field(default=None, max_length=200)
    grid_area_codes: list[GridAreaCode] | None = Field(
        default=None, max_length=200, description="Replaces the list; only for a customer manager or project "
        "manager (the role sent, else the stored one).")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{4,30}$")
    is_active: bool | None = Field(default=None, strict=True,
                                   description="False deactivates: tokens and API keys stop working.")

    _password = field_validator("password")(_check_password)
    _codes = field_validator("grid_area_codes")(_dedupe)


class ApiKeyCreate(BaseModel):
    """A new API key (POST /api/v1/auth/api-keys, ``sanling apikey create``)."""

    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=100, description="What the key is for (stored without the spaces "
                      "around it).", examples=["PM tablet 3"], json_schema_extra={"pattern": KEY_NAME_PATTERN})
    expires_days: Annotated[int, Field(ge=1, le=MAX_API_KEY_DAYS), JSON_INTEGER] | None = Field(
        default=None, description="Days until the key expires; omitted: never.", examples=[365])
    user_id: Annotated[Id, JSON_INTEGER] | None = Field(default=None,
                                                        description="Owner (admins only); omitted: yourself.")

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        # checked as sent (the declared length and pattern), stored stripped
        if not re.fullmatch(KEY_NAME_PATTERN, value):
            raise ValueError("one line with a character that is not a space")
        return value.strip()


def invalid_input(exc: ValidationError) -> InvalidInputError:
    """Turn a pydantic ``ValidationError`` into an ``InvalidInputError`` naming the first field at fault.

    Parameters
    ----------
    exc : ValidationError
        From building one of this module's input models (the CLI does; the API gets 422 from FastAPI).

    Returns
    -------
    InvalidInputError
        ``details`` holds ``field`` and the list of ``errors`` (field, message); input values are left out,
        so a rejected password is never echoed.
    """
    errors = [{"field": ".".join(str(part) for part in error["loc"]) or "input",
               "message": error["msg"].removeprefix("Value error, ")} for error in exc.errors()]
    first = errors[0]
    return InvalidInputError(f"{first['field']}: {first['message']}", field=first["field"], errors=errors)


def _check_grid_areas_exist(session: Session, codes: list[str]) -> None:
    if not codes:
        return
    known = set(session.scalars(select(GridArea.code).where(GridArea.code.in_(codes))))
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise InvalidInputError(f"Unknown grid area code(s): {', '.join(unknown)}", field="grid_area_codes",
                                unknown=unknown)


def create_user(session: Session, *, data: UserCreate, hash_profile: Literal["default", "fast"] = "default") -> User:
    """Add a user (flushed, not committed).

    Parameters
    ----------
    session : Session
        The unit of work; the caller commits.
    data : UserCreate
        The validated input.
    hash_profile : {"default", "fast"}
        argon2id cost profile (``Settings.password_hash_profile``).

    Returns
    -------
    User
        The new row, with its id.

    Raises
    ------
    UsernameTakenError
        The username exists.
    InvalidInputError
        A grid area code does not exist (``details.field == "grid_area_codes"``).
    """
    if session.scalar(select(User.id).where(User.username == data.username)) is not None:
        raise UsernameTakenError(field="username", username=data.username)
    _check_grid_areas_exist(session, data.grid_area_codes)
    user = User(username=data.username, full_name=data.full_name, role=str(data.role),
                password_hash=hash_password(data.password.get_secret_value(), hash_profile),
                is_active=True, grid_area_codes=list(data.grid_area_codes), phone=data.phone)
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, *, user: User, data: UserUpdate,
                hash_profile: Literal["default", "fast"] = "default") -> User:
    """Apply ``data`` to ``user`` (flushed, not committed).

    Parameters
    ----------
    session : Session
        The unit of work; the caller commits.
    user : User
        The row to change.
    data : UserUpdate
        The fields to change; unset fields are left alone.
    hash_profile : {"default", "fast"}
        argon2id cost profile for a new password.

    Returns
    -------
    User
        The updated row. A new password or another role moves its ``token_version``, so the access tokens issued
        before stop working (API keys are separate credentials and stay valid).

    Raises
    ------
    InvalidInputError
        Grid areas given for a role without grid scope, or an unknown grid area code.
    """
    role = data.role if data.role is not None else Role(user.role)
    codes = data.grid_area_codes if data.grid_area_codes is not None else list(user.grid_area_codes or [])
    if role not in GRID_SCOPED_ROLES:
        if data.grid_area_codes:
            raise InvalidInputError("grid_area_codes apply only to customer_manager and project_manager",
                                    field="grid_area_codes")
        codes = []
    _check_grid_areas_exist(session, codes)
    if str(role) != user.role or data.password is not None:
        user.token_version = (user.token_version or 0) + 1  # the tokens issued before stop working
    user.role = str(role)
    user.grid_area_codes = codes
    if "full_name" in data.model_fields_set:
        user.full_name = data.full_name
    if "phone" in data.model_fields_set:
        user.phone = data.phone
    if data.is_active is not None:
        user.is_active = data.is_active
    if data.password is not None:
        user.password_hash = hash_password(data.password.get_secret_value(), hash_profile)
    session.flush()
    return user


def get_user(session: Session, *, user_id: int | None = None, username: str | None = None) -> User:
    """Return the user with this id or username.

    Parameters
    ----------
    session : Session
        Any session.
    user_id : int, optional
        The user's id.
    username : str, optional
        The username (case-insensitive); used when ``user_id`` is None.

    Returns
    -------
    User
        The row.

    Raises
    ------
    NotFoundError
        No such user.
    """
    if user_id is not None:
        user = session.get(User, user_id)
    else:
        user = session.scalar(select(User).where(User.username == (username or "").strip().lower()))
    if user is None:
        raise NotFoundError("No such user.", **({"user_id": user_id} if user_id is not None else
                                                {"username": username}))
    return user


def list_users(session: Session, *, role: Role | None = None) -> list[User]:
    """Return users ordered by id, optionally of one role."""
    query = select(User).order_by(User.id)
    if role is not None:
        query = query.where(User.role == str(role))
    return list(session.scalars(query))


def create_api_key(session: Session, *, user: User, name: str, expires_days: int | None = None,
                   now: datetime | None = None, hash_profile: Literal["default", "fast"] = "default",
                   ) -> tuple[ApiKey, str]:
    """Add an API key for ``user`` (flushed, not committed).

    Parameters
    ----------
    session : Session
        The unit of work; the caller commits.
    user : User
        The owner.
    name : str
        What the key is for.
    expires_days : int, optional
        Lifetime in days; None: no expiry.
    now : datetime, optional
        Creation time (UTC); defaults to the clock.
    hash_profile : {"default", "fast"}
        argon2id cost profile for the stored hash.

    Returns
    -------
    tuple of (ApiKey, str)
        The row and the full key ``sl_<prefix>_<secret>``; the key is not stored and cannot be shown again.
    """
    now = now or datetime.now(UTC)
    for _attempt in range(10):
        prefix, key = new_api_key()
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is None:
            break
    else:  # 10 collisions in a 2**32 space means the random source is broken
        raise RuntimeError("could not find a free API key prefix")
    row = ApiKey(user_id=user.id, name=name, prefix=prefix, key_hash=hash_password(key, hash_profile),
                 created_at=now, expires_at=now + timedelta(days=expires_days) if expires_days else None)
    session.add(row)
    session.flush()
    return row, key


def list_api_keys(session: Session, *, user_id: int | None = None) -> list[ApiKey]:
    """Return API keys ordered by id: those of ``user_id``, or all when it is None."""
    query = select(ApiKey).order_by(ApiKey.id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(session.scalars(query))


def revoke_api_key(session: Session, *, key_id: int, actor: AuthenticatedUser | None = None,
                   now: datetime | None = None) -> ApiKey:
    """Revoke an API key (flushed, not committed); revoking twice keeps the first time.

    Parameters
    ----------
    session : Session
        The unit of work; the caller commits.
    key_id : int
        The key's id.
    actor : AuthenticatedUser, optional
        The caller; a non-admin may only revoke their own keys. None (the CLI) may revoke any key.
    now : datetime, optional
        Revocation time (UTC); defaults to the clock.

    Returns
    -------
    ApiKey
        The revoked row.

    Raises
    ------
    NotFoundError
        No such key, or it belongs to someone else and the actor is not an admin (existence is not revealed).
    """
    row = session.get(ApiKey, key_id)
    if row is None or (actor is not None and not actor.is_admin and row.user_id != actor.id):
        raise NotFoundError("No such API key.", api_key_id=key_id)
    if row.revoked_at is None:
        row.revoked_at = now or datetime.now(UTC)
        session.flush()
    return row


def ensure_demo_users(session: Session, *, users_file: Path, password: str,
                      hash_profile: Literal["default", "fast"] = "default") -> list[User]:
    """Create or reset the demo accounts of ``users_file`` (TOML ``[[users]]``), all with ``password``.

    Existing accounts of the same name get the file's role, name and grid areas, are reactivated and get
    the password again, so running the demo twice works. The caller commits.
    """
    with users_file.open("rb") as f:
        entries = tomllib.load(f).get("users", [])
    done = []
    for entry in entries:
        try:
            data = UserCreate(password=SecretStr(password), **entry)
        except ValidationError as exc:
            raise invalid_input(exc) from exc
        user = session.scalar(select(User).where(User.username == data.username))
        if user is None:
            done.append(create_user(session, data=data, hash_profile=hash_profile))
            continue
        done.append(update_user(session, user=user, hash_profile=hash_profile, data=UserUpdate(
            password=data.password, role=data.role, full_name=data.full_name,
            grid_area_codes=data.grid_area_codes, is_active=True)))
    return done
