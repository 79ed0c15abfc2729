"""Idempotent mutating requests for terminals on weak networks: ``Idempotency-Key`` replays the first answer (R5)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from app.platform.audit import as_utc, utc_now
from app.platform.errors import ErrorStatuses
from app.platform.models import IdempotencyKey
from gis.errors import SanlingError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 200
# Response headers worth replaying; others (dates, request ids, lengths) belong to the new response.
REPLAYED_RESPONSE_HEADERS = ("etag", "location", "content-location")
_PG_LOCK_NOT_AVAILABLE = "55P03"

ActionResult = tuple[int, Any] | tuple[int, Any, Mapping[str, str]]
"""What an idempotent action returns: ``(status, body)`` or ``(status, body, headers)``; the body is made
JSON-safe with ``jsonable_encoder`` (pydantic models, datetimes)."""


class IdempotencyKeyInvalidError(SanlingError):
    """The ``Idempotency-Key`` header is empty, too long or not printable ASCII (HTTP 422)."""

    code = "IDEMPOTENCY_KEY_INVALID"
    default_message = f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters."


class IdempotencyKeyReusedError(SanlingError):
    """The key was used before for a different request (other body, method or path) (HTTP 422)."""

    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = f"This {HEADER} was already used for a different request; use a new key."


class IdempotencyInProgressError(SanlingError):
    """A request with the same key is still being processed (HTTP 409); retry shortly for its result."""

    code = "IDEMPOTENCY_IN_PROGRESS"
    default_message = f"A request with this {HEADER} is still in progress; retry in a moment."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = (
    (IdempotencyKeyInvalidError, 422),
    (IdempotencyKeyReusedError, 422),
    (IdempotencyInProgressError, 409),
)


def validate_key(key: str | None) -> str | None:
    """Return ``key`` unchanged, or raise ``IdempotencyKeyInvalidError`` unless it is 1-200 printable ASCII.

    Examples
    --------
    >>> validate_key("3f2b9c1e-7d2a-4a7e-9d4e-0c8a1b2c3d4e")
    '3f2b9c1e-7d2a-4a7e-9d4e-0c8a1b2c3d4e'
    >>> validate_key(None) is None
    True
    """
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_CHARS or not all(" " <= char <= "~" for char in key):
        raise IdempotencyKeyInvalidError(field=HEADER, length=len(key))
    return key


def fingerprint(data: bytes | Any) -> str:
    """Return the SHA-256 hex digest identifying a request body.

    Bytes that parse as JSON are fingerprinted in canonical form (sorted keys, no spaces), so a client that
    re-serialises the same object on retry is recognised; other bytes as they are; any other value (a parsed
    body, a list of form fields) as its canonical JSON.

    Examples
    --------
    >>> fingerprint(b'{"b": 1, "a": 2}') == fingerprint({"a": 2, "b": 1})
    True
    """
    if isinstance(data, bytes | bytearray):
        try:
            data = json.loads(data) if data else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return hashlib.sha256(data).hexdigest()
    canonical = json.dumps(jsonable_encoder(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _split_result(result: ActionResult) -> tuple[int, Any, dict[str, str]]:
    if len(result) == 3:
        status, body, headers = result  # type: ignore[misc]
        return int(status), jsonable_encoder(body), {str(k): str(v) for k, v in headers.items()}
    status, body = result  # type: ignore[misc]
    return int(status), jsonable_encoder(body), {}


def _replay(row: IdempotencyKey, *, method: str, path: str, body_fingerprint: str) -> JSONResponse:
    if (row.method, row.path, row.body_fingerprint) != (method, path, body_fingerprint):
        raise IdempotencyKeyReusedError(first_method=row.method, first_path=row.path)
    if row.status_code is None:  # only visible to a reader that shares the first request's transaction
        raise IdempotencyInProgressError()
    headers = {**(row.response_headers or {}), REPLAYED_HEADER: "true"}
    return JSONResponse(row.response_body, status_code=row.status_code, headers=headers)


def _find(session: Session, *, user_id: int, key: str) -> IdempotencyKey | None:
    return session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id,
                                                       IdempotencyKey.key == key))


def _claim(session: Session, row: IdempotencyKey, *, wait_s: float) -> None:
    """Insert the key row in a savepoint; on PostgreSQL wait at most ``wait_s`` for a competing request."""
    with session.begin_nested():
        if session.get_bind().dialect.name == "postgresql":
            # SET LOCAL-style: reverted when the savepoint rolls back, restored by hand when it succeeds.
            previous = session.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
            session.execute(text("SELECT set_config('lock_timeout', :value, true)"),
                            {"value": f"{max(1, round(wait_s * 1000))}ms"})
            session.add(row)
            session.flush()
            session.execute(text("SELECT set_config('lock_timeout', :value, true)"), {"value": previous})
        else:
            session.add(row)
            session.flush()


def run_idempotent(session: Session, *, user_id: int, key: str | None, method: str, path: str,
                   body_fingerprint: str, action: Callable[[], ActionResult],
                   ttl: timedelta = timedelta(hours=24), wait_s: float = 10.0) -> JSONResponse:
    """Run ``action`` at most once per ``(user_id, key)`` and return its response, or replay the stored one.

    Parameters
    ----------
    session : Session
        The request's unit of work. The key row is written in it, together with the action's effect; the
        **caller commits** afterwards (helpers never commit), so the effect and the stored answer are one.
    user_id : int
        The caller; keys are scoped per user.
    key : str or None
        The ``Idempotency-Key`` header. None: ``action`` simply runs.
    method, path : str
        The request's method and path; with the fingerprint they must match on a replay.
    body_fingerprint : str
        :func:`fingerprint` of the request body.
    action : callable
        Does the work in ``session`` (without committing) and returns ``(status, body)`` or
        ``(status, body, headers)``. An exception propagates and nothing is stored, so a retry runs again
        (the failed attempt had no effect once the caller rolls back).
    ttl : timedelta
        Keys older than this are forgotten (``SANLING_IDEMPOTENCY_TTL_HOURS``).
    wait_s : float
        PostgreSQL: how long a second request with the same key waits for the first to commit before it
        answers 409 ``IDEMPOTENCY_IN_PROGRESS``. (SQLite serialises writers at BEGIN IMMEDIATE, so the
        second request simply waits and then replays.)

    Returns
    -------
    JSONResponse
        The action's response, or the stored first response with ``Idempotent-Replayed: true``.

    Raises
    ------
    IdempotencyKeyInvalidError
        The key is not 1-200 printable ASCII characters (422).
    IdempotencyKeyReusedError
        The key was used for a different method, path or body (422).
    IdempotencyInProgressError
        The first request with this key has not finished (409).
    """
    if validate_key(key) is None:
        status, body, headers = _split_result(action())
        return JSONResponse(body, status_code=status, headers=headers or None)
    assert key is not None
    now = utc_now()
    existing = _find(session, user_id=user_id, key=key)
    if existing is not None and as_utc(existing.created_at) <= now - ttl:
        session.delete(existing)  # expired and not yet cleaned up: the key is free again
        session.flush()
        existing = None
    if existing is not None:
        return _replay(existing, method=method, path=path, body_fingerprint=body_fingerprint)
    row = IdempotencyKey(user_id=user_id, key=key, method=method, path=path[:500],
                         body_fingerprint=body_fingerprint, created_at=now)
    try:
        _claim(session, row, wait_s=wait_s)
    except IntegrityError:
        # Another request with this key committed first (PostgreSQL waited for it at the unique index).
        winner = _find(session, user_id=user_id, key=key)
        if winner is None:  # not visible: a snapshot older than the winner's commit (REPEATABLE READ)
            raise IdempotencyInProgressError() from None
        return _replay(winner, method=method, path=path, body_fingerprint=body_fingerprint)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
            raise IdempotencyInProgressError(waited_s=wait_s) from None
        raise
    status, body, headers = _split_result(action())
    row.status_code = status
    row.response_body = body
    row.response_headers = {name: value for name, value in headers.items()
                            if name.lower() in REPLAYED_RESPONSE_HEADERS} or None
    session.flush()
    return JSONResponse(body, status_code=status, headers=headers or None)


def delete_expired_keys(session: Session, *, ttl: timedelta, now: datetime | None = None) -> int:
    """Delete keys created more than ``ttl`` before ``now`` (flushed, not committed); return how many."""
    cutoff = as_utc(now or utc_now()) - ttl
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at <= cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class IdempotentRequest:
    """A request's idempotency data, built by the :data:`IdempotencyDep` dependency; call :meth:`run`."""

    key: str | None
    method: str
    path: str
    body_fingerprint: str
    ttl: timedelta
    wait_s: float

    def run(self, session: Session, *, user_id: int, action: Callable[[], ActionResult]) -> JSONResponse:
        """Run ``action`` through :func:`run_idempotent` for this request; the caller commits afterwards."""
        return run_idempotent(session, user_id=user_id, key=self.key, method=self.method, path=self.path,
                              body_fingerprint=self.body_fingerprint, action=action, ttl=self.ttl,
                              wait_s=self.wait_s)


