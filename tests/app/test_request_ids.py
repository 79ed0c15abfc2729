"""Every answer carries X-Request-ID, errors included; a 5xx is logged with its id and traceback (issue 13 item 12)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.platform import migrate
from app.platform.observability import JsonFormatter
from design_rules.profiles import ProfileError
from tests.app.auth_helpers import settings_for_tests


class _JsonLines(logging.Handler):
    """The root logger's records as the service writes them (JsonFormatter), parsed back."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.stream = io.StringIO()
        self.formatter = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    # an empty migrated SQLite database; a burst of 1 so that a second public request is a 429
    url = f"sqlite:///{tmp_path / 'ids.sqlite'}"
    migrate.upgrade(url)
    app = create_app(settings_for_tests(url, data_dir=tmp_path,
                                        log_json=True, public_rate_burst=1, public_rate_per_minute=1))

    @app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError("kaput: an unexpected bug")

    @app.get("/test-only/broken-profile")
    def broken_profile() -> None:
        raise ProfileError("the deployment's profile file is broken")  # a coded 500

    return app


@pytest.fixture
def logs(app: FastAPI) -> Iterator[_JsonLines]:
    handler = _JsonLines()  # added after create_app, which replaces the root handlers
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def test_an_unexpected_error_answers_500_with_the_request_id_and_logs_it_with_the_traceback(
        app: FastAPI, logs: _JsonLines) -> None:
    with TestClient(app) as client:  # raise_server_exceptions: the error must not escape the app either
        response = client.get("/test-only/boom", headers={"X-Request-ID": "req-500-given"})
        generated = client.get("/test-only/boom")
    assert response.status_code == 500 and response.json()["code"] == "INTERNAL_ERROR"
    assert "kaput" not in response.text  # nothing of the bug is shown to the caller
    assert response.headers["X-Request-ID"] == "req-500-given"
    assert generated.status_code == 500 and len(generated.headers["X-Request-ID"]) == 32
    errors = [line for line in logs.lines() if line["level"] == "ERROR"]
    for request_id in ("req-500-given", generated.headers["X-Request-ID"]):
        mine = [line for line in errors if line["request_id"] == request_id]
        assert len(mine) == 1, errors
        assert "Traceback" in str(mine[0]["exception"]) and "kaput: an unexpected bug" in str(mine[0]["exception"])
        assert "/test-only/boom" in str(mine[0]["message"])
    assert all(line["request_id"] != "-" for line in errors), errors
    access = [line for line in logs.lines() if line["logger"] == "sanling.access" and line["status"] == 500]
    assert {line["request_id"] for line in access} == {"req-500-given", generated.headers["X-Request-ID"]}


def test_a_coded_500_is_logged_with_its_request_id_and_traceback(app: FastAPI, logs: _JsonLines) -> None:
    with TestClient(app) as client:
        response = client.get("/test-only/broken-profile", headers={"X-Request-ID": "req-profile"})
    assert response.status_code == 500 and response.json()["code"] == "PROFILE_INVALID"
    assert response.headers["X-Request-ID"] == "req-profile"
    mine = [line for line in logs.lines() if line["level"] == "ERROR" and line["request_id"] == "req-profile"]
    assert len(mine) == 1 and "Traceback" in str(mine[0]["exception"]), logs.lines()


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/no-such-page", 404, "NOT_FOUND"),
    ("DELETE", "/healthz", 405, "METHOD_NOT_ALLOWED"),
    ("GET", "/api/v1/public/capacity?lon=east", 422, "REQUEST_INVALID"),
])
def test_error_answers_carry_the_request_id(app: FastAPI, method: str, path: str, status: int, code: str) -> None:
    with TestClient(app) as client:
        response = client.request(method, path, headers={"X-Request-ID": f"req-{status}"})
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.headers["X-Request-ID"] == f"req-{status}"


def test_a_rate_limited_answer_carries_the_request_id(app: FastAPI) -> None:
    with TestClient(app) as client:
        client.get("/api/v1/public/capacity?lon=east")  # takes the one token of the burst (then 422)
        response = client.get("/api/v1/public/capacity?lon=east", headers={"X-Request-ID": "req-429"})
    assert (response.status_code, response.json()["code"]) == (429, "RATE_LIMITED")
    assert response.headers["X-Request-ID"] == "req-429" and response.headers["Retry-After"]
