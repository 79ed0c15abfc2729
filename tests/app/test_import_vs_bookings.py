"""Imports never change capacity bookings (issue 13 item 2): ``transformers.reserved_kva`` stays the sum of the open
bookings (``applications.reserved_kva`` on ``reserved_transformer_asset_id``), whatever the file says.

A transformer file with a ``reserved_kva`` column once overwrote live bookings (stored 0 with 31 bookings holding
298.8 kVA). Each test below books through ``app.network.reservations.move_reservation`` (as an accepted
application does), then imports a file whose ``reserved_kva`` column says otherwise, on SpatiaLite and PostGIS,
through ``import_layer_file``, ``sanling import`` and the HTTP import API, and through every write strategy
(merge, replace, the SQLite bulk merge, the PostgreSQL rebuild and direct COPY + swap).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.orm import Session

from app.cli import main as sanling
from app.identity.auth import Role
from app.main import create_app
from app.network.loading import import_layer_file
from app.network.reservations import ReservationTarget, move_reservation
from app.platform.models import Application
from gis.importing import FieldMapping, ImportMappingError
from tests.app.auth_helpers import auth_headers, make_user, settings_for_tests
from tests.importdata import TEST_AREA_WGS84, transformer_frame, write_layer
from tests.support.databases import rolled_back

#: The incident: 31 bookings holding 298.8 kVA on one transformer (T-0003: 630 kVA, peak 53 kVA).
INCIDENT_KVA = [9.6] * 30 + [10.8]
JOB_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def engine(backend: str, migrated_engine) -> Engine:  # type: ignore[no-untyped-def]
    """A migrated, empty database of the current backend for this module."""
    return migrated_engine(backend)  # type: ignore[no-any-return]


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction rolled back after the test."""
    with rolled_back(engine) as connection:
        yield connection


@pytest.fixture
def committed(engine: Engine) -> Iterator[Engine]:
    """For tests that commit (a second connection, the CLI, the API): no transformers or bookings before or after."""

    def empty() -> None:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM applications"))
            conn.execute(text("DELETE FROM transformers"))

    empty()
    try:
        yield engine
    finally:
        empty()


def imp(conn: Connection, path: Path, **options: Any):  # type: ignore[no-untyped-def]
    options.setdefault("service_area_wgs84", TEST_AREA_WGS84)
    return import_layer_file(conn, "transformers", path, **options)


def new_application(session: Session, customer_id: int, kw: float, number: int = 0) -> Application:
    """An accepted application of ``customer_id`` that books nothing yet."""
    application_id = session.execute(insert(Application).values(
        customer_user_id=customer_id, applicant_name=f"用户{number}", identity_kind="resident_id",
        identity_number=f"50010119900101{number:04d}", address="渝北区", pin_lon=106.5, pin_lat=29.5,
        pin_crs="wgs84", requested_kw=kw, phases=3, category="small_enterprise", status="in_progress",
        contract_version="2026-01", contract_sha256="0" * 64, contract_accepted_at=datetime.now(UTC),
        contract_accepted_by_user_id=customer_id, meter_box="SRID=4326;POINT(106.5 29.5)",
    ).returning(Application.id)).scalar_one()
    application = session.get(Application, application_id)
    assert application is not None
    return application


def book(conn: Connection, asset_id: str, kvas: list[float]) -> None:
    """Accepted applications booking ``kvas`` on ``asset_id``, the way the lifecycle books them."""
    customer = make_user(conn, Role.CUSTOMER)
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        for number, kva in enumerate(kvas):
            application = new_application(session, customer.id, kva, number)
            assert move_reservation(session, application, ReservationTarget(asset_id, kva, 80.0))
        session.commit()


def reserved(conn: Connection) -> dict[str, float]:
    return {asset_id: round(float(kva), 6) for asset_id, kva in conn.execute(
        text("SELECT asset_id, reserved_kva FROM transformers ORDER BY asset_id"))}


def open_bookings(conn: Connection) -> dict[str, float]:
    """Σ reserved_kva of the open bookings per transformer (0 for one without)."""
    sums = dict(conn.execute(text(
        "SELECT reserved_transformer_asset_id, sum(reserved_kva) FROM applications "
        "WHERE reserved_transformer_asset_id IS NOT NULL GROUP BY reserved_transformer_asset_id")).all())
    return {asset_id: round(float(sums.get(asset_id, 0.0)), 6) for asset_id in reserved(conn)}


def file_saying(tmp_path: Path, count: int, *, reserved_kva: float | list[float], fmt: str = "gpkg",
                **changes: Any) -> Path:
    """Transformers T-0001… with a ``reserved_kva`` column (an export of Sanling's own data, or a GIS system's)."""
    frame = transformer_frame(count)
    frame["reserved_kva"] = reserved_kva
    for column, value in changes.items():
        frame[column] = value
    return write_layer(frame, tmp_path, fmt)


@pytest.mark.parametrize(("replace", "bulk_min_rows"), [(False, 20_000), (True, 20_000), (True, 4)],
                         ids=["merge", "replace", "bulk"])
