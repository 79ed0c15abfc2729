"""Roles, password and API-key hashing, JWT access tokens and the authentication dependencies (docs/auth.md)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, get_request_settings
from app.platform.errors import ErrorStatuses
from app.platform.models import ApiKey, User
from app.settings import Settings
from gis.errors import SanlingError

TOKEN_URL = "/api/v1/auth/token"
JWT_ALGORITHM = "HS256"
API_KEY_PREFIX_LENGTH = 8
# last_used_at is written at most this often per key, so a busy terminal does not turn every read into a write.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


class Role(StrEnum):
    """The roles of issue 5; ``admin`` passes every role check (see :func:`require_roles`)."""

    CUSTOMER = "customer"
    CUSTOMER_MANAGER = "customer_manager"
    PROJECT_MANAGER = "project_manager"
    PLANNER = "planner"
    GIS_ADMIN = "gis_admin"
    ADMIN = "admin"


# Roles whose work is limited to the grid areas listed on their user (MISSION R5.1, the "1+1" team).
GRID_SCOPED_ROLES = frozenset({Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER})
# Roles that see the whole network (planners read it, GIS administrators import it, admins do everything).
NETWORK_WIDE_ROLES = frozenset({Role.PLANNER, Role.GIS_ADMIN, Role.ADMIN})


class UnauthenticatedError(SanlingError):
    """No credentials were presented (HTTP 401 with ``WWW-Authenticate: Bearer``)."""

    code = "UNAUTHENTICATED"
    default_message = "Authentication is required: send 'Authorization: Bearer <token or API key>' or 'X-API-Key'."
    response_headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class CredentialsInvalidError(UnauthenticatedError):
    """The username and password, token or API key are not valid; never says which part was wrong."""

    code = "CREDENTIALS_INVALID"
    default_message = "The credentials are not valid."
    response_headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class TokenExpiredError(UnauthenticatedError):
    """The access token (or API key) was valid but has expired."""

    code = "TOKEN_EXPIRED"
    default_message = "The access token has expired; request a new one."
    response_headers: ClassVar[dict[str, str]] = {
        "WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token expired"'}


class ForbiddenError(SanlingError):
    """The caller is authenticated but the role or scope does not allow the action (HTTP 403)."""

    code = "FORBIDDEN"
    default_message = "Your role does not allow this action."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = (
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
)


# --- password and key hashing -------------------------------------------------------------------------------

# Cheap argon2id parameters for test suites (SANLING_PASSWORD_HASH_PROFILE=fast); production keeps
# argon2-cffi's defaults (time_cost=3, memory_cost=64 MiB, parallelism=4; RFC 9106 low-memory profile).
_FAST_HASH_PARAMETERS: dict[str, Any] = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@lru_cache(maxsize=4)
def password_hasher(profile: Literal["default", "fast"] = "default") -> PasswordHasher:
    """Return the argon2id hasher of a cost profile.

    Parameters
    ----------
    profile : {"default", "fast"}
        ``default``: argon2-cffi's defaults; ``fast``: cheap parameters for tests only.

    Returns
    -------
    PasswordHasher
        A hasher producing ``$argon2id$`` strings; verification reads the cost from the hash itself,
        so hashes made under either profile verify under both.
    """
    if profile == "fast":
        return PasswordHasher(type=Type.ID, **_FAST_HASH_PARAMETERS)
    return PasswordHasher(type=Type.ID)


@lru_cache(maxsize=4)
def _dummy_hash(profile: Literal["default", "fast"]) -> str:
    # Verified against when the username or key prefix is unknown, so a miss costs what a hit costs.
    return password_hasher(profile).hash(secrets.token_urlsafe(16))


def hash_password(password: str, profile: Literal["default", "fast"] = "default") -> str:
    """Return the argon2id hash of ``password`` (also used for API-key secrets).

    Parameters
    ----------
    password : str
        The clear text.
    profile : {"default", "fast"}
        Cost profile, see :func:`password_hasher`.

    Returns
    -------
    str
        The encoded hash, ``$argon2id$v=19$m=…,t=…,p=…$salt$hash``.
    """
    return password_hasher(profile).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Return whether ``password`` matches ``password_hash``; a malformed hash counts as a mismatch.

    Parameters
    ----------
    password_hash : str
        An argon2 hash from :func:`hash_password`.
    password : str
        The clear text presented.

    Returns
    -------
    bool
        True when they match.
    """
    try:
        return password_hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate_password(session: Session, *, username: str, password: str, settings: Settings) -> User:
    """Return the active user with this username and password, or raise without saying which part was wrong.

    Parameters
    ----------
    session : Session
        The request's session (read only).
    username : str
        As typed; compared case-insensitively (usernames are stored in lower case).
    password : str
        The clear text presented.
    settings : Settings
        Supplies the hash cost profile of the dummy hash used for unknown users.

    Returns
    -------
    User
        The signed-in user.

    Raises
    ------
    CredentialsInvalidError
        Unknown user, wrong password or deactivated user, all with one message; an unknown user still
        costs one argon2 verification so response times do not reveal which usernames exist.
    """
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    stored_hash = user.password_hash if user is not None else _dummy_hash(settings.password_hash_profile)
    matches = verify_password(stored_hash, password)
    if user is None or not matches or not user.is_active:
        raise CredentialsInvalidError("Incorrect username or password.")
    return user


