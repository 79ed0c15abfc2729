"""Append-only audit log of state changes: actor, server time, entity, action, before and after (issue 5 item 8)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.encoders import jsonable_encoder
from geoalchemy2.elements import WKBElement, WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from app.platform.models import AuditLog
from app.platform.observability import request_id_var

# Columns never copied into the log: secrets stay out of a table nobody may clean up.
SECRET_COLUMNS = frozenset({"password_hash", "key_hash"})
MAX_PAGE = 500


def utc_now() -> datetime:
    """Return the server clock in UTC (R5.3: the server's time is recorded, never the client's)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; naive values (SQLite hands those back) are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _current_request_id() -> str | None:
    request_id = request_id_var.get()
    return None if request_id == "-" else request_id[:64]


def record_change(session: Session, *, actor_user_id: int | None, actor_role: str | None, entity: str,
                  entity_id: str, action: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                  request_id: str | None = None) -> None:
    """Add one audit row to the caller's transaction (flushed with it, never committed here).

    Parameters
    ----------
    session : Session
        The unit of work of the change itself, so the change and its audit row commit or roll back together.
    actor_user_id, actor_role : int or None, str or None
        Who made the change; None for the system (a periodic job, the CLI).
    entity, entity_id : str
        What changed, e.g. ``"user"``, ``"42"``.
    action : str
        What happened, e.g. ``"created"``, ``"updated"``, ``"step_completed"``.
    before, after : mapping or None
        The state before and after (None for a creation or a removal); made JSON-safe with
        :func:`jsonable`, so datetimes, enums and geometries may be passed as they are.
    request_id : str, optional
        Defaults to the current request's id (``X-Request-ID``), when there is one.

    Notes
    -----
    The time is the server clock in UTC (R5.3). The table is append-only: there is no update or delete path in
    code, and database triggers refuse UPDATE and DELETE (migration ``0005_audit``).
    """
    session.add(AuditLog(
        occurred_at=utc_now(), actor_user_id=actor_user_id, actor_role=str(actor_role) if actor_role else None,
        entity=entity, entity_id=str(entity_id), action=action,
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        request_id=request_id if request_id is not None else _current_request_id(),
    ))


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``values`` as a JSON-safe dict: datetimes as ISO strings, geometries as WKT, enums as values."""
    return {str(key): _jsonable_value(value) for key, value in values.items()}


def _jsonable_value(value: Any) -> Any:
    if isinstance(value, WKBElement):
        return to_shape(value).wkt
    if isinstance(value, WKTElement):
        return str(value.data)
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return jsonable_encoder(value)


def snapshot(row: object, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """Return the column values of an ORM row for ``before``/``after``, without secret columns.

    Parameters
    ----------
    row : object
        A mapped instance, e.g. a ``User``.
    exclude : iterable of str
        Further column attributes to leave out. ``password_hash`` and ``key_hash`` are always left out.

    Returns
    -------
    dict
        ``{attribute: value}``, JSON-safe (see :func:`jsonable`).
    """
    skip = SECRET_COLUMNS | set(exclude)
    mapper = inspect(row).mapper
    return jsonable({attr.key: getattr(row, attr.key) for attr in mapper.column_attrs if attr.key not in skip})


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit listing; every field is optional."""

    entity: str | None = None
    entity_id: str | None = None
    actor_user_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_changes(session: Session, query: AuditQuery, *, limit: int = 100, offset: int = 0,
                 ) -> tuple[list[AuditLog], int]:
    """Return one page of audit rows, newest first, and the number of rows matching the filters.

    Parameters
    ----------
    session : Session
        Any session.
    query : AuditQuery
        The filters; ``since`` is inclusive and ``until`` exclusive, both compared in UTC.
    limit, offset : int
        The page (``limit`` at most 500).

    Returns
    -------
    tuple of (list of AuditLog, int)
        The rows and the total count.
    """
    conditions = []
    if query.entity is not None:
        conditions.append(AuditLog.entity == query.entity)
    if query.entity_id is not None:
        conditions.append(AuditLog.entity_id == query.entity_id)
    if query.actor_user_id is not None:
        conditions.append(AuditLog.actor_user_id == query.actor_user_id)
    if query.action is not None:
        conditions.append(AuditLog.action == query.action)
    if query.since is not None:
        conditions.append(AuditLog.occurred_at >= as_utc(query.since))
    if query.until is not None:
        conditions.append(AuditLog.occurred_at < as_utc(query.until))
    total = session.scalar(select(func.count()).select_from(AuditLog).where(*conditions)) or 0
    rows = session.scalars(select(AuditLog).where(*conditions).order_by(AuditLog.id.desc())
                           .limit(min(limit, MAX_PAGE)).offset(offset))
    return list(rows), int(total)
