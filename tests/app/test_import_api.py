"""POST /api/v1/imports: upload, background job, progress, report, roles and upload limits (issue 7)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.api.imports import ImportLimits, get_import_limits
from app.identity.auth import Role
from app.main import create_app
from app.network.import_jobs import ProgressPublisher
from app.platform import migrate
from app.platform.db import create_db_engine
from gis.importing import ImportProgress
from tests.app.auth_helpers import auth_headers, make_user, settings_for_tests
from tests.importdata import TEST_AREA_WGS84, feature_collection, point, transformer_frame, write_layer

JOB_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def api(backend: str, fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Engine]]:  # type: ignore[no-untyped-def]
    """The real app (with its job thread) on a migrated, empty database of the current backend."""
    url = fresh_database(backend)
    migrate.upgrade(url)
    settings = settings_for_tests(url, data_dir=tmp_path_factory.mktemp("data"), service_area_wgs84=TEST_AREA_WGS84)
    engine = create_db_engine(url)
    with TestClient(create_app(settings)) as client:
        yield client, engine
    engine.dispose()


@pytest.fixture(scope="module")
def admin_headers(api: tuple[TestClient, Engine]) -> dict[str, str]:
    client, engine = api
    return auth_headers(client, make_user(engine, Role.GIS_ADMIN))


def post(client: TestClient, headers: dict[str, str], path: Path, layer: str = "transformers",
         extra_files: dict[str, tuple[str, bytes]] | None = None, **form: Any) -> Any:
    files: dict[str, Any] = {"file": (path.name, path.read_bytes())}
    files.update(extra_files or {})
    return client.post("/api/v1/imports", headers=headers, data={"layer": layer, **form}, files=files)


def wait_for(client: TestClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        body: dict[str, Any] = client.get(f"/api/v1/imports/{job_id}", headers=headers).json()
        if body["status"] in ("succeeded", "rejected", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_gis_admin_imports_in_the_background(api: tuple[TestClient, Engine], admin_headers: dict[str, str],
                                             tmp_path: Path) -> None:
    client, _engine = api
    response = post(client, admin_headers, write_layer(transformer_frame(5), tmp_path, "gpkg"))
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] in ("queued", "running", "succeeded") and queued["layer"] == "transformers"
    done = wait_for(client, admin_headers, queued["id"])
    assert done["status"] == "succeeded" and done["progress_pct"] == 100.0 and done["rows"] == 5
    assert (done["report"]["inserted"], done["report"]["strategy"]) == (5, "merge")
    csv_report = client.get(done["report_csv_url"], headers=admin_headers)
    assert csv_report.status_code == 200 and csv_report.text.lstrip("\ufeff").startswith("row,key,field,code")
    listed = client.get("/api/v1/imports", headers=admin_headers).json()
    assert queued["id"] in [job["id"] for job in listed]


def test_rejected_job_carries_the_row_report(api: tuple[TestClient, Engine], admin_headers: dict[str, str],
                                             tmp_path: Path) -> None:
    client, _engine = api
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(feature_collection([({"asset_id": "B-1", "rated_kva": 100}, point(106.5, 29.5)),
                                                   ({"asset_id": "B-2"}, point(106.5, 29.5))])))
    done = wait_for(client, admin_headers, post(client, admin_headers, path).json()["id"])
    assert done["status"] == "rejected" and done["error"]["code"] == "IMPORT_REJECTED"
    assert done["report"]["issue_counts"] == {"FIELD_MISSING": 1}
    assert "B-2" in client.get(done["report_csv_url"], headers=admin_headers).text


def test_mapping_file_and_pairs_with_a_gbk_shapefile(api: tuple[TestClient, Engine], admin_headers: dict[str, str],
                                                     tmp_path: Path) -> None:
    client, engine = api
    frame = transformer_frame(3, start=100).rename(columns={"asset_id": "设备编码", "rated_kva": "额定容量"})
    path = write_layer(frame, tmp_path, "zip", encoding="GBK", keep_cpg=False)
    mapping = b'[fields]\nasset_id = "\xe8\xae\xbe\xe5\xa4\x87\xe7\xbc\x96\xe7\xa0\x81"\n'  # 设备编码, UTF-8
    done = wait_for(client, admin_headers, post(
        client, admin_headers, path, extra_files={"mapping": ("map.toml", mapping)}, map=["额定容量=rated_kva"],
        skip_invalid="true").json()["id"])
    assert done["status"] == "succeeded", done
    assert done["report"]["column_mapping"]["rated_kva"] == "额定容量"
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM transformers WHERE asset_id LIKE 'T-01%' ORDER BY asset_id"))
        assert [name for (name,) in names] == ["测试配变100号", "测试配变101号", "测试配变102号"]


@pytest.mark.parametrize(("role", "status"), [(None, 401), (Role.PLANNER, 403), (Role.PROJECT_MANAGER, 403)])
def test_only_gis_admins_may_import(api: tuple[TestClient, Engine], tmp_path: Path, role: Role | None,
                                    status: int) -> None:
    client, engine = api
    headers = auth_headers(client, make_user(engine, role)) if role else {}
    response = post(client, headers, write_layer(transformer_frame(1), tmp_path, "geojson"))
    assert response.status_code == status and response.json()["code"] in ("UNAUTHENTICATED", "FORBIDDEN")
    assert client.get("/api/v1/imports", headers=headers).status_code == status


def test_upload_limits_and_bad_requests(api: tuple[TestClient, Engine], admin_headers: dict[str, str],
                                        tmp_path: Path) -> None:
    client, _engine = api
    fake = tmp_path / "fake.gpkg"
    fake.write_text("not a geopackage")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    assert post(client, admin_headers, fake).json()["code"] == "UPLOAD_TYPE_UNSUPPORTED"
    assert post(client, admin_headers, text_file).status_code == 415
    assert post(client, admin_headers, fake, layer="pylons").status_code == 422
    bad_mapping = {"mapping": ("m.toml", b"[fields]\nrated_kva = 5\n")}
    geojson = write_layer(transformer_frame(1), tmp_path, "geojson")
    response = post(client, admin_headers, geojson, extra_files=bad_mapping)
    assert response.status_code == 422 and response.json()["code"] == "IMPORT_MAPPING_INVALID"
    client.app.dependency_overrides[get_import_limits] = lambda: ImportLimits(max_upload_bytes=100)  # type: ignore[attr-defined]
    try:
        response = post(client, admin_headers, geojson)
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert response.status_code == 413 and response.json()["code"] == "UPLOAD_TOO_LARGE"
    missing = client.get("/api/v1/imports/00000000-0000-0000-0000-000000000000", headers=admin_headers)
    assert missing.status_code == 404 and missing.json()["code"] == "IMPORT_JOB_NOT_FOUND"


def test_progress_is_published_while_running(api: tuple[TestClient, Engine], admin_headers: dict[str, str],
                                             backend: str) -> None:
    client, engine = api
    job_id = "11111111-2222-3333-4444-555555555555"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO import_jobs (id, layer, source_name, status, progress_pct, rows, options, "
                          "created_by) VALUES (:id, 'roads', 'r.gpkg', 'running', 0, 0, '{}', 'x')"), {"id": job_id})
    live = client.app.state.import_jobs.live
    ProgressPublisher(engine, job_id, live)(ImportProgress("reading", 500, 1000, 1.0))
    body = client.get(f"/api/v1/imports/{job_id}", headers=admin_headers).json()
    assert (body["progress_pct"], body["rows"], body["rows_total"]) == (45.0, 500, 1000)
    live.drop(job_id)
    with engine.connect() as conn:  # PostgreSQL: in the row for every worker; SQLite: in this process only
        stored = conn.execute(text("SELECT progress_pct FROM import_jobs WHERE id = :id"), {"id": job_id}).scalar_one()
    assert stored == (45.0 if backend == "postgis" else 0.0)


def test_an_import_whose_worker_died_is_failed_when_a_worker_starts(
        api: tuple[TestClient, Engine], admin_headers: dict[str, str], tmp_path: Path) -> None:
    """R7: a worker killed mid-import leaves nothing imported; the next worker to start says so on the job."""
    import os
    import socket
    import subprocess
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from app.platform.models import ImportJob

    client, engine = api
    host = socket.gethostname()
    short = subprocess.Popen(["true"])  # a pid that no longer runs once waited for
    short.wait()
    dead_pid = short.pid
    time.sleep(0.05)
    now = datetime.now(UTC)
    later = subprocess.Popen(["sleep", "30"])  # a live pid that started after its job was queued
    jobs = {
        "dead-holder": ("running", f"{host}:{dead_pid}", now - timedelta(minutes=5)),
        "pid-reused": ("running", f"{host}:{later.pid}", now - timedelta(hours=1)),
        "stale-elsewhere": ("queued", "another-host:123", now - timedelta(hours=25)),
        "alive-here": ("queued", f"{host}:{os.getpid()}", now),
        "recent-elsewhere": ("running", "another-host:5", now - timedelta(minutes=5)),
    }
    ids = {name: f"reap-{name}-{now.timestamp():.0f}" for name in jobs}
    try:
        with Session(engine) as session:
            for name, (state, holder, created_at) in jobs.items():
                session.add(ImportJob(id=ids[name], layer="transformers", source_name="x.gpkg", status=state,
                                      progress_pct=0.0, rows=0, options={}, created_by="test", created_at=created_at,
                                      holder=holder))
            session.commit()
        settings = client.app.state.settings  # type: ignore[attr-defined]
        with TestClient(create_app(settings)) as restarted:  # a worker starting on the same database
            seen = {name: restarted.get(f"/api/v1/imports/{job_id}", headers=admin_headers).json()
                    for name, job_id in ids.items()}
    finally:
        later.kill()
        later.wait()
    for name in ("dead-holder", "pid-reused", "stale-elsewhere"):
        assert seen[name]["status"] == "failed", name
        assert seen[name]["error"]["code"] == "IMPORT_INTERRUPTED" and seen[name]["finished_at"]
    assert seen["alive-here"]["status"] == "queued" and seen["recent-elsewhere"]["status"] == "running"
    with engine.begin() as conn:  # leave no open job behind for the other tests
        conn.execute(text("UPDATE import_jobs SET status = 'failed' WHERE id IN (:a, :b)"),
                     {"a": ids["alive-here"], "b": ids["recent-elsewhere"]})