# --- API keys -----------------------------------------------------------------------------------------------


def new_api_key() -> tuple[str, str]:
    """Generate an API key.

    Returns
    -------
    tuple of str
        ``(prefix, key)``: ``prefix`` is 8 lower-case hex characters (stored, indexed, shown in lists) and
        ``key`` is ``sl_<prefix>_<secret>`` with a ``secrets.token_urlsafe(32)`` secret, shown once.
    """
    prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
    return prefix, f"sl_{prefix}_{secrets.token_urlsafe(32)}"


def api_key_prefix(key: str) -> str:
    """Return the prefix of a key shaped ``sl_<prefix>_<secret>``.

    Parameters
    ----------
    key : str
        The key as presented.

    Returns
    -------
    str
        The 8-character prefix.

    Raises
    ------
    CredentialsInvalidError
        The key does not have the expected shape.
    """
    prefix = key[3:3 + API_KEY_PREFIX_LENGTH]
    shaped = (key.startswith("sl_") and len(key) > 4 + API_KEY_PREFIX_LENGTH
              and key[3 + API_KEY_PREFIX_LENGTH] == "_" and all(c in "0123456789abcdef" for c in prefix))
    if not shaped:
        raise CredentialsInvalidError("The API key is not valid.")
    return prefix


class _VerifiedKeys:
    """Bounded memory of (stored hash → SHA-256 of the key that verified against it).

    argon2 verification costs tens of milliseconds by design; a terminal sends its key on every
    request, so a key already verified in this process is recognised by its SHA-256 instead. The key
    row is still read on every request, so revocation and expiry take effect at once.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self._digests: OrderedDict[str, bytes] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def matches(self, key_hash: str, key: str) -> bool:
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            known = self._digests.get(key_hash)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        if not verify_password(key_hash, key):
            return False
        with self._lock:
            self._digests[key_hash] = digest
            self._digests.move_to_end(key_hash)
            while len(self._digests) > self._maxsize:
                self._digests.popitem(last=False)
        return True


_verified_keys = _VerifiedKeys()


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for DateTime(timezone=True); Sanling stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def authenticate_api_key(session: Session, key: str, *, settings: Settings,
                         now: datetime | None = None) -> tuple[User, ApiKey]:
    """Return the user and key row of a valid, unrevoked, unexpired API key.

    Parameters
    ----------
    session : Session
        The request's session; ``last_used_at`` is updated on it (at most once a minute per key).
    key : str
        The key as presented, ``sl_<prefix>_<secret>``.
    settings : Settings
        Supplies the hash cost profile of the dummy hash used for unknown prefixes.
    now : datetime, optional
        The current time (UTC); defaults to the clock.

    Returns
    -------
    tuple of (User, ApiKey)
        The key's owner and the key row.

    Raises
    ------
    CredentialsInvalidError
        Malformed, unknown or revoked key, or its owner is deactivated.
    TokenExpiredError
        The key is genuine but past ``expires_at``.
    """
    now = now or datetime.now(UTC)
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == api_key_prefix(key)))
    if row is None:
        verify_password(_dummy_hash(settings.password_hash_profile), key)
        raise CredentialsInvalidError("The API key is not valid.")
    if not _verified_keys.matches(row.key_hash, key):
        raise CredentialsInvalidError("The API key is not valid.")
    if row.revoked_at is not None:
        raise CredentialsInvalidError("The API key has been revoked.")
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        raise TokenExpiredError("The API key has expired.")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise CredentialsInvalidError("The API key is not valid.")
    if row.last_used_at is None or now - _aware(row.last_used_at) >= API_KEY_TOUCH_INTERVAL:
        row.last_used_at = now
        session.commit()  # before the route runs: the only write authentication makes
    return user, row


# --- JWT access tokens --------------------------------------------------------------------------------------


def issue_access_token(user: User, settings: Settings, *, now: datetime | None = None) -> tuple[str, int]:
    """Sign an HS256 access token for ``user``.

    Parameters
    ----------
    user : User
        The signed-in user.
    settings : Settings
        Supplies the signing key and ``access_token_minutes``.
    now : datetime, optional
        Issue time (UTC); defaults to the clock. Tests pass a past time to get an expired token.

    Returns
    -------
    tuple of (str, int)
        The token and its lifetime in seconds. Claims: ``sub`` (user id), ``role``, ``iat``, ``exp``,
        ``jti`` (random UUID).
    """
    now = now or datetime.now(UTC)
    lifetime = timedelta(minutes=settings.access_token_minutes)
    claims = {"sub": str(user.id), "role": user.role, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, settings.jwt_signing_key(), algorithm=JWT_ALGORITHM), int(lifetime.total_seconds())


def decode_access_token(token: str, settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """Verify an access token's signature and expiry and return its claims.

    Parameters
    ----------
    token : str
        The compact JWT.
    settings : Settings
        Supplies the signing key.
    now : datetime, optional
        The clock (default: now), checked against ``exp`` on every call.

    Returns
    -------
    dict
        The claims; ``sub``, ``role``, ``iat``, ``exp`` and ``jti`` are guaranteed present.

    Raises
    ------
    TokenExpiredError
        The signature is valid but ``exp`` has passed.
    CredentialsInvalidError
        Anything else: bad signature, other algorithm, malformed token, missing claims.
    """
    try:
        claims = _verified_claims(token, settings.jwt_signing_key())
    except jwt.InvalidTokenError as exc:
        raise CredentialsInvalidError("The access token is not valid.") from exc
    if not claims["exp"] > (now or datetime.now(UTC)).timestamp():  # PyJWT's rule: expired at exp, no leeway
        raise TokenExpiredError()
    return dict(claims)


@lru_cache(maxsize=4096)
def _verified_claims(token: str, signing_key: str) -> dict[str, Any]:
    """The claims of a token whose signature verifies (expiry checked by the caller, on every use).

    Remembered per (token, key): a phone sends the same token with every request, and verifying it again
    only repeats the HMAC and the JSON parsing. A token that fails is not remembered.
    """
    claims: dict[str, Any] = jwt.decode(token, signing_key, algorithms=[JWT_ALGORITHM],
                                        options={"require": ["sub", "role", "iat", "exp", "jti"], "verify_exp": False})
    if not isinstance(claims["exp"], int | float):
        raise jwt.InvalidTokenError("exp must be a number")
    return claims


# --- request dependencies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthenticatedUser:
    """The caller of a request, detached from the database session.

    Attributes
    ----------
    id, username, role, full_name, phone
        From the ``users`` row (the role is read from the database, not trusted from the token).
    grid_area_codes : tuple of str
        Grid areas of a customer manager or project manager; empty for other roles.
    auth_method : {"password", "api_key"}
        ``password``: a JWT from the password flow; ``api_key``: a terminal's API key.
    api_key_id : int or None
        The key used, when ``auth_method`` is ``api_key``.
    """

    id: int
    username: str
    role: Role
    full_name: str | None = None
    grid_area_codes: tuple[str, ...] = ()
    phone: str | None = None
    auth_method: Literal["password", "api_key"] = "password"
    api_key_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the user is an administrator."""
        return self.role is Role.ADMIN

    def has_role(self, *roles: Role) -> bool:
        """Return whether the user holds one of ``roles`` (administrators hold every role)."""
        return self.is_admin or self.role in roles

    @classmethod
    def from_row(cls, user: User | Row[Any], *, api_key: ApiKey | None = None) -> AuthenticatedUser:
        """Build from a ``users`` row (entity or :data:`_USER_COLUMNS` row) and, for API-key requests, the key row."""
        return cls(id=user.id, username=user.username, role=Role(user.role), full_name=user.full_name,
                   grid_area_codes=tuple(user.grid_area_codes or ()), phone=user.phone,
                   auth_method="api_key" if api_key is not None else "password",
                   api_key_id=api_key.id if api_key is not None else None)


