"""Fixtures shared by the API tests that read the demo district through one app per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.identity.auth import Role
from app.main import create_app
from tests.app.auth_helpers import auth_headers, make_user, settings_for_tests


@pytest.fixture(scope="module")
def client(demo_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app on the demo database (committed data; modules that need rollback define their own)."""
    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path_factory.mktemp("data")))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def planner_headers(client: TestClient, demo_engine: Engine) -> dict[str, str]:
    """Authorization headers of a new planner."""
    return auth_headers(client, make_user(demo_engine, Role.PLANNER))
