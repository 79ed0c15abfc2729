"""The signed-in user's notifications: list and acknowledge (R5.4 warnings)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.identity.auth import CurrentUser
from app.platform import notifications
from app.platform.audit import as_utc, record_change
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep
from app.platform.idempotency import IdempotencyDep
from app.platform.params import Id, Offset

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])

UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class NotificationView(BaseModel):
    """A notification addressed to the caller."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str = Field(examples=["deadline_at_risk"])
    subject: str
    body: str
    entity: str | None = Field(examples=["application"])
    entity_id: str | None = Field(examples=["17"])
    created_at: UtcDatetime
    sent_at: UtcDatetime | None = Field(description="When a sender (log, SMS) delivered it; null until then.")
    acknowledged_at: UtcDatetime | None = Field(description="When you acknowledged it; null while unread.")


_ERRORS = {401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."}}


@router.get("", response_model=list[NotificationView], responses=_ERRORS)
def list_my_notifications(
    user: CurrentUser,
    session: SessionDep,
    unacknowledged: Annotated[bool, Query(description="Only those not yet acknowledged.")] = False,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    offset: Annotated[Offset, Query(description="Notifications to skip.")] = 0,
) -> list[NotificationView]:
    """List your notifications, newest first."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    rows = notifications.list_notifications(session, user_id=user.id, unacknowledged=unacknowledged, limit=limit,
                                            offset=offset)
    return [NotificationView.model_validate(row) for row in rows]


@router.post("/{notification_id}/ack", response_model=NotificationView, responses={
    **_ERRORS,
    404: {"description": "No such notification among yours (`NOT_FOUND`); others' are not revealed."},
    409: {"description": "`IDEMPOTENCY_IN_PROGRESS`: the same Idempotency-Key is still being processed."},
    422: {"description": "`IDEMPOTENCY_KEY_INVALID` or `IDEMPOTENCY_KEY_REUSED`."},
})
def acknowledge_notification(notification_id: Annotated[Id, Path(description="Notification id.")], user: CurrentUser,
                             session: SessionDep, idem: IdempotencyDep) -> JSONResponse:
    """Acknowledge one of your notifications; acknowledging again keeps the first time.

    Honours `Idempotency-Key` like every mutating terminal call (weak networks, R5).
    """
    def action() -> tuple[int, NotificationView]:
        row, changed = notifications.acknowledge(session, notification_id=notification_id, user_id=user.id)
        if changed:
            record_change(session, actor_user_id=user.id, actor_role=user.role, entity="notification",
                          entity_id=str(row.id), action="acknowledged", before={"acknowledged_at": None},
                          after={"acknowledged_at": row.acknowledged_at})
        return 200, NotificationView.model_validate(row)

    response = idem.run(session, user_id=user.id, action=action)
    session.commit()
    return response
