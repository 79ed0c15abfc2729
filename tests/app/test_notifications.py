"""Notifications (R5.4 warnings and 短信催办): queued once per dedupe key, delivered by a pluggable sender, listed
and acknowledged by their owner only."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Connection, update
from sqlalchemy.orm import Session

from app.identity.auth import Role
from app.main import create_app
from app.platform.models import Notification, User
from app.platform.notifications import (
    HttpSmsSender,
    LoggingSender,
    NotificationDeliveryError,
    deliver_pending,
    notify,
    render_template,
    sender_from_settings,
)
from app.settings import Settings
from tests.app.auth_helpers import (
    DEFAULT_PASSWORD,
    AuthUser,
    auth_headers,
    make_user,
    override_session,
    settings_for_tests,
)

NOTIFICATIONS = "/api/v1/notifications"


class RecordingSender:
    """A sender plugged in by ``SANLING_NOTIFY_SENDER=tests.app.test_notifications:RecordingSender``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: list[tuple[int, str]] = []

    def send(self, notification: Notification, user: User) -> None:
        self.sent.append((notification.id, user.username))


class FailingSender:
    def send(self, notification: Notification, user: User) -> None:
        raise ConnectionError("gateway down")


class SmsGateway:
    """A real HTTP server on a free loopback port that records POSTs and answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.status = 200
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                gateway.requests.append((self.headers["Content-Type"], self.rfile.read(length)))
                self.send_response(gateway.status)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def gateway() -> Iterator[SmsGateway]:
    server = SmsGateway()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def session(db_conn: Connection) -> Iterator[Session]:
    with Session(bind=db_conn, join_transaction_mode="create_savepoint", expire_on_commit=False) as session:
        yield session


@pytest.fixture
def client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> TestClient:
    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path))
    override_session(app, db_conn)
    return TestClient(app)


def _user(session: Session, db_conn: Connection, *, phone: str | None = "13800138000",
          role: Role = Role.CUSTOMER_MANAGER) -> User:
    user = session.get(User, make_user(db_conn, role).id)
    assert user is not None
    user.phone = phone
    session.flush()
    return user


def make_user_of(user: User) -> AuthUser:
    """The sign-in data of a row made by :func:`_user` (``make_user``'s default password)."""
    return AuthUser(id=user.id, username=user.username, password=DEFAULT_PASSWORD, role=Role(user.role))


def _notify(session: Session, user: User, subject: str = "勘查将到期", **kwargs: str) -> Notification:
    row = notify(session, user_id=user.id, kind="deadline_at_risk", subject=subject, body="1 个工作日内到期",
                 entity="application", entity_id="17", **kwargs)
    assert row is not None
    return row


def _unsent_only(session: Session, *keep: Notification) -> None:
    """Mark every other pending notification of the shared demo database as sent, so counts are exact."""
    session.execute(update(Notification).where(Notification.sent_at.is_(None),
                                               Notification.id.not_in([n.id for n in keep]))
                    .values(sent_at=Notification.created_at))


def test_a_warning_with_a_dedupe_key_is_created_once(session: Session, db_conn: Connection) -> None:
    """R5.4: the deadline watch runs every few minutes, the manager is warned once per step and level."""
    user = _user(session, db_conn)
    first = _notify(session, user, dedupe_key="at_risk:application:17:survey")
    again = notify(session, user_id=user.id, kind="deadline_at_risk", subject="again", body="again",
                   dedupe_key="at_risk:application:17:survey")
    other_level = _notify(session, user, dedupe_key="overdue:application:17:survey")
    assert again is None and first.id != other_level.id
    assert first.sent_at is None and first.acknowledged_at is None and first.created_at is not None


def test_without_a_dedupe_key_every_call_notifies(session: Session, db_conn: Connection) -> None:
    user = _user(session, db_conn)
    assert _notify(session, user).id != _notify(session, user).id


def test_logging_sender_writes_one_json_line(session: Session, db_conn: Connection,
                                             caplog: pytest.LogCaptureFixture) -> None:
    user = _user(session, db_conn)
    row = _notify(session, user)
    with caplog.at_level(logging.INFO, logger="sanling.notifications"):
        LoggingSender().send(row, user)
    (record,) = [r for r in caplog.records if r.name == "sanling.notifications"]
    line = json.loads(record.getMessage())
    assert line["notification_id"] == row.id and line["subject"] == "勘查将到期" and line["user_id"] == user.id


def test_sms_sender_posts_the_template_to_the_gateway(gateway: SmsGateway, session: Session,
                                                      db_conn: Connection) -> None:
    user = _user(session, db_conn, phone="13900000001")
    row = _notify(session, user)
    HttpSmsSender(url=gateway.url, template='{"mobile": "{phone}", "content": "【三零】{subject}：{body}"}').send(
        row, user)
    ((content_type, payload),) = gateway.requests
    assert content_type.startswith("application/json")
    assert json.loads(payload) == {"mobile": "13900000001", "content": "【三零】勘查将到期：1 个工作日内到期"}


@pytest.mark.parametrize("status", [500, 403])
def test_sms_gateway_errors_raise(gateway: SmsGateway, session: Session, db_conn: Connection, status: int) -> None:
    gateway.status = status
    user = _user(session, db_conn)
    with pytest.raises(NotificationDeliveryError, match=f"HTTP {status}"):
        HttpSmsSender(url=gateway.url, template="{phone} {body}").send(_notify(session, user), user)


def test_sms_sender_refuses_users_without_phone_and_dead_gateways(session: Session, db_conn: Connection) -> None:
    no_phone = _user(session, db_conn, phone=None)
    with pytest.raises(NotificationDeliveryError, match="no phone"):
        HttpSmsSender(url="http://127.0.0.1:9/", template="{body}").send(_notify(session, no_phone), no_phone)
    user = _user(session, db_conn)
    with pytest.raises(NotificationDeliveryError, match="unreachable"):
        HttpSmsSender(url="http://127.0.0.1:9/", template="{body}", timeout_s=2).send(_notify(session, user), user)


@pytest.mark.parametrize(("template", "content_type", "sent"), [
    ('{"to": "{phone}", "text": "{body}"}', "application/json", '{"to": "1", "text": "say \\"hi\\""}'),  # JSON
    ("to={phone}&text={body}", "text/plain", 'to=1&text=say "hi"'),                                     # plain
])
def test_render_template(template: str, content_type: str, sent: str) -> None:
    payload, kind = render_template(template, {"phone": "1", "body": 'say "hi"'})
    assert kind.startswith(content_type) and payload.decode() == sent


def test_deliver_pending_records_sent_at_and_errors(session: Session, db_conn: Connection) -> None:
    user = _user(session, db_conn)
    first, second = _notify(session, user), _notify(session, user)
    _unsent_only(session, first, second)
    failed = deliver_pending(session, FailingSender())
    assert (failed.sent, failed.failed) == (0, 2)
    assert first.send_error == "ConnectionError: gateway down" and first.send_attempts == 1
    sender = RecordingSender(settings_for_tests("sqlite://"))
    delivered = deliver_pending(session, sender)
    assert (delivered.sent, delivered.failed) == (2, 0) and sender.sent == [(first.id, user.username),
                                                                          (second.id, user.username)]
    assert first.sent_at is not None and first.send_error is None
    assert deliver_pending(session, sender).sent == 0  # sent once only


def test_deliver_pending_gives_up_after_max_attempts(session: Session, db_conn: Connection) -> None:
    user = _user(session, db_conn)
    row = _notify(session, user)
    _unsent_only(session, row)
    for _ in range(3):
        deliver_pending(session, FailingSender(), max_attempts=2)
    assert row.send_attempts == 2 and row.sent_at is None and row.send_error


def test_deactivated_users_are_not_messaged(session: Session, db_conn: Connection) -> None:
    user = _user(session, db_conn)
    row = _notify(session, user)
    _unsent_only(session, row)
    user.is_active = False
    sender = RecordingSender(settings_for_tests("sqlite://"))
    assert deliver_pending(session, sender).failed == 1 and sender.sent == [] and "deactivated" in str(row.send_error)


def test_sender_is_chosen_by_settings(gateway: SmsGateway) -> None:
    base = settings_for_tests("sqlite://")
    assert isinstance(sender_from_settings(base), LoggingSender)
    sms = sender_from_settings(base.model_copy(update={"notify_sender": "sms_http", "sms_gateway_url": gateway.url,
                                                       "sms_timeout_s": 3.0}))
    assert isinstance(sms, HttpSmsSender) and (sms.url, sms.timeout_s) == (gateway.url, 3.0)
    plugged = sender_from_settings(base.model_copy(
        update={"notify_sender": "tests.app.test_notifications:RecordingSender"}))
    assert isinstance(plugged, RecordingSender) and plugged.settings is not None


@pytest.mark.parametrize("values", [
    {"notify_sender": "sms_http"},                                        # no gateway URL
    {"notify_sender": "carrier-pigeon"},                                  # neither a known name nor module:Class
    {"notify_sender": "sms_http", "sms_gateway_url": "ftp://gw.example"},  # not HTTP
])
def test_bad_sender_settings_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)


