"""The one table from error classes to HTTP statuses, and the handlers that answer ``{code, message, details}``."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.platform.db import is_database_busy
from design_rules.calendar import CalendarDataError
from design_rules.catalogue import CatalogueInvalidError
from design_rules.profiles import ProfileError, UnknownProfileError
from gis.errors import InvalidInputError, NotFoundError, SanlingError

logger = logging.getLogger("sanling.errors")

#: The ASGI scope key under which the request middleware (``app/platform/observability.py``) keeps the request id.
REQUEST_ID_SCOPE_KEY = "sanling.request_id"

ErrorStatuses = tuple[tuple[type[SanlingError], int], ...]
"""Pairs of an error class and its HTTP status, as each context declares them in an ``ERROR_STATUSES`` constant."""

#: The general classes, after every context's own. A broken data file of the deployment (profile, catalogue,
#: calendar) is the server's fault: 500 with its code.
BASE_ERROR_STATUSES: ErrorStatuses = (
    (UnknownProfileError, 422),  # a request named a profile that does not exist
    (ProfileError, 500),
    (CatalogueInvalidError, 500),
    (CalendarDataError, 500),
    (NotFoundError, 404),
    (InvalidInputError, 422),
    (SanlingError, 422),
)


@dataclass(frozen=True)
class ErrorTable:
    """The one exception → status table of an app, built by ``app.wiring.error_table`` and immutable after.

    The first ``isinstance`` match wins, so a class must come before any of its bases; an entry that an
    earlier, more general one would shadow is refused when the table is made.

    >>> table = ErrorTable(((NotFoundError, 404), (SanlingError, 422)))
    >>> table.status_for(NotFoundError()), table.status_for(InvalidInputError())
    (404, 422)
    >>> ErrorTable(((SanlingError, 422), (NotFoundError, 404)))
    Traceback (most recent call last):
    ...
    ValueError: NotFoundError (404) is shadowed by SanlingError (422) listed before it
    """

    entries: ErrorStatuses

    def __post_init__(self) -> None:
        for position, (error_class, status) in enumerate(self.entries):
            for earlier, earlier_status in self.entries[:position]:
                if issubclass(error_class, earlier) and earlier_status != status:
                    raise ValueError(f"{error_class.__name__} ({status}) is shadowed by {earlier.__name__} "
                                     f"({earlier_status}) listed before it")

    def status_for(self, exc: SanlingError) -> int:
        """Return the HTTP status for ``exc``: the first entry it is an instance of, else 422."""
        for error_class, status in self.entries:
            if isinstance(exc, error_class):
                return status
        return 422


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


def internal_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """Log an unexpected exception with its traceback and request id; return the 500 ``INTERNAL_ERROR`` answer.

    The request middleware calls it for anything its app raised (so the exception never reaches the server,
    which would log it again without the id); the answer and the log line carry the middleware's request id.
    """
    request_id = (request.scope.get(REQUEST_ID_SCOPE_KEY) or request.headers.get("x-request-id", "")[:200]
                  or uuid.uuid4().hex)
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc,
                 extra={"request_id": request_id})
    return JSONResponse({"code": "INTERNAL_ERROR", "message": "An unexpected error occurred.", "details": {}},
                        status_code=500, headers={"X-Request-ID": request_id})


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's outermost ServerErrorMiddleware calls this only for an exception raised outside the request
    # middleware (e.g. in a middleware added after it); it then re-raises it to the server.
    return internal_error_response(request, exc)


#: Seconds a client is told to wait (``Retry-After``) when a lock wait ran out (503 ``DATABASE_BUSY``).
DATABASE_BUSY_RETRY_AFTER_S = 5


def database_busy_response() -> JSONResponse:
    """503 ``DATABASE_BUSY`` with ``Retry-After``: the request waited its bound for a lock (an import, a writer).

    >>> database_busy_response().headers["retry-after"]
    '5'
    """
    return JSONResponse(
        {"code": "DATABASE_BUSY", "message": "The database is busy: another transaction held the lock this request "
         "waited for (e.g. a large import on SQLite). Nothing was changed; retry after Retry-After seconds.",
         "details": {"retry_after_s": DATABASE_BUSY_RETRY_AFTER_S}},
        status_code=503, headers={"Retry-After": str(DATABASE_BUSY_RETRY_AFTER_S)})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # SQLite's "database is locked" after the busy timeout, PostgreSQL's lock_not_available: retry, not a 500.
    # Any other OperationalError goes on to the request middleware's 500 (logged there with the request id).
    if not is_database_busy(exc):
        raise exc
    logger.warning("database busy on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return database_busy_response()


def add_exception_handlers(app: FastAPI, table: ErrorTable) -> None:
    """Register the handlers so every error body is ``{code, message, details}``, statuses from ``table``."""

    async def _sanling_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SanlingError)
        status = table.status_for(exc)
        if status >= 500:  # the deployment's fault (e.g. a broken profile file): logged with its traceback
            logger.error("%s on %s %s", exc.code, request.method, request.url.path, exc_info=exc)
        # An error class may set `response_headers`, e.g. WWW-Authenticate on the 401s of app/identity/auth.py.
        return JSONResponse(exc.to_dict(), status_code=status, headers=getattr(exc, "response_headers", None))

    app.add_exception_handler(SanlingError, _sanling_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
