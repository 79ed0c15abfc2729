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
#: How far in the future a token's ``iat`` may lie (clocks of the workers and hosts that sign differ a little).
CLOCK_SKEW_S = 60


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
        ``jti`` (random UUID) and ``ver`` (the user's ``token_version``: a password or role change moves it, and
        the tokens carrying the old one stop working).
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)  # whole seconds, so exp − iat is the lifetime exactly
    lifetime = timedelta(minutes=settings.access_token_minutes)
    claims = {"sub": str(user.id), "role": user.role, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
              "ver": user.token_version or 0}
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
        The claims; ``sub``, ``role``, ``iat``, ``exp``, ``jti`` and ``ver`` are guaranteed present.

    Raises
    ------
    TokenExpiredError
        The signature is valid but ``exp`` has passed.
    CredentialsInvalidError
        Anything else: bad signature, other algorithm, malformed token, missing claims, a lifetime ``exp − iat``
        beyond ``SANLING_ACCESS_TOKEN_MINUTES`` (however well signed), an ``iat`` in the future.
    """
    try:
        claims = _verified_claims(token, settings.jwt_signing_key())
    except jwt.InvalidTokenError as exc:
        raise CredentialsInvalidError("The access token is not valid.") from exc
    clock = (now or datetime.now(UTC)).timestamp()
    if claims["exp"] - claims["iat"] > settings.access_token_minutes * 60 or claims["iat"] > clock + CLOCK_SKEW_S:
        raise CredentialsInvalidError("The access token is not valid.")
    if not claims["exp"] > clock:  # PyJWT's rule: expired at exp, no leeway
        raise TokenExpiredError()
    return dict(claims)


@lru_cache(maxsize=4096)
def _verified_claims(token: str, signing_key: str) -> dict[str, Any]:
    """The claims of a token whose signature verifies (expiry checked by the caller, on every use).

    Remembered per (token, key): a phone sends the same token with every request, and verifying it again
    only repeats the HMAC and the JSON parsing. A token that fails is not remembered.
    """
    claims: dict[str, Any] = jwt.decode(token, signing_key, algorithms=[JWT_ALGORITHM],
                                        options={"require": ["sub", "role", "iat", "exp", "jti", "ver"],
                                                 "verify_exp": False, "verify_iat": False})
    if not all(isinstance(claims[name], int | float) and not isinstance(claims[name], bool)
               for name in ("exp", "iat")):
        raise jwt.InvalidTokenError("exp and iat must be numbers")
    if not isinstance(claims["ver"], int) or isinstance(claims["ver"], bool):
        raise jwt.InvalidTokenError("ver must be an integer")
    return claims