async def _request_fingerprint(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        fields: list[Any] = []
        for name, value in (await request.form()).multi_items():  # parsed once, cached by Starlette
            if isinstance(value, UploadFile):
                digest = hashlib.sha256()
                while chunk := await value.read(1 << 20):
                    digest.update(chunk)
                await value.seek(0)
                fields.append([name, {"filename": value.filename, "sha256": digest.hexdigest()}])
            else:
                fields.append([name, value])
        return fingerprint(fields)
    return fingerprint(await request.body())


async def idempotent_request(
    request: Request,
    key: Annotated[str | None, Header(
        alias=HEADER, description="A client-chosen unique key (1-200 printable ASCII, e.g. a UUID) for this "
        "change. Resending the same request with the same key returns the first answer (header "
        "`Idempotent-Replayed: true`) and never repeats the change; the key with another body answers 422 "
        "`IDEMPOTENCY_KEY_REUSED`. Keys are per user and expire after `SANLING_IDEMPOTENCY_TTL_HOURS`.",
        examples=["3f2b9c1e-7d2a-4a7e-9d4e-0c8a1b2c3d4e"], json_schema_extra={"pattern": "^[ -~]{1,200}$"})] = None,
) -> IdempotentRequest:
    """FastAPI dependency: validate ``Idempotency-Key`` and fingerprint the body (JSON, form or multipart)."""
    validate_key(key)
    settings = request.app.state.settings
    return IdempotentRequest(key=key, method=request.method, path=request.url.path,
                             body_fingerprint=await _request_fingerprint(request) if key is not None else "",
                             ttl=timedelta(hours=settings.idempotency_ttl_hours),
                             wait_s=settings.idempotency_wait_s)


IdempotencyDep = Annotated[IdempotentRequest, Depends(idempotent_request)]
"""Add ``idem: IdempotencyDep`` to a mutating route and return ``idem.run(session, user_id=..., action=...)``."""