def test_list_my_notifications_only(client: TestClient, session: Session, db_conn: Connection) -> None:
    me, other = _user(session, db_conn), _user(session, db_conn)
    read, unread = _notify(session, me, "read"), _notify(session, me, "unread")
    _notify(session, other, "not mine")
    session.commit()
    headers = auth_headers(client, make_user_of(me))
    client.post(f"{NOTIFICATIONS}/{read.id}/ack", headers=headers)
    everything = client.get(NOTIFICATIONS, headers=headers).json()
    assert [item["subject"] for item in everything] == ["unread", "read"]  # newest first
    pending = client.get(NOTIFICATIONS, headers=headers, params={"unacknowledged": True}).json()
    assert [item["id"] for item in pending] == [unread.id]


def test_only_the_owner_acknowledges(client: TestClient, session: Session, db_conn: Connection) -> None:
    owner, other = _user(session, db_conn), _user(session, db_conn)
    row = _notify(session, owner)
    session.commit()
    url = f"{NOTIFICATIONS}/{row.id}/ack"
    refused = client.post(url, headers=auth_headers(client, make_user_of(other)))
    assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND"  # existence not revealed
    assert client.post(url).status_code == 401
    missing = client.post(f"{NOTIFICATIONS}/999999999/ack", headers=auth_headers(client, make_user_of(owner)))
    assert missing.status_code == 404
    headers = auth_headers(client, make_user_of(owner))
    first = client.post(url, headers=headers).json()
    second = client.post(url, headers=headers).json()
    assert first["acknowledged_at"] and second["acknowledged_at"] == first["acknowledged_at"]
