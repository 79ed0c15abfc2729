"""Authentication of requests: password sign-in and the FastAPI dependencies (docs/auth.md).

:func:`get_current_user` (``CurrentUser``), :func:`require_roles` (``AdminUser``), :func:`require_grid_area` and
:func:`require_owner` live here. The rest of identity's authentication lives in ``roles``, ``errors``, ``passwords``,
``api_keys`` and ``tokens``; its public names are re-exported here, so ``app.identity.auth`` stays the one import
for the routers and services (``ERROR_STATUSES`` included, for ``app.wiring``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from starlette.types import Scope

from app.identity.api_keys import (
    API_KEY_PREFIX_LENGTH,
    API_KEY_TOUCH_INTERVAL,
    api_key_prefix,
    authenticate_api_key,
    new_api_key,
)
from app.identity.errors import (
    ERROR_STATUSES,
    CredentialsInvalidError,
    ForbiddenError,
    TokenExpiredError,
    UnauthenticatedError,
)
from app.identity.passwords import hash_password, hash_slots, password_hasher, verify_password, verify_password_off_loop
from app.identity.roles import (
    GRID_SCOPED_ROLES,
    NETWORK_WIDE_ROLES,
    AuthenticatedUser,
    Role,
    can_access_grid_area,
    grid_area_scope,
)
from app.identity.throttle import ThrottlePolicy, charge, forgive
from app.identity.tokens import JWT_ALGORITHM, decode_access_token, issue_access_token
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, app_session, get_request_settings
from app.platform.models import User
from app.settings import Settings

__all__ = [
    "API_KEY_PREFIX_LENGTH",
    "API_KEY_TOUCH_INTERVAL",
    "ERROR_STATUSES",
    "GRID_SCOPED_ROLES",
    "JWT_ALGORITHM",
    "NETWORK_WIDE_ROLES",
    "TOKEN_URL",
    "AdminUser",
    "AuthenticatedUser",
    "CredentialsInvalidError",
    "CurrentUser",
    "ForbiddenError",
    "Role",
    "SignInAttempt",
    "TokenExpiredError",
    "UnauthenticatedError",
    "api_key_prefix",
    "authenticate",
    "authenticate_api_key",
    "authenticate_before_body",
    "authenticate_password",
    "can_access_grid_area",
    "check_credentials",
    "decode_access_token",
    "get_current_user",
    "grid_area_scope",
    "hash_password",
    "issue_access_token",
    "new_api_key",
    "password_hasher",
    "require_grid_area",
    "require_owner",
    "require_roles",
    "start_sign_in",
    "verify_password",
]

TOKEN_URL = "/api/v1/auth/token"


# Sign-in reads the users table, so it lives with the dependencies rather than in ``passwords``.
@dataclass
class SignInAttempt:
    """A sign-in counted by the throttle, whose password is not verified yet (:func:`start_sign_in`).

    ``verify`` computes the hash; the token route calls it while its answer is being sent, after the request
    slot (``SANLING_REQUEST_CONCURRENCY``, ``app/main.py``) was given back, so waiting sign-ins hold no slot.
    """

    session: Session
    username: str
    password: str
    address: str
    settings: Settings
    policy: ThrottlePolicy
    user: User | None

    async def verify(self) -> User:
        """Verify the password in a hash thread and return the user, or raise; a success forgives the account.

        Raises
        ------
        CredentialsInvalidError
            Unknown user, wrong password or deactivated user, all with one message; an unknown user still
            costs one argon2 verification so response times do not reveal which usernames exist.
        """
        user = self.user
        matches = await verify_password_off_loop(user.password_hash if user is not None else None, self.password,
                                                 slots=hash_slots(self.settings.password_hash_concurrency),
                                                 profile=self.settings.password_hash_profile)
        if user is None or not matches or not user.is_active:
            raise CredentialsInvalidError("Incorrect username or password.")
        await run_in_threadpool(partial(forgive, self.session, username=self.username, address=self.address,
                                        policy=self.policy))
        return user


async def start_sign_in(session: Session, *, username: str, password: str, settings: Settings,
                        address: str = "unknown") -> SignInAttempt:
    """Count a sign-in attempt against the account and the client address, and find the user (no hashing yet).

    The counters live in ``login_throttle`` (``app.identity.throttle``), shared by the workers; the attempt is
    counted before its password is hashed, so concurrent attempts cannot slip past the limit, and a locked
    account or address is refused here, before any argon2 work. No transaction stays open afterwards.

    Parameters
    ----------
    session : Session
        The request's session, with no transaction open; the throttle's writes are committed on it.
    username : str
        As typed; compared case-insensitively (usernames are stored in lower case).
    password : str
        The clear text presented.
    settings : Settings
        The throttle's limits, the hash slots and the dummy hash's cost profile.
    address : str
        The client's address (the per-address counter).

    Returns
    -------
    SignInAttempt
        Call its ``verify()``.

    Raises
    ------
    RateLimitedError
        Too many failed attempts on the account or from the address (429 with ``Retry-After``).
    """
    policy = ThrottlePolicy.from_settings(settings)
    user = await run_in_threadpool(_charge_and_find_user, session, username, address, policy)
    return SignInAttempt(session, username, password, address, settings, policy, user)


async def authenticate_password(session: Session, *, username: str, password: str, settings: Settings,
                                address: str = "unknown") -> User:
    """Return the active user with this username and password: :func:`start_sign_in`, then its ``verify()``.

    The password is verified in a hash thread (``app.identity.passwords.verify_password_off_loop``, at most
    ``SANLING_PASSWORD_HASH_CONCURRENCY`` at once per process), never on the event loop or in a request thread.

    Raises
    ------
    RateLimitedError
        Too many failed attempts on the account or from the address (429 with ``Retry-After``).
    CredentialsInvalidError
        Unknown user, wrong password or deactivated user, all with one message.
    """
    attempt = await start_sign_in(session, username=username, password=password, settings=settings, address=address)
    return await attempt.verify()


def _charge_and_find_user(session: Session, username: str, address: str, policy: ThrottlePolicy) -> User | None:
    charge(session, username=username, address=address, policy=policy)
    read_only_connection(session)  # read in a unit of work that takes no SQLite write lock, ended before the hash
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    session.commit()
    return user


# --- request dependencies -----------------------------------------------------------------------------------


#: What a request needs of its caller's ``users`` row.
_USER_COLUMNS = select(User.id, User.username, User.role, User.full_name, User.grid_area_codes, User.phone,
                       User.is_active, User.token_version).where(User.id == bindparam("user_id"))

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False,
                               description="An access token from the password flow, or an API key.")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="A terminal's API key, `sl_<prefix>_<secret>`.")


#: Where :func:`authenticate_before_body` leaves the caller for :func:`get_current_user` (the request's state).
_CHECKED_BEFORE_BODY = "sanling_authenticated_user"


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
    checked = request.scope.get("state", {}).get(_CHECKED_BEFORE_BODY)
    if checked is not None:  # the body middleware authenticated this request already (authenticate_before_body)
        return checked  # type: ignore[no-any-return]
    return authenticate(session, bearer or api_key, get_request_settings(request))


def authenticate(session: Session, credential: str | None, settings: Settings) -> AuthenticatedUser:
    """The caller a credential names: an API key (``sl_…``) or an access token, fully checked.

    The key row (unrevoked, unexpired, owner active) or the user row (active, token version) is read on
    ``session``; the read-only unit of work is ended before returning.
    """
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
    if claims["ver"] != row.token_version:  # issued before a password or role change
        raise CredentialsInvalidError("The access token has been revoked; sign in again.")
    user = AuthenticatedUser.from_row(row)
    # End the read-only unit of work (begun DEFERRED on SQLite, app/platform/db.py): the route's own unit of work then
    # begins with its first statement, as IMMEDIATE when it writes, instead of upgrading a read snapshot.
    session.commit()
    return user


CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]


def check_credentials(authorization: str | None, api_key: str | None, roles: tuple[str, ...] = (), *,
                      settings: Settings) -> None:
    """The cheap check of a request's credentials made before its body is read (``app.platform.body_limits``).

    Reads the headers as :func:`get_current_user` does (``Authorization: Bearer`` first, then ``X-API-Key``) and
    checks what needs no database and no argon2: an access token's signature, expiry and lifetime, an API key's
    shape. The route's dependency then does the full check (user row, token version, key row).

    Parameters
    ----------
    authorization : str or None
        The ``Authorization`` header.
    api_key : str or None
        The ``X-API-Key`` header.
    roles : tuple of str
        When not empty, a token's signed ``role`` must be one of them or ``admin`` (an API key's role is checked by
        the route: it needs the database).
    settings : Settings
        Supplies the signing key and the token lifetime.

    Raises
    ------
    UnauthenticatedError
        No credentials.
    CredentialsInvalidError, TokenExpiredError
        A token that does not verify or has expired, or a key that is not shaped ``sl_<prefix>_<secret>``.
    ForbiddenError
        A token of another role than ``roles``.
    """
    scheme, bearer = get_authorization_scheme_param(authorization)  # as OAuth2PasswordBearer reads it
    credential = (bearer if scheme.lower() == "bearer" else "") or api_key
    if not credential:
        raise UnauthenticatedError()
    if credential.startswith("sl_"):
        api_key_prefix(credential)
        return
    role = decode_access_token(credential, settings)["role"]
    if roles and role not in roles and role != Role.ADMIN:
        raise ForbiddenError(required_roles=sorted(roles), role=str(role))


async def authenticate_before_body(scope: Scope, authorization: str | None, api_key: str | None,
                                   roles: tuple[str, ...] = ()) -> None:
    """The full check of a request's credentials before its body is read (``app.platform.body_limits``).

    :func:`check_credentials` has passed (no database): this reads the key or user row as the route's
    dependency will (:func:`authenticate`, in a worker thread, on a session of the app's own factory), so a
    made-up API key of the right shape, a revoked key, or a token of a deactivated user is refused before one
    byte of a 1 GiB upload is received; with ``roles``, an API key's owner must hold one of them or be an admin.
    A key already verified in this process costs one indexed read (argon2 only for a key not seen before, in
    the bounded hash slots).
    """
    scheme, bearer = get_authorization_scheme_param(authorization)  # as check_credentials reads it
    credential = (bearer if scheme.lower() == "bearer" else "") or api_key
    app = scope["app"]

    def check() -> AuthenticatedUser:
        with app_session(app) as session:
            return authenticate(session, credential, app.state.settings)

    user = await run_in_threadpool(check)
    scope.setdefault("state", {})[_CHECKED_BEFORE_BODY] = user  # the route's dependency answers with it: one read
    if roles and user.role not in roles and user.role is not Role.ADMIN:
        raise ForbiddenError(required_roles=sorted(roles), role=str(user.role))


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


# --- scoping checks -----------------------------------------------------------------------------------------


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