#: What a request needs of its caller's ``users`` row.
_USER_COLUMNS = select(User.id, User.username, User.role, User.full_name, User.grid_area_codes, User.phone,
                       User.is_active).where(User.id == bindparam("user_id"))

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False,
                               description="An access token from the password flow, or an API key.")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="A terminal's API key, `sl_<prefix>_<secret>`.")


def get_current_user(
    request: Request,
    session: SessionDep,
    bearer: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> AuthenticatedUser:
    """Authenticate the request from ``Authorization: Bearer`` (JWT or API key) or ``X-API-Key``.

    Parameters
    ----------
    request : Request
        Gives the app's settings.
    session : Session
        The request's session.
    bearer : str or None
        The bearer credential; a value starting ``sl_`` is an API key, anything else a JWT.
    api_key : str or None
        The ``X-API-Key`` header, used when there is no bearer credential.

    Returns
    -------
    AuthenticatedUser
        The caller.

    Raises
    ------
    UnauthenticatedError
        No credentials (401).
    CredentialsInvalidError, TokenExpiredError
        Credentials presented but not valid (401).
    """
    settings = get_request_settings(request)
    credential = bearer or api_key
    if not credential:
        raise UnauthenticatedError()
    if credential.startswith("sl_"):
        user, key_row = authenticate_api_key(session, credential, settings=settings)
        return AuthenticatedUser.from_row(user, api_key=key_row)
    claims = decode_access_token(credential, settings)
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise CredentialsInvalidError("The access token is not valid.") from exc
    # a token check only reads: no SQLite write lock (app/platform/db.py); the columns through Core, not an ORM entity
    # (0.1 ms less on every authenticated request)
    row = read_only_connection(session).execute(_USER_COLUMNS, {"user_id": user_id}).one_or_none()
    if row is None or not row.is_active:
        raise CredentialsInvalidError("The access token is not valid.")
    user = AuthenticatedUser.from_row(row)
    # End the read-only unit of work (begun DEFERRED on SQLite, app/platform/db.py): the route's own unit of work then
    # begins with its first statement, as IMMEDIATE when it writes, instead of upgrading a read snapshot.
    session.commit()
    return user


CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[AuthenticatedUser], AuthenticatedUser]:
    """Return a dependency that lets through callers holding one of ``roles``; admins always pass.

    Parameters
    ----------
    *roles : Role
        The roles allowed (at least one).

    Returns
    -------
    callable
        A FastAPI dependency returning the :class:`AuthenticatedUser`; it raises ``UnauthenticatedError``
        (401) without credentials and ``ForbiddenError`` (403) for another role.

    Examples
    --------
    >>> from typing import Annotated
    >>> from fastapi import Depends
    >>> PlannerUser = Annotated[AuthenticatedUser, Depends(require_roles(Role.PLANNER))]
    """
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = frozenset(Role(role) for role in roles)

    async def check_role(user: CurrentUser) -> AuthenticatedUser:  # async: no thread hop for a set lookup
        if not user.has_role(*allowed):
            raise ForbiddenError(required_roles=sorted(allowed), role=str(user.role))
        return user

    check_role.__name__ = "require_" + "_or_".join(sorted(allowed))
    return check_role


