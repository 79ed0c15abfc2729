"""The audit log, read-only and for administrators (issue 5 item 8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.identity.auth import AdminUser
from app.platform.audit import MAX_PAGE, AuditQuery, as_utc, list_changes
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep
from app.platform.params import Id, IsoDatetime, Line, Offset

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class AuditEntryView(BaseModel):
    """One recorded state change."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: UtcDatetime = Field(description="Server clock (UTC) when the change was recorded (R5.3).")
    actor_user_id: int | None = Field(description="The user who made the change; null for the system or CLI.")
    actor_role: str | None = Field(examples=["admin"])
    entity: str = Field(examples=["user"])
    entity_id: str = Field(examples=["42"])
    action: str = Field(examples=["updated"])
    before: dict[str, Any] | None = Field(description="State before the change; null for a creation.")
    after: dict[str, Any] | None = Field(description="State after the change.")
    request_id: str | None = Field(description="`X-Request-ID` of the request that made the change.")


class AuditPage(BaseModel):
    """A page of audit entries, newest first."""

    items: list[AuditEntryView]
    total: int = Field(description="Entries matching the filters, over all pages.")
    limit: int
    offset: int


@router.get("", response_model=AuditPage, responses={
    401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
    403: {"description": "Not an admin (`FORBIDDEN`)."},
})
def list_audit_entries(
    _admin: AdminUser,
    session: SessionDep,
    entity: Annotated[Line | None, Query(max_length=64, description="Entity type.", examples=["user"])] = None,
    entity_id: Annotated[Line | None, Query(max_length=64, description="Entity id (with `entity`).")] = None,
    actor: Annotated[Id | None, Query(description="Only changes made by this user id.")] = None,
    action: Annotated[Line | None, Query(max_length=64, description="Only this action.", examples=["created"])] = None,
    since: Annotated[IsoDatetime | None, Query(description="From this time (inclusive), an ISO 8601 date-time "
                                                           "`YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]`; naive = UTC.")] = None,
    until: Annotated[IsoDatetime | None, Query(description="Before this time (exclusive), as `since`.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    offset: Annotated[Offset, Query(description="Entries to skip.")] = 0,
) -> AuditPage:
    """List audit entries, newest first (admins only). The log is append-only: there is no way to change it."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    query = AuditQuery(entity=entity, entity_id=entity_id, actor_user_id=actor, action=action, since=since,
                       until=until)
    rows, total = list_changes(session, query, limit=limit, offset=offset)
    return AuditPage(items=[AuditEntryView.model_validate(row) for row in rows], total=total, limit=limit,
                     offset=offset)
