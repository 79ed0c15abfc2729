"""Idempotency-Key for terminals on weak networks (R5, issue 5 item 6): a replay returns the first answer, never
a second effect, also when the retries race each other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI, File, Form, UploadFile
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.orm import Session

from app.identity.auth import CurrentUser, Role
from app.main import create_app
from app.platform import migrate
from app.platform.db import create_db_engine
from app.platform.deps import SessionDep
from app.platform.idempotency import (
    IdempotencyDep,
    IdempotencyKeyInvalidError,
    delete_expired_keys,
    fingerprint,
    validate_key,
)
from app.platform.models import IdempotencyKey, Notification
from app.platform.notifications import notify
from gis.errors import InvalidInputError
from tests.app.auth_helpers import AuthUser, auth_headers, make_user, override_session, settings_for_tests

EFFECTS = "/test-idempotency/effects"
UPLOADS = "/test-idempotency/uploads"


class EffectIn(BaseModel):
    label: str
    hold_s: float = 0.0
    fail: bool = False


def _test_router() -> APIRouter:
    """A mutating terminal endpoint whose effect (one notification row) can be counted."""
    router = APIRouter(prefix="/test-idempotency")

    @router.post("/effects", status_code=201)
    def create_effect(body: EffectIn, user: CurrentUser, session: SessionDep, idem: IdempotencyDep) -> JSONResponse:
        def action() -> tuple[int, Any, dict[str, str]]:
            if body.fail:
                raise InvalidInputError("asked to fail", field="fail")
            row = notify(session, user_id=user.id, kind="test_effect", subject=body.label, body="effect")
            assert row is not None
            time.sleep(body.hold_s)  # widens the window in which a retry races the first request
            return 201, {"effect_id": row.id, "label": body.label}, {"Location": f"/effects/{row.id}",
                                                                     "X-Not-Replayed": "1"}

        response = idem.run(session, user_id=user.id, action=action)
        session.commit()
        return response

    @router.post("/uploads", status_code=201)
    def upload_photo(note: Annotated[str, Form()], photo: Annotated[UploadFile, File()], user: CurrentUser,
                     session: SessionDep, idem: IdempotencyDep) -> JSONResponse:
        content = photo.file.read()  # the fingerprint must leave the file readable for the route

        def action() -> tuple[int, Any]:
            row = notify(session, user_id=user.id, kind="test_upload", subject=note, body=f"{len(content)} bytes")
            assert row is not None
            return 201, {"effect_id": row.id, "bytes": len(content)}

        response = idem.run(session, user_id=user.id, action=action)
        session.commit()
        return response

    return router


def _app(database_url: str, data_dir: Path, **overrides: Any) -> FastAPI:
    app = create_app(settings_for_tests(database_url, data_dir=data_dir, **overrides))
    app.include_router(_test_router())
    return app


@pytest.fixture
def client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> TestClient:
    app = _app(demo_db_url, tmp_path)
    override_session(app, db_conn)
    return TestClient(app)


def _effects(bind: Connection | Engine, label: str) -> int:
    with bind.connect() if isinstance(bind, Engine) else nullcontext(bind) as conn:
        return int(conn.scalar(select(func.count()).select_from(Notification).where(Notification.subject == label)))


def _post(client: TestClient, user_headers: dict[str, str], body: dict[str, Any], key: str | bytes | None):  # type: ignore[no-untyped-def]
    headers = dict(user_headers) if key is None else {**user_headers, "Idempotency-Key": key}
    return client.post(EFFECTS, json=body, headers=headers)


def test_without_a_key_every_request_acts(client: TestClient, db_conn: Connection) -> None:
    headers = auth_headers(client, make_user(db_conn, Role.PROJECT_MANAGER))
    for _ in range(2):
        assert _post(client, headers, {"label": "no-key"}, None).status_code == 201
    assert _effects(db_conn, "no-key") == 2


def test_a_replay_returns_the_first_answer_and_acts_once(client: TestClient, db_conn: Connection) -> None:
    headers = auth_headers(client, make_user(db_conn, Role.PROJECT_MANAGER))
    first = _post(client, headers, {"label": "once"}, "k-once")
    replay = _post(client, headers, {"label": "once"}, "k-once")
    assert first.status_code == replay.status_code == 201 and replay.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]  # kept: a client follows it
    assert "X-Not-Replayed" not in replay.headers  # other headers belong to the new response
    assert _effects(db_conn, "once") == 1


def test_the_same_key_for_another_request_is_refused(client: TestClient, db_conn: Connection) -> None:
    headers = auth_headers(client, make_user(db_conn, Role.PROJECT_MANAGER))
    _post(client, headers, {"label": "first"}, "k-reused")
    other_body = _post(client, headers, {"label": "second"}, "k-reused")
    other_path = client.post(UPLOADS, headers={**headers, "Idempotency-Key": "k-reused"},
                             data={"note": "x"}, files={"photo": ("a.jpg", b"jpeg")})
    for response in (other_body, other_path):
        assert response.status_code == 422 and response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert _effects(db_conn, "second") == 0


def test_keys_are_scoped_per_user(client: TestClient, db_conn: Connection) -> None:
    for user in (make_user(db_conn, Role.PROJECT_MANAGER), make_user(db_conn, Role.PROJECT_MANAGER)):
        response = _post(client, auth_headers(client, user), {"label": "per-user"}, "k-shared")
        assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert _effects(db_conn, "per-user") == 2


@pytest.mark.parametrize("key", [
    "",              # empty
    "k" * 201,       # longer than 200
    "键".encode(),   # not ASCII
    "tab\there",     # control character
])
def test_malformed_keys_are_refused(client: TestClient, db_conn: Connection, key: str | bytes) -> None:
    headers = auth_headers(client, make_user(db_conn, Role.PROJECT_MANAGER))
    response = _post(client, headers, {"label": "bad-key"}, key)
    assert response.status_code == 422 and response.json()["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert _effects(db_conn, "bad-key") == 0


def test_validate_key_accepts_printable_ascii_up_to_200() -> None:
    assert validate_key("~" + "a" * 198 + " ") is not None
    with pytest.raises(IdempotencyKeyInvalidError):
        validate_key("\x7f")


def test_a_failed_request_stores_nothing_so_a_retry_acts(client: TestClient, db_conn: Connection) -> None:
    user = make_user(db_conn, Role.PROJECT_MANAGER)
    headers = auth_headers(client, user)
    failed = _post(client, headers, {"label": "retry", "fail": True}, "k-fail")
    assert failed.status_code == 422 and failed.json()["code"] == "INVALID_INPUT"
    assert db_conn.scalar(select(func.count()).select_from(IdempotencyKey)
                          .where(IdempotencyKey.user_id == user.id)) == 0
    fixed = _post(client, headers, {"label": "retry"}, "k-fail-2")
    assert fixed.status_code == 201 and _effects(db_conn, "retry") == 1


def test_multipart_uploads_are_fingerprinted_by_content(client: TestClient, db_conn: Connection) -> None:
    headers = {**auth_headers(client, make_user(db_conn, Role.PROJECT_MANAGER)), "Idempotency-Key": "k-photo"}
    photo = b"\xff\xd8 a stage photo"
    first = client.post(UPLOADS, headers=headers, data={"note": "photo"}, files={"photo": ("p.jpg", photo)})
    again = client.post(UPLOADS, headers=headers, data={"note": "photo"}, files={"photo": ("p.jpg", photo)})
    other = client.post(UPLOADS, headers=headers, data={"note": "photo"}, files={"photo": ("p.jpg", photo + b"!")})
    assert first.status_code == 201 and first.json()["bytes"] == len(photo)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert _effects(db_conn, "photo") == 1


def test_fingerprint_ignores_json_formatting() -> None:
    assert fingerprint(b'{"a": 1, "b": [1, 2]}') == fingerprint(b'{"b":[1,2],"a":1}')
    assert fingerprint(b'{"a": 1}') != fingerprint(b'{"a": 2}')
    assert fingerprint(b"\xff not json") != fingerprint(b"\xfe not json")


def test_expired_keys_act_again_and_are_cleaned_up(client: TestClient, db_conn: Connection) -> None:
    user = make_user(db_conn, Role.PROJECT_MANAGER)
    headers = auth_headers(client, user)
    _post(client, headers, {"label": "expiring"}, "k-old")
    long_ago = datetime.now(UTC) - timedelta(hours=25)  # default TTL is 24 h
    db_conn.execute(insert(IdempotencyKey).values(user_id=user.id, key="k-ancient", method="POST", path=EFFECTS,
                                                  body_fingerprint="0" * 64, status_code=201, response_body={},
                                                  created_at=long_ago))
    db_conn.execute(IdempotencyKey.__table__.update().where(IdempotencyKey.key == "k-old")
                    .values(created_at=long_ago))
    again = _post(client, headers, {"label": "expiring"}, "k-old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert _effects(db_conn, "expiring") == 2
    with Session(bind=db_conn, join_transaction_mode="create_savepoint") as session:
        assert delete_expired_keys(session, ttl=timedelta(hours=24)) >= 1
        remaining = set(session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.user_id == user.id)))
    assert remaining == {"k-old"}  # the renewed key stays, the ancient one is gone


def test_acknowledging_a_notification_honours_the_key(client: TestClient, db_conn: Connection) -> None:
    """The real endpoint POST /api/v1/notifications/{id}/ack replays its first answer."""
    user = make_user(db_conn, Role.PROJECT_MANAGER)
    with Session(bind=db_conn, join_transaction_mode="create_savepoint") as session:
        row = notify(session, user_id=user.id, kind="deadline_at_risk", subject="勘查将到期", body="1 working day")
        assert row is not None
        notification_id = row.id
        session.commit()
    headers = {**auth_headers(client, user), "Idempotency-Key": "ack-1"}
    first = client.post(f"/api/v1/notifications/{notification_id}/ack", headers=headers)
    replay = client.post(f"/api/v1/notifications/{notification_id}/ack", headers=headers)
    assert first.status_code == replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true" and first.json()["acknowledged_at"]


# --- concurrent retries on a committed database, through the app's own engine and threads ----------------------


@pytest.fixture(scope="module")
def race_db_url(backend: str, fresh_database) -> str:  # type: ignore[no-untyped-def]
    url = fresh_database(backend)
    migrate.upgrade(url)
    return str(url)


@pytest.fixture
def race_engine(race_db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(race_db_url)
    yield engine
    engine.dispose()


def _race(client: TestClient, headers: dict[str, str], body: dict[str, Any], key: str, n: int) -> list[Any]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: _post(client, headers, body, key), range(n)))


def test_concurrent_retries_act_exactly_once(race_db_url: str, race_engine: Engine, tmp_path: Path) -> None:
    """Eight copies of one request at once (a terminal retrying on a weak network): one effect, one answer."""
    user: AuthUser = make_user(race_engine, Role.PROJECT_MANAGER)
    with TestClient(_app(race_db_url, tmp_path)) as client:
        headers = auth_headers(client, user)
        responses = _race(client, headers, {"label": "race-once", "hold_s": 0.3}, "k-race", n=8)
    assert {response.status_code for response in responses} == {201}
    assert len({response.text for response in responses}) == 1
    assert sum(response.headers.get("Idempotent-Replayed") == "true" for response in responses) == 7
    assert _effects(race_engine, "race-once") == 1


def test_a_request_waiting_too_long_gets_in_progress(backend: str, race_db_url: str, race_engine: Engine,
                                                      tmp_path: Path) -> None:
    """PostGIS: past SANLING_IDEMPOTENCY_WAIT_S the second request answers 409; a later retry replays."""
    if backend != "postgis":
        pytest.skip("SQLite serialises writers at BEGIN IMMEDIATE: the second request waits and replays")
    user = make_user(race_engine, Role.PROJECT_MANAGER)
    with TestClient(_app(race_db_url, tmp_path, idempotency_wait_s=0.05)) as client:
        headers = auth_headers(client, user)
        responses = _race(client, headers, {"label": "race-slow", "hold_s": 1.0}, "k-slow", n=4)
        codes = sorted(response.status_code for response in responses)
        assert codes == [201, 409, 409, 409]
        assert {r.json()["code"] for r in responses if r.status_code == 409} == {"IDEMPOTENCY_IN_PROGRESS"}
        later = _post(client, headers, {"label": "race-slow", "hold_s": 1.0}, "k-slow")
    assert later.headers["Idempotent-Replayed"] == "true" and _effects(race_engine, "race-slow") == 1
