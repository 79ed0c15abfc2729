"""Reads never wait for an import's write lock; a write that cannot get it answers 503 + Retry-After (issue 13 item 4).

On SpatiaLite one HTTP import of 600k rows blocked ``/healthz`` and reads for 26–30 s, and at 1M rows ``/healthz``
answered 503 and a GET 500 ``database is locked``: ``/healthz`` began its unit of work ``BEGIN IMMEDIATE`` and
so waited for the import's write lock (busy timeout 30 s). Here another connection holds SQLite's write lock, as an
import does for its whole transaction (``benchmarks/import.py --serve`` measures a real one), with uncommitted
changes: the reads answer at once from the last commit, and a write waits its bound and answers 503
``DATABASE_BUSY`` with ``Retry-After`` instead of 500. The lock-wait bound of the app's connections is cut from
30 s to a fraction of a second for the test.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from app.identity.auth import Role
from app.main import create_app
from app.network.loading import load_demo
from app.platform import migrate
from app.platform.db import create_db_engine, is_database_busy
from app.platform.errors import ErrorTable, add_exception_handlers
from tests.app.auth_helpers import auth_headers, make_user, settings_for_tests
from tests.importdata import feature_collection, point

#: The app's lock-wait bound in these tests (SQLite busy timeout), instead of 30 s.
BOUND_MS = 300
#: A read answers well within this while the lock is held (it does not wait for it at all).
READ_LIMIT_S = 2.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path, dict[str, str]]]:
    """The app on its own SpatiaLite demo district, with a short lock-wait bound; a planner-and-GIS admin token."""
    folder = tmp_path_factory.mktemp("reads")
    db_path = folder / "sanling.sqlite"
    url = f"sqlite:///{db_path}"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with engine.begin() as conn:
        load_demo(conn)
    admin = make_user(engine, Role.ADMIN)
    engine.dispose()
    app = create_app(settings_for_tests(url, data_dir=folder / "data", jobs_enabled=False))
    with TestClient(app) as client:
        app_engine: Engine = app.state.engine

        def short_bound(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout = {BOUND_MS}")

        event.listen(app_engine, "connect", short_bound)
        app_engine.dispose()  # pooled connections go; new ones get the short bound
        yield client, db_path, auth_headers(client, admin)


@pytest.fixture
def write_lock_held(served: tuple[TestClient, Path, dict[str, str]]) -> Iterator[sqlite3.Connection]:
    """Another connection holds the write lock with uncommitted changes (an import in the middle of its work)."""
    holder = sqlite3.connect(served[1], isolation_level=None)
    holder.enable_load_extension(True)
    holder.load_extension("mod_spatialite")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE transformers SET rated_kva = rated_kva * 10")
    holder.execute("UPDATE asset_generation SET generation = generation + 1000, network_generation = "
                   "network_generation + 1000")
    try:
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def timed(client: TestClient, method: str, path: str, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    response = client.request(method, path, **kwargs)
    return response, time.monotonic() - started


def test_reads_answer_from_the_last_commit_while_a_writer_holds_the_lock(
        served: tuple[TestClient, Path, dict[str, str]], write_lock_held: sqlite3.Connection) -> None:
    client, _db_path, headers = served
    with sqlite3.connect(served[1]) as peek:  # a WAL reader sees the last commit, not the holder's changes
        generation = peek.execute("SELECT generation FROM asset_generation").fetchone()[0]
    reads = [
        ("/healthz", {}),
        ("/api/v1/features/collections/transformers/items?limit=5", headers),
        ("/api/v1/features/collections", headers),
        ("/api/v1/capacity/transformers", headers),
        ("/api/v1/capacity/grid-areas", headers),
        ("/tiles/transformers/14/13038/6785.mvt", headers),
        ("/api/v1/sources?lon=106.5&lat=29.5&kw=10", headers),  # the siting engine's generation check
        ("/api/v1/public/capacity?lon=106.5&lat=29.5", {}),
    ]
    for path, request_headers in reads:
        response, elapsed_s = timed(client, "GET", path, headers=request_headers)
        assert response.status_code in (200, 204), (path, response.status_code, response.text[:300])
        assert elapsed_s < READ_LIMIT_S, (path, elapsed_s)
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["asset_generation"] == generation  # not the uncommitted +1000
    items = client.get("/api/v1/features/collections/transformers/items?limit=1", headers=headers).json()
    assert items["features"][0]["properties"]["rated_kva"] < 5000  # not the uncommitted ×10


def test_a_write_that_cannot_get_the_lock_answers_503_with_retry_after(
        served: tuple[TestClient, Path, dict[str, str]], write_lock_held: sqlite3.Connection, tmp_path: Path) -> None:
    client, _db_path, headers = served
    upload = tmp_path / "one.geojson"
    upload.write_text(json.dumps(feature_collection([({"asset_id": "T-X", "rated_kva": 100}, point(106.5, 29.5))])))
    response, elapsed_s = timed(client, "POST", "/api/v1/imports", headers=headers, data={"layer": "transformers"},
                                files={"file": (upload.name, upload.read_bytes())})
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "DATABASE_BUSY" and response.headers["Retry-After"] == "5"
    assert "x-request-id" in response.headers
    assert elapsed_s >= BOUND_MS / 1000 * 0.9  # it waited its bound first
    assert client.get("/healthz").status_code == 200  # and the worker goes on answering


def busy_app(exc: Exception) -> FastAPI:
    app = FastAPI()
    add_exception_handlers(app, ErrorTable(()))

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return app


def test_a_real_lock_timeout_on_either_backend_answers_503(backend: str, fresh_database) -> None:  # type: ignore[no-untyped-def]
    """SQLite's ``database is locked`` and PostgreSQL's ``lock_not_available`` are both DATABASE_BUSY; other
    operational errors stay 500."""
    url = fresh_database(backend)
    migrate.upgrade(url)
    engine = create_db_engine(url)
    try:
        with engine.connect() as holder, engine.connect() as waiter:
            holder.begin()
            if backend == "postgis":
                holder.exec_driver_sql("LOCK TABLE transformers IN ACCESS EXCLUSIVE MODE")
                waiter.begin()
                waiter.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
                statement = "LOCK TABLE transformers IN EXCLUSIVE MODE"
            else:
                holder.exec_driver_sql("UPDATE asset_generation SET generation = generation")
                waiter.connection.driver_connection.execute("PRAGMA busy_timeout = 50")  # type: ignore[union-attr]
                statement = "UPDATE asset_generation SET generation = generation"
            with pytest.raises(OperationalError) as raised:
                if backend != "postgis":
                    waiter.begin()
                waiter.exec_driver_sql(statement)
            holder.rollback()
    finally:
        engine.dispose()
    assert is_database_busy(raised.value)
    with TestClient(busy_app(raised.value), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["code"] == "DATABASE_BUSY"
    other = OperationalError("SELECT 1", None, sqlite3.OperationalError("disk I/O error"))
    assert not is_database_busy(other)
    with TestClient(busy_app(other), raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500


def test_every_connection_bounds_its_lock_waits_by_default(backend: str, fresh_database) -> None:  # type: ignore[no-untyped-def]
    """Issue 13: no request waits for ever behind a lock. PostgreSQL had no ``lock_timeout`` at all (a
    ``SELECT … FOR UPDATE`` behind a hung transaction waited without end); now both databases bound every wait
    by ``create_db_engine(lock_wait_s=…)`` (30 s by default), and the wait that runs out is DATABASE_BUSY."""
    url = fresh_database(backend)
    migrate.upgrade(url)
    default = create_db_engine(url)
    try:
        with default.connect() as conn:
            if backend == "postgis":
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == "30s"
            else:
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
    finally:
        default.dispose()
    engine = create_db_engine(url, lock_wait_s=0.2)
    try:
        with engine.connect() as holder, engine.connect() as waiter:
            holder.begin()
            holder.exec_driver_sql("UPDATE asset_generation SET generation = generation")
            started = time.monotonic()
            with pytest.raises(OperationalError) as raised:
                waiter.begin()
                waiter.exec_driver_sql("UPDATE asset_generation SET generation = generation")
            waited_s = time.monotonic() - started
            holder.rollback()
    finally:
        engine.dispose()
    assert is_database_busy(raised.value)
    assert 0.15 <= waited_s < 10, waited_s  # the bound, not for ever (and not at once)
