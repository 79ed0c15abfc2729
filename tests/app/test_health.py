"""Health, OpenAPI and metrics endpoints on a real database (issue 2)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture(scope="session")
def client(demo_db_url: str) -> Iterator[TestClient]:
    """The real app on the demo database of the current backend."""
    app = create_app(Settings(database_url=demo_db_url, log_json=True))
    with TestClient(app) as test_client:
        yield test_client


def test_healthz_reports_database_extension_and_counts(client: TestClient, backend: str) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["spatial_extension"].startswith("SpatiaLite" if backend == "spatialite" else "PostGIS")
    assert body["schema_revision"]
    assert body["asset_counts"]["transformers"] >= 40
    assert body["asset_counts"]["grid_areas"] >= 4
    assert body["asset_counts"]["no_overhead_zones"] >= 1


def test_request_id_is_echoed_and_generated(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc123"}).headers["X-Request-ID"] == "abc123"
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32


def test_server_timing_reports_the_app_time(client: TestClient) -> None:
    """Every answer says how long the server worked on it (W3C Server-Timing), apart from network and queueing."""
    name, duration = client.get("/healthz").headers["Server-Timing"].split(";dur=")
    assert name == "app"
    assert 0.0 < float(duration) < 10_000.0


def test_openapi_and_metrics(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/healthz" in spec["paths"]
    client.get("/healthz")
    metrics = client.get("/metrics").text
    assert 'sanling_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


def test_unknown_route_answers_code_and_message(client: TestClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_a_worker_can_load_the_network_before_it_serves(demo_db_url: str, tmp_path: Path) -> None:
    """SANLING_PRELOAD_NETWORK: the snapshot is built in the app's startup; /healthz says which one is held."""
    app = create_app(Settings(database_url=demo_db_url, data_dir=tmp_path, preload_network=True))
    with TestClient(app) as preloaded:
        held = app.state.siting_engine.cached_snapshot
        assert held is not None and len(held.index) >= 40
        body = preloaded.get("/healthz").json()
        assert body["worker_network_generation"] == held.generation == body["asset_generation"]
        assert body["worker_pid"] == os.getpid()
    lazy = create_app(Settings(database_url=demo_db_url, data_dir=tmp_path))
    with TestClient(lazy) as client:
        assert client.get("/healthz").json()["worker_network_generation"] is None


def test_healthz_says_how_far_behind_the_database_the_worker_is(demo_db_url: str, tmp_path: Path) -> None:
    """Issue 12: each worker reports the generation it serves and how far behind the database it is.

    A booking logged by another worker is a load change this one has not applied until its next siting request;
    then it is current again, and the network itself never went stale (no re-read).
    """
    from sqlalchemy import text

    from app.network.generations import record_capacity_changes
    from app.platform.db import create_db_engine
    from tests.app.auth_helpers import settings_for_tests

    settings = settings_for_tests(demo_db_url, data_dir=tmp_path, preload_network=True)
    engine = create_db_engine(demo_db_url)
    with TestClient(create_app(settings)) as client:
        current = client.get("/healthz").json()
        assert (current["worker_generations_behind"], current["worker_load_changes_behind"],
                current["worker_network_current"]) == (0, 0, True)
        with engine.begin() as conn:
            asset_id, reserved = conn.execute(text(
                "SELECT asset_id, reserved_kva FROM transformers ORDER BY asset_id LIMIT 1")).one()
            record_capacity_changes(conn, {asset_id: float(reserved)})  # the same figure: nothing else moves
        behind = client.get("/healthz").json()
        assert (behind["worker_generations_behind"], behind["worker_load_changes_behind"],
                behind["worker_network_current"]) == (1, 1, True)
        with engine.connect() as conn:
            client.app.state.siting_engine.snapshot(conn)  # what a design or source request does first
        caught_up = client.get("/healthz").json()
        assert (caught_up["worker_generations_behind"], caught_up["worker_load_changes_behind"]) == (0, 0)
    engine.dispose()


def test_a_database_without_the_schema_does_not_stop_the_start(tmp_path: Path) -> None:
    """Preloading an empty database is skipped with a warning; /healthz then reports it unavailable (503)."""
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    app = create_app(Settings(database_url=url, data_dir=tmp_path, preload_network=True))
    with TestClient(app) as client:
        assert app.state.siting_engine.cached_snapshot is None
        assert client.get("/healthz").status_code == 503
