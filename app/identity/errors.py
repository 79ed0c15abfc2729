"""The authentication errors (401 and 403) and their HTTP statuses, ``ERROR_STATUSES`` (docs/auth.md)."""

from __future__ import annotations

from typing import ClassVar

from app.platform.errors import ErrorStatuses
from gis.errors import SanlingError


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


#: HTTP statuses of these errors (``app.wiring.error_table`` reads them as ``app.identity.auth.ERROR_STATUSES``).
ERROR_STATUSES: ErrorStatuses = (
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
)