def test_a_reimport_keeps_every_booking(conn: Connection, tmp_path: Path, replace: bool, bulk_min_rows: int) -> None:
    imp(conn, write_layer(transformer_frame(5), tmp_path / "first", "gpkg"))
    book(conn, "T-0003", INCIDENT_KVA)
    book(conn, "T-0001", [20.0, 25.5])
    booked = {"T-0001": 45.5, "T-0002": 0.0, "T-0003": 298.8, "T-0004": 0.0, "T-0005": 0.0}
    assert reserved(conn) == booked
    # The file says 0 everywhere, changes every rating (so every row is written) and adds T-0006 saying 50.
    path = file_saying(tmp_path / "again", 6, reserved_kva=[0.0] * 5 + [50.0], rated_kva=1000.0)
    report = imp(conn, path, replace=replace, bulk_min_rows=bulk_min_rows)
    expected_strategy = "rebuild" if bulk_min_rows == 4 else "merge"
    assert (report.strategy, report.inserted, report.updated) == (expected_strategy, 1, 5)
    assert reserved(conn) == {**booked, "T-0006": 0.0}  # untouched; the new transformer starts at 0
    assert reserved(conn) == open_bookings(conn)
    assert conn.execute(text("SELECT rated_kva FROM transformers WHERE asset_id = 'T-0003'")).scalar_one() == 1000.0
    ignored = [issue for issue in report.issues if issue.code == "FIELD_IGNORED"]
    assert report.issue_counts == {"FIELD_IGNORED": 1} and report.rows_with_warnings == 0
    assert (ignored[0].row, ignored[0].field, ignored[0].severity, ignored[0].value) == (
        0, "reserved_kva", "warning", "reserved_kva")
    assert "reserved_kva" not in report.column_mapping and "reserved_kva" in report.unmapped_columns


def test_a_transformer_deleted_and_imported_again_gets_its_surviving_bookings(conn: Connection,
                                                                            tmp_path: Path) -> None:
    imp(conn, write_layer(transformer_frame(5), tmp_path / "first", "gpkg"))
    book(conn, "T-0003", INCIDENT_KVA)
    assert imp(conn, write_layer(transformer_frame(2), tmp_path / "fewer", "gpkg"), replace=True).deleted == 3
    report = imp(conn, file_saying(tmp_path / "again", 5, reserved_kva=7.0, fmt="geojson"))
    assert report.inserted == 3
    assert reserved(conn) == {"T-0001": 0.0, "T-0002": 0.0, "T-0003": 298.8, "T-0004": 0.0, "T-0005": 0.0}
    assert any("reserved_kva of 1 transformers set to the sum of their open bookings" in n for n in report.notes)


def test_a_bulk_load_into_an_emptied_layer_counts_the_bookings(conn: Connection, tmp_path: Path,
                                                               backend: str) -> None:
    """PostgreSQL's direct strategy (binary COPY into the next table, then the swap) and SQLite's bulk merge."""
    imp(conn, write_layer(transformer_frame(5), tmp_path / "first", "gpkg"))
    book(conn, "T-0003", INCIDENT_KVA)
    conn.execute(text("DELETE FROM transformers"))  # emptied by hand; the applications keep their bookings
    report = imp(conn, file_saying(tmp_path / "again", 6, reserved_kva=50.0), bulk_min_rows=4)
    assert report.strategy == ("direct" if backend == "postgis" else "rebuild") and report.inserted == 6
    assert reserved(conn) == {"T-0001": 0.0, "T-0002": 0.0, "T-0003": 298.8, "T-0004": 0.0, "T-0005": 0.0,
                              "T-0006": 0.0}


def test_an_unchanged_reimport_with_the_column_writes_nothing(conn: Connection, tmp_path: Path) -> None:
    imp(conn, write_layer(transformer_frame(3), tmp_path / "first", "gpkg"))
    book(conn, "T-0003", [12.5])
    generation = conn.execute(text("SELECT generation FROM asset_generation")).scalar_one()
    report = imp(conn, file_saying(tmp_path / "again", 3, reserved_kva=0.0))
    assert (report.updated, report.unchanged, report.notes) == (0, 3, [])
    assert conn.execute(text("SELECT generation FROM asset_generation")).scalar_one() == generation
    assert reserved(conn)["T-0003"] == 12.5


@pytest.mark.parametrize("mapping", [FieldMapping.from_pairs(["预留容量=reserved_kva"]),
                                     FieldMapping.from_document({"constants": {"reserved_kva": 0}})],
                         ids=["column", "constant"])
def test_a_mapping_that_sets_reserved_kva_is_refused(conn: Connection, tmp_path: Path, mapping: FieldMapping) -> None:
    frame = transformer_frame(2)
    frame["预留容量"] = 0.0
    with pytest.raises(ImportMappingError) as raised:
        imp(conn, write_layer(frame, tmp_path, "gpkg"), mapping=mapping)
    assert raised.value.code == "IMPORT_MAPPING_INVALID" and raised.value.details["fields"] == ["reserved_kva"]
    assert "kept by the service" in raised.value.message


