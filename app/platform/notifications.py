"""Notifications to users (deadline warnings R5.4, …) and the pluggable senders that deliver them."""

from __future__ import annotations

import importlib
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.platform.audit import utc_now
from app.platform.models import Notification, User
from gis.errors import NotFoundError, SanlingError

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger("sanling.notifications")

MAX_SEND_ATTEMPTS = 5
MAX_ERROR_CHARS = 2000
TEMPLATE_FIELDS = ("phone", "subject", "body", "kind", "entity", "entity_id", "notification_id")


class NotificationDeliveryError(SanlingError):
    """A sender could not deliver a notification (recorded in ``send_error``; retried later)."""

    code = "NOTIFICATION_DELIVERY_FAILED"
    default_message = "The notification could not be delivered."


def notify(session: Session, *, user_id: int, kind: str, subject: str, body: str, entity: str | None = None,
           entity_id: str | None = None, dedupe_key: str | None = None) -> Notification | None:
    """Queue a notification for ``user_id`` in the caller's transaction (flushed, never committed).

    Parameters
    ----------
    session : Session
        The unit of work; the caller commits.
    user_id : int
        The recipient.
    kind : str
        Machine-readable kind, e.g. ``"deadline_at_risk"``, ``"deadline_overdue"``.
    subject, body : str
        Text for people (the subject is cut to 200 characters).
    entity, entity_id : str, optional
        The object it is about, e.g. ``"application"``, ``"17"``.
    dedupe_key : str, optional
        At most one notification per ``(user_id, dedupe_key)`` ever exists, so a periodic job may call this
        every run (e.g. ``"deadline_at_risk:application:17:survey"``) and the user is warned once.

    Returns
    -------
    Notification or None
        The new row, or None when ``dedupe_key`` was already used for this user.
    """
    if dedupe_key is not None and session.scalar(select(Notification.id).where(
            Notification.user_id == user_id, Notification.dedupe_key == dedupe_key)) is not None:
        return None
    row = Notification(user_id=user_id, kind=kind, subject=subject[:200], body=body, entity=entity,
                       entity_id=None if entity_id is None else str(entity_id), dedupe_key=dedupe_key,
                       created_at=utc_now(), send_attempts=0)
    try:
        with session.begin_nested():  # a concurrent run inserted the same dedupe_key: keep theirs
            session.add(row)
            session.flush()
    except IntegrityError:
        if dedupe_key is None:
            raise
        return None
    return row


@runtime_checkable
class NotificationSender(Protocol):
    """Delivers one notification to its user; raises on failure (the error is recorded and retried)."""

    def send(self, notification: Notification, user: User) -> None:
        """Deliver ``notification`` to ``user`` or raise."""


class LoggingSender:
    """The default sender: one JSON log line per notification on the ``sanling.notifications`` logger."""

    def send(self, notification: Notification, user: User) -> None:
        """Log the notification (always succeeds)."""
        logger.info(json.dumps({
            "event": "notification", "notification_id": notification.id, "user_id": user.id,
            "username": user.username, "kind": notification.kind, "subject": notification.subject,
            "body": notification.body, "entity": notification.entity, "entity_id": notification.entity_id,
        }, ensure_ascii=False))


def render_template(template: str, values: dict[str, str]) -> tuple[bytes, str]:
    """Fill ``{field}`` placeholders of an SMS gateway body and return ``(bytes, content type)``.

    A template that is JSON once filled gets its values JSON-escaped and is sent as ``application/json``;
    any other template is sent as ``text/plain``. Unknown ``{...}`` text is left as it is.

    Examples
    --------
    >>> render_template('{"to": "{phone}", "msg": "{body}"}', {"phone": "13800000000", "body": 'say "hi"'})
    (b'{"to": "13800000000", "msg": "say \\\\"hi\\\\""}', 'application/json; charset=utf-8')
    """
    def fill(escape: bool) -> str:
        text = template
        for name, value in values.items():
            text = text.replace("{" + name + "}", json.dumps(value, ensure_ascii=False)[1:-1] if escape else value)
        return text

    as_json = fill(escape=True)
    try:
        json.loads(as_json)
    except json.JSONDecodeError:
        return fill(escape=False).encode(), "text/plain; charset=utf-8"
    return as_json.encode(), "application/json; charset=utf-8"


