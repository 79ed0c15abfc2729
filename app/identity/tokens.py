"""JWT access tokens (HS256): issuing them and verifying them, with the verified-signature cache (docs/auth.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt

from app.identity.errors import CredentialsInvalidError, TokenExpiredError
from app.platform.models import User
from app.settings import Settings

JWT_ALGORITHM = "HS256"


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