def test_an_import_and_a_booking_at_once_on_postgresql(committed: Engine, tmp_path: Path, backend: str) -> None:
    """A booking that has locked its transformer row (``SELECT … FOR UPDATE``) when an import of the same row
    starts: the import waits for the booking's commit and keeps it, instead of a deadlock between the import's
    table lock and the booking's row lock (one of the two then failed with ``deadlock detected``)."""
    if backend != "postgis":
        pytest.skip("SQLite serialises the two at BEGIN IMMEDIATE")
    with committed.begin() as setup:
        imp(setup, write_layer(transformer_frame(3), tmp_path / "first", "gpkg"))
        customer = make_user(setup, Role.CUSTOMER)
        with Session(bind=setup, join_transaction_mode="create_savepoint") as session:
            application_id = new_application(session, customer.id, 42.0).id
            session.commit()
    outcome: dict[str, Any] = {}
    with Session(committed) as booking:
        booking.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
        # move_reservation's first step: lock the transformer row
        booking.execute(text("SELECT reserved_kva FROM transformers WHERE asset_id = 'T-0003' FOR UPDATE"))

        def run_import() -> None:
            try:
                with committed.begin() as importing:
                    importing.exec_driver_sql("SET LOCAL deadlock_timeout = '100ms'")
                    outcome["report"] = imp(importing, file_saying(tmp_path / "again", 3, reserved_kva=0.0,
                                                                   rated_kva=800.0))
            except Exception as exc:  # reported below
                outcome["error"] = exc

        importer = threading.Thread(target=run_import)
        importer.start()
        time.sleep(0.5)  # the import is at its table lock (or, before the fix, past it and at the row)
        application = booking.get(Application, application_id)
        assert application is not None
        assert move_reservation(booking, application, ReservationTarget("T-0003", 42.0, 80.0))
        booking.commit()
        importer.join(timeout=30)
    assert "error" not in outcome, outcome
    assert outcome["report"].updated == 3
    with committed.connect() as check:
        assert reserved(check)["T-0003"] == 42.0 and reserved(check) == open_bookings(check)
        assert check.execute(text("SELECT rated_kva FROM transformers WHERE asset_id = 'T-0003'")).scalar_one() == 800.0


def test_sanling_import_keeps_the_bookings(committed: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("SANLING_DATABASE_URL", committed.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SANLING_SERVICE_AREA_WGS84", json.dumps(TEST_AREA_WGS84))
    get_settings.cache_clear()
    try:
        with committed.begin() as setup:
            setup.execute(text("DELETE FROM applications"))
            setup.execute(text("DELETE FROM transformers"))
            imp(setup, write_layer(transformer_frame(5), tmp_path / "first", "gpkg"))
            book(setup, "T-0003", INCIDENT_KVA)
        path = file_saying(tmp_path / "again", 5, reserved_kva=0.0, rated_kva=1000.0)
        assert sanling(["import", "transformers", str(path), "--no-progress", "--replace",
                        "--report", str(tmp_path / "report")]) == 0
        report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
        assert report["updated"] == 5 and report["issue_counts"] == {"FIELD_IGNORED": 1}
        with committed.connect() as check:
            assert reserved(check)["T-0003"] == 298.8 and reserved(check) == open_bookings(check)
        capsys.readouterr()
        refused = ["import", "transformers", str(path), "--no-progress", "--map", "reserved_kva=reserved_kva"]
        assert sanling(refused) == 2
        assert "IMPORT_MAPPING_INVALID" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


def test_the_import_api_keeps_the_bookings(committed: Engine, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                           ) -> None:
    with committed.begin() as setup:
        imp(setup, write_layer(transformer_frame(5), tmp_path / "first", "gpkg"))
        book(setup, "T-0003", INCIDENT_KVA)
    settings = settings_for_tests(committed.url.render_as_string(hide_password=False),
                                  data_dir=tmp_path_factory.mktemp("data"), service_area_wgs84=TEST_AREA_WGS84)
    with TestClient(create_app(settings)) as client:
        headers = auth_headers(client, make_user(committed, Role.GIS_ADMIN))
        path = file_saying(tmp_path / "again", 6, reserved_kva=0.0, rated_kva=1000.0)
        response = client.post("/api/v1/imports", headers=headers, data={"layer": "transformers", "replace": "true"},
                               files={"file": (path.name, path.read_bytes())})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (job := client.get(f"/api/v1/imports/{job_id}", headers=headers).json())["status"] in ("queued",
                                                                                                      "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["status"] == "succeeded", job
        assert (job["report"]["updated"], job["report"]["inserted"]) == (5, 1)
        assert job["report"]["issue_counts"] == {"FIELD_IGNORED": 1}
        assert "FIELD_IGNORED" in client.get(job["report_csv_url"], headers=headers).text
        with committed.connect() as check:
            assert reserved(check)["T-0003"] == 298.8 and reserved(check)["T-0006"] == 0.0
            assert reserved(check) == open_bookings(check)
        refused = client.post("/api/v1/imports", headers=headers, data={"layer": "transformers",
                                                                       "map": ["reserved_kva=reserved_kva"]},
                              files={"file": (path.name, path.read_bytes())})
        assert refused.status_code == 422 and refused.json()["code"] == "IMPORT_MAPPING_INVALID"