@dataclass(frozen=True)
class HttpSmsSender:
    """POSTs each notification to an SMS gateway (短信催办, R5.4); a non-2xx answer or no phone is a failure."""

    url: str
    template: str
    timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpSmsSender:
        """Build from ``SANLING_SMS_GATEWAY_URL``, ``SANLING_SMS_TEMPLATE`` and ``SANLING_SMS_TIMEOUT_S``."""
        return cls(url=settings.sms_gateway_url, template=settings.sms_template, timeout_s=settings.sms_timeout_s)

    def send(self, notification: Notification, user: User) -> None:
        """POST the filled template to the gateway; raise ``NotificationDeliveryError`` on failure."""
        if not user.phone:
            raise NotificationDeliveryError("The user has no phone number.", user_id=user.id)
        values = {"phone": user.phone, "subject": notification.subject, "body": notification.body,
                  "kind": notification.kind, "entity": notification.entity or "",
                  "entity_id": notification.entity_id or "", "notification_id": str(notification.id)}
        payload, content_type = render_template(self.template, values)
        request = urllib.request.Request(self.url, data=payload, method="POST",
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise NotificationDeliveryError(f"SMS gateway answered HTTP {exc.code}.", status=exc.code) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise NotificationDeliveryError(f"SMS gateway unreachable: {exc}") from exc


def sender_from_settings(settings: Settings) -> NotificationSender:
    """Return the sender named by ``SANLING_NOTIFY_SENDER``: ``logging``, ``sms_http`` or ``module:Class``.

    A ``module:Class`` is instantiated with the settings (``Class(settings)``) and must have ``send``.
    """
    name = settings.notify_sender
    if name == "logging":
        return LoggingSender()
    if name == "sms_http":
        return HttpSmsSender.from_settings(settings)
    module_name, _, class_name = name.partition(":")
    sender = getattr(importlib.import_module(module_name), class_name)(settings)
    if not isinstance(sender, NotificationSender):
        raise TypeError(f"{name} has no send(notification, user) method")
    return sender  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_pending` call did."""

    sent: int
    failed: int


def deliver_pending(session: Session, sender: NotificationSender, *, limit: int = 100,
                    max_attempts: int = MAX_SEND_ATTEMPTS) -> DeliveryReport:
    """Send unsent notifications (oldest first) and record ``sent_at`` or ``send_error`` (flushed, not committed).

    Parameters
    ----------
    session : Session
        The unit of work; the caller commits (the job commits after each batch, so delivery is at least once).
    sender : NotificationSender
        Delivers one notification.
    limit : int
        At most this many notifications.
    max_attempts : int
        Notifications that failed this often are left alone (their ``send_error`` stays for operators).

    Returns
    -------
    DeliveryReport
        Counts of sent and failed notifications.
    """
    rows = session.scalars(
        select(Notification).where(Notification.sent_at.is_(None), Notification.send_attempts < max_attempts)
        .order_by(Notification.id).limit(limit).with_for_update(skip_locked=True))
    sent = failed = 0
    for notification in rows:
        user = session.get(User, notification.user_id)
        notification.send_attempts += 1
        try:
            if user is None or not user.is_active:
                raise NotificationDeliveryError("The recipient is deactivated.", user_id=notification.user_id)
            sender.send(notification, user)
        except Exception as exc:  # any sender failure is recorded on the row and retried next run
            logger.warning("notification %s not delivered: %s", notification.id, exc)
            notification.send_error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            failed += 1
        else:
            notification.sent_at = utc_now()
            notification.send_error = None
            sent += 1
    session.flush()
    return DeliveryReport(sent=sent, failed=failed)


def list_notifications(session: Session, *, user_id: int, unacknowledged: bool = False, limit: int = 50,
                       offset: int = 0) -> list[Notification]:
    """Return the user's notifications, newest first."""
    query = select(Notification).where(Notification.user_id == user_id)
    if unacknowledged:
        query = query.where(Notification.acknowledged_at.is_(None))
    return list(session.scalars(query.order_by(Notification.id.desc()).limit(limit).offset(offset)))


def acknowledge(session: Session, *, notification_id: int, user_id: int) -> tuple[Notification, bool]:
    """Mark the user's notification as read (flushed, not committed); acknowledging twice keeps the first time.

    Returns
    -------
    tuple of (Notification, bool)
        The row and whether this call changed it.

    Raises
    ------
    NotFoundError
        No such notification, or it belongs to another user (existence is not revealed).
    """
    row = session.get(Notification, notification_id)
    if row is None or row.user_id != user_id:
        raise NotFoundError("No such notification among yours.", notification_id=notification_id)
    if row.acknowledged_at is not None:
        return row, False
    row.acknowledged_at = utc_now()
    session.flush()
    return row, True
