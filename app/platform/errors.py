"""The one table from error classes to HTTP statuses, and the handlers that answer ``{code, message, details}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from design_rules.calendar import CalendarDataError
from design_rules.catalogue import CatalogueInvalidError
from design_rules.profiles import ProfileError, UnknownProfileError
from gis.errors import InvalidInputError, NotFoundError, SanlingError

logger = logging.getLogger("sanling.errors")

# Most specific classes first; the first isinstance match wins.
# A broken data file of the deployment (profile, catalogue, calendar) is the server's fault: 500 with its code.
STATUS_BY_ERROR: list[tuple[type[SanlingError], int]] = [
    (UnknownProfileError, 422),  # a request named a profile that does not exist
    (ProfileError, 500),
    (CatalogueInvalidError, 500),
    (CalendarDataError, 500),
    (NotFoundError, 404),
    (InvalidInputError, 422),
    (SanlingError, 422),
]


def register_error_table(error_class: type[SanlingError], status: int) -> None:
    """Add a more specific mapping (used by routers whose errors need 404/409/…)."""
    STATUS_BY_ERROR.insert(0, (error_class, status))


def status_for(exc: SanlingError) -> int:
    """Return the HTTP status for ``exc`` from the table."""
    for error_class, status in STATUS_BY_ERROR:
        if isinstance(exc, error_class):
            return status
    return 422


async def _sanling_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SanlingError)
    # An error class may set `response_headers`, e.g. WWW-Authenticate on the 401s of app/identity/auth.py.
    return JSONResponse(exc.to_dict(), status_code=status_for(exc), headers=getattr(exc, "response_headers", None))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    first = problems[0] if problems else {"field": "", "message": "invalid request"}
    return JSONResponse(
        {"code": "REQUEST_INVALID", "message": f"{first['field']}: {first['message']}",
         "details": {"errors": problems}},
        status_code=422,
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHENTICATED", 403: "FORBIDDEN"}.get(
        exc.status_code, f"HTTP_{exc.status_code}")
    return JSONResponse({"code": code, "message": str(exc.detail), "details": {}},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"code": "INTERNAL_ERROR", "message": "An unexpected error occurred.", "details": {}},
                        status_code=500)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the handlers so every error body is ``{code, message, details}``."""
    app.add_exception_handler(SanlingError, _sanling_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