AdminUser = Annotated[AuthenticatedUser, Depends(require_roles(Role.ADMIN))]


# --- scoping helpers ----------------------------------------------------------------------------------------


def grid_area_scope(user: AuthenticatedUser) -> frozenset[str] | None:
    """Return the grid areas whose work the user may see, or None for the whole network.

    Parameters
    ----------
    user : AuthenticatedUser
        The caller.

    Returns
    -------
    frozenset of str or None
        None for planners, GIS administrators and admins; the user's own codes for customer managers and
        project managers; the empty set for customers (they are scoped by ownership, not by area).
    """
    if user.role in NETWORK_WIDE_ROLES:
        return None
    if user.role in GRID_SCOPED_ROLES:
        return frozenset(user.grid_area_codes)
    return frozenset()


def can_access_grid_area(user: AuthenticatedUser, code: str | None) -> bool:
    """Return whether grid area ``code`` is inside the user's scope (see :func:`grid_area_scope`).

    This checks scope only; whether the role may perform the action at all is :func:`require_roles`' job.

    Parameters
    ----------
    user : AuthenticatedUser
        The caller.
    code : str or None
        The grid area code of the object (None: not yet assigned to an area, visible network-wide only).

    Returns
    -------
    bool
        True when the user may act on work in that grid area.
    """
    scope = grid_area_scope(user)
    return scope is None or (code is not None and code in scope)


def require_grid_area(user: AuthenticatedUser, code: str | None) -> None:
    """Raise ``ForbiddenError`` (403) unless :func:`can_access_grid_area` allows ``code``.

    Parameters
    ----------
    user : AuthenticatedUser
        The caller.
    code : str or None
        The grid area code of the object.
    """
    if not can_access_grid_area(user, code):
        raise ForbiddenError("This grid area is outside your assignment.", grid_area_code=code)


def require_owner(user: AuthenticatedUser, owner_user_id: int | None) -> None:
    """Raise ``ForbiddenError`` (403) when a customer is not the owner of the object.

    Staff roles are not limited by this check (scope them with :func:`require_grid_area`).

    Parameters
    ----------
    user : AuthenticatedUser
        The caller.
    owner_user_id : int or None
        The id of the customer who owns the object, such as an application.
    """
    if user.role is Role.CUSTOMER and owner_user_id != user.id:
        raise ForbiddenError("Customers may only see their own applications.")
