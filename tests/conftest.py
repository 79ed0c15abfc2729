"""Test fixtures: every database test runs on SpatiaLite and on a throwaway PostGIS cluster.

Session scope is reserved for immutable things (the migrated, demo-loaded databases and the app on
them). Tests that write use ``db_conn``: an outer transaction rolled back after the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from app.network.loading import load_demo
from app.platform import migrate
from app.platform.db import create_db_engine
from tests.support.databases import rolled_back

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("spatialite", "postgis")


@pytest.fixture(scope="session")
def postgis_server_url() -> Iterator[str]:
    """URL of the PostGIS test cluster: SANLING_TEST_POSTGRES_URL, or a throwaway one started here."""
    given = os.environ.get("SANLING_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    from tests.support.throwaway_pg import throwaway_postgis

    with throwaway_postgis() as url:
        yield url


@pytest.fixture(scope="session")
def fresh_database(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Factory: ``fresh_database(backend)`` returns the URL of a new, empty database."""

    def make(backend: str) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        if backend == "spatialite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / (name + '.sqlite')}"
        server_url = request.getfixturevalue("postgis_server_url")
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        url = server_url.rsplit("/", 1)[0] + "/" + name
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        engine.dispose()
        return url

    return make


@pytest.fixture(scope="session")
def migrated_engine(fresh_database) -> Iterator[Callable[[str], Engine]]:  # type: ignore[no-untyped-def]
    """Factory: ``migrated_engine(backend)`` is an engine on a new database migrated to head (disposed at the end).

    For modules that need an empty database of their own; rows they commit do not leak into the demo databases.
    """
    engines: list[Engine] = []

    def make(backend: str) -> Engine:
        url = fresh_database(backend)
        migrate.upgrade(url)
        engines.append(create_db_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test: ``spatialite`` or ``postgis``."""
    return str(request.param)


@pytest.fixture(scope="session")
def demo_db_url(backend: str, fresh_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database with the demo district loaded (treat as read-only)."""
    url = fresh_database(backend)
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with engine.begin() as conn:
        load_demo(conn)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def demo_engine(demo_db_url: str) -> Iterator[Engine]:
    """Engine on the demo database."""
    engine = create_db_engine(demo_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_conn(demo_engine: Engine) -> Iterator[Connection]:
    """A connection inside an outer transaction that is rolled back after the test."""
    with rolled_back(demo_engine) as conn:
        yield conn
