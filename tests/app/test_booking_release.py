"""Booking release after power-on (issue 15 item 1; MISSION R2.3), on both databases, through the HTTP API.

Power-on keeps the booking until the customer's load is in the readings: a load reading of the transformer read
at least ``booking_release.reading_after_days`` (N = 7) after power-on releases it, the periodic job
``booking_release`` releases any booking still open ``timeout_days`` (M = 60) after power-on, and cancelling
releases once. Each release drops the transformer's ``reserved_kva`` (the siting answer and the capacity worklist
show the spare capacity again), is audited ``booking_released`` with its reason and is shown on the application.
The job's clock is injected (``now``) as the deadline watch's is; readings go through the real importer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.identity.auth import Role
from app.lifecycle.releases import booking_release_job
from app.main import create_app
from app.network.loading import import_layer_file, load_demo
from app.platform import migrate
from app.platform.db import create_db_engine, make_session_factory
from app.platform.models import Application, Transformer
from app.settings import Settings
from design_rules.profiles import get_profile
from tests.app.auth_helpers import make_user, override_session, settings_for_tests
from tests.app.lifecycle_helpers import REPO, application_form, apply, make_teams, new_key, report, sample, signed_in

RULES = get_profile("chongqing-2019").booking_release


@pytest.fixture
def settings(demo_db_url: str, tmp_path: Path) -> Settings:
    return settings_for_tests(demo_db_url, data_dir=tmp_path, depot_stock_file=REPO / "fixtures" / "depot_stock.csv")


@pytest.fixture
def client(db_conn: Connection, settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    override_session(app, db_conn)
    yield TestClient(app)


@pytest.fixture
def factory(db_conn: Connection) -> sessionmaker[Session]:
    """The job's sessions, inside the test's transaction (rolled back after the test)."""
    return sessionmaker(bind=db_conn, join_transaction_mode="create_savepoint", expire_on_commit=False)


class Order:
    """An overhead job of the demo (DEMO-010, booked on T-0033) and the people working it."""

    def __init__(self, client: TestClient, db_conn: Connection) -> None:
        self.client, self.conn = client, db_conn
        teams = make_teams(db_conn)
        self.customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
        self.planner = signed_in(client, make_user(db_conn, Role.PLANNER))
        self.admin = signed_in(client, make_user(db_conn, Role.ADMIN))
        self.form = application_form(sample("overhead"))
        applied = apply(client, self.customer, self.form)
        assert applied.status_code == 201, applied.text
        body = applied.json()
        self.id: int = body["id"]
        self.pm = signed_in(client, teams[body["grid_area_code"]][1])
        self.reservation = self.show()["reservation"]
        assert self.reservation["status"] == "open" and self.reservation["reserved_kva"] > 0
        self.asset_id: str = self.reservation["transformer_asset_id"]
        self.kva: float = self.reservation["reserved_kva"]

    def show(self) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/applications/{self.id}", headers=self.pm)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def power_on(self) -> datetime:
        """Survey, confirm and report every stage; returns the server's power-on time."""
        package = self.client.get(f"/api/v1/terminal/jobs/{self.id}/survey-package", headers=self.pm)
        assert report(self.client, self.pm, self.id, "site_survey", photos=0).status_code == 200
        confirmed = self.client.post(f"/api/v1/terminal/jobs/{self.id}/confirm",
                                     headers={**self.pm, "If-Match": package.headers["ETag"]})
        assert confirmed.status_code == 200, confirmed.text
        for step in self.show()["steps"]:
            if step["completed_at"] is None:
                answer = report(self.client, self.pm, self.id, step["step_code"], key=new_key())
                assert answer.status_code == 200, (step["step_code"], answer.text)
        shown = self.show()
        assert shown["status"] == "powered_on"
        assert shown["reservation"]["status"] == "open"  # power-on keeps the booking
        return datetime.fromisoformat(shown["powered_on_at"])

    def worklist_row(self) -> dict[str, Any]:
        """The transformer's row of the planners' capacity list (what the map and worklists show)."""
        items = self.client.get("/api/v1/capacity/transformers", headers=self.planner).json()["items"]
        return next(item for item in items if item["asset_id"] == self.asset_id)

    def siting(self) -> dict[str, Any]:
        """The transformer as siting answers for the same pin and load (a candidate: it has room)."""
        answer = self.client.get("/api/v1/sources", headers=self.pm, params={
            "lon": self.form["lon"], "lat": self.form["lat"], "crs": self.form["crs"], "kw": self.form["kw"]})
        assert answer.status_code == 200, answer.text
        found = [c for c in answer.json()["candidates"] if c["transformer_asset_id"] == self.asset_id]
        assert found, answer.json()
        return dict(found[0])

    def siting_rate(self) -> float:
        """The transformer's load rate after this connection, as siting answers it."""
        return float(self.siting()["load_rate_after_pct"])

    def public_available(self) -> float:
        """The public disclosure's available kVA in the transformer's own cell (R6.2, floored to 10 kVA)."""
        lon, lat = self.siting()["transformer_geometry"]["coordinates"]
        answer = self.client.get("/api/v1/public/capacity", params={"lon": lon, "lat": lat})
        assert answer.status_code == 200, answer.text
        return float(next(c for c in answer.json()["cells"] if c["is_location_cell"])["available_kva"])

    def bookings_sum(self) -> float:
        """Σ of the open bookings on the transformer, as the import's ``_sync_reserved_kva`` sums them."""
        return float(self.conn.execute(
            select(func.coalesce(func.sum(Application.reserved_kva), 0.0))
            .where(Application.reserved_transformer_asset_id == self.asset_id)).scalar_one())

    def released_audits(self) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/audit", headers=self.admin, params={
            "entity": "application", "entity_id": str(self.id), "action": "booking_released"})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    def reserved_on_transformer(self) -> float:
        return float(self.conn.execute(select(Transformer.reserved_kva)
                                       .where(Transformer.asset_id == self.asset_id)).scalar_one())


def _next_minute(moment: datetime) -> datetime:
    """The first whole minute at or after ``moment`` (the reading files carry minutes)."""
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + timedelta(minutes=1)


def _import_reading(conn: Connection, tmp_path: Path, asset_id: str, read_at: datetime, peak_kva: float) -> None:
    path = tmp_path / f"readings-{read_at:%Y%m%d%H%M}.csv"
    path.write_text(f"transformer_asset_id,read_at,peak_kva\n{asset_id},{read_at.isoformat()},{peak_kva:.3f}\n")
    import_layer_file(conn, "load_readings", path)


def test_a_reading_n_days_after_power_on_releases_the_booking(client: TestClient, db_conn: Connection,
                                                               factory: sessionmaker[Session], settings: Settings,
                                                               tmp_path: Path) -> None:
    """R2.3, issue 15 item 1: once a reading holds the new load the booking goes, and siting and the capacity
    worklist count the transformer's spare capacity again (no double count of the load)."""
    order = Order(client, db_conn)
    powered_on_at = order.power_on()
    booked_row, booked_rate, booked_public = order.worklist_row(), order.siting_rate(), order.public_available()
    assert booked_row["reserved_kva"] >= order.kva - 1e-3
    peak = float(booked_row["peak_kva"])

    # a reading before N days: the load may not be in it yet, the booking stays
    early = powered_on_at + timedelta(days=RULES.reading_after_days) - timedelta(hours=1)
    _import_reading(db_conn, tmp_path, order.asset_id, early, peak)
    assert booking_release_job(factory, settings, now=early + timedelta(hours=1))["released_on_reading"] == 0
    assert order.show()["reservation"]["status"] == "open" and order.released_audits() == []
    assert order.worklist_row()["reserved_kva"] == pytest.approx(booked_row["reserved_kva"], abs=1e-3)

    # a reading N days after power-on holds the customer's load (here half the booked kVA): the booking goes
    read_at = _next_minute(powered_on_at + timedelta(days=RULES.reading_after_days))
    new_peak = peak + order.kva / 2
    _import_reading(db_conn, tmp_path, order.asset_id, read_at, new_peak)
    ran = booking_release_job(factory, settings, now=read_at + timedelta(minutes=15))
    assert ran["released_on_reading"] == 1 and ran["released_on_timeout"] == 0

    shown = order.show()["reservation"]
    assert shown["status"] == "released" and shown["release_reason"] == "reading_after_power_on"
    assert shown["transformer_asset_id"] is None and shown["reserved_kva"] == 0
    assert shown["released_transformer_asset_id"] == order.asset_id
    assert shown["released_kva"] == pytest.approx(order.kva, abs=1e-3)
    assert datetime.fromisoformat(shown["release_reading_at"]) == read_at
    row = order.worklist_row()
    assert row["reserved_kva"] == pytest.approx(booked_row["reserved_kva"] - order.kva, abs=1e-3)
    assert row["peak_kva"] == pytest.approx(new_peak, abs=1e-3)
    assert row["spare_kva"] == pytest.approx(booked_row["spare_kva"] + order.kva / 2, abs=0.02)
    assert order.siting_rate() < booked_rate  # siting counts the spare capacity again
    assert order.reserved_on_transformer() == pytest.approx(row["reserved_kva"], abs=1e-3)
    assert order.reserved_on_transformer() == pytest.approx(order.bookings_sum(), abs=1e-6)  # open bookings only
    assert order.public_available() >= booked_public + 30  # the disclosure floors the 35 kVA gained to 10 kVA

    audits = order.released_audits()
    assert len(audits) == 1 and audits[0]["actor_user_id"] is None
    assert audits[0]["after"]["reason"] == "reading_after_power_on"
    assert datetime.fromisoformat(audits[0]["after"]["reading_at"]) == read_at
    assert audits[0]["before"]["reserved_kva"] == pytest.approx(order.kva, abs=1e-3)

    # released once: later readings and runs change nothing
    _import_reading(db_conn, tmp_path, order.asset_id, read_at + timedelta(days=1), new_peak)
    again = booking_release_job(factory, settings, now=read_at + timedelta(days=RULES.timeout_days))
    assert again["released_on_reading"] == again["released_on_timeout"] == 0
    assert len(order.released_audits()) == 1
    assert order.worklist_row()["reserved_kva"] == pytest.approx(row["reserved_kva"], abs=1e-3)


def test_the_job_releases_a_booking_still_open_m_days_after_power_on(client: TestClient, db_conn: Connection,
                                                                     factory: sessionmaker[Session],
                                                                     settings: Settings) -> None:
    """Issue 15 item 1: with no reading after power-on, the periodic job gives the booking back after M days."""
    order = Order(client, db_conn)
    powered_on_at = order.power_on()
    booked = order.worklist_row()["reserved_kva"]
    timeout = powered_on_at + timedelta(days=RULES.timeout_days)

    assert booking_release_job(factory, settings, now=timeout - timedelta(minutes=1))["released_on_timeout"] == 0
    assert order.show()["reservation"]["status"] == "open"
    ran = booking_release_job(factory, settings, now=timeout)
    assert ran["released_on_timeout"] == 1 and ran["released_on_reading"] == 0

    shown = order.show()["reservation"]
    assert shown["status"] == "released" and shown["release_reason"] == "timeout_after_power_on"
    assert shown["release_reading_at"] is None
    assert datetime.fromisoformat(shown["released_at"]) == timeout
    assert order.worklist_row()["reserved_kva"] == pytest.approx(booked - order.kva, abs=1e-3)
    audits = order.released_audits()
    assert [a["after"]["reason"] for a in audits] == ["timeout_after_power_on"]


def test_cancelling_releases_once_and_a_powered_on_order_cannot_be_cancelled(
        client: TestClient, db_conn: Connection, factory: sessionmaker[Session], settings: Settings) -> None:
    """Issue 15 item 1: a cancel releases the booking once (the second answers 409, nothing more is released);
    the release is audited with reason ``cancelled`` and shown; a powered-on order has no cancel."""
    order = Order(client, db_conn)
    booked = order.worklist_row()["reserved_kva"]
    cancelled = client.post(f"/api/v1/applications/{order.id}/cancel", json={"reason": "不再需要"},
                            headers=order.customer)
    assert cancelled.status_code == 200, cancelled.text
    again = client.post(f"/api/v1/applications/{order.id}/cancel", json={}, headers=order.customer)
    assert again.status_code == 409 and again.json()["code"] == "APPLICATION_CLOSED"

    shown = order.show()["reservation"]
    assert shown["status"] == "released" and shown["release_reason"] == "cancelled"
    assert shown["released_kva"] == pytest.approx(order.kva, abs=1e-3)
    assert order.worklist_row()["reserved_kva"] == pytest.approx(booked - order.kva, abs=1e-3)
    audits = order.released_audits()
    assert len(audits) == 1 and audits[0]["after"]["reason"] == "cancelled"
    assert audits[0]["actor_user_id"] is not None  # the customer, not the system
    ran = booking_release_job(factory, settings, now=datetime.fromisoformat(shown["released_at"])
                              + timedelta(days=RULES.timeout_days))
    assert ran["checked"] == 0 and len(order.released_audits()) == 1

    other = Order(client, db_conn)
    other.power_on()
    refused = client.post(f"/api/v1/applications/{other.id}/cancel", json={}, headers=other.customer)
    assert refused.status_code == 409 and refused.json()["code"] == "APPLICATION_CLOSED"
    assert other.show()["reservation"]["status"] == "open" and other.released_audits() == []


@pytest.mark.postgis
def test_the_job_releases_once_against_a_held_lock_and_a_second_run(fresh_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 15 item 1, race-safe (PostGIS, committed rows on a database of its own): the job skips an application
    a transition holds right now (never waits) and releases it on the next run; two runs at once release it once."""
    url = fresh_database("postgis")
    migrate.upgrade(url)
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            load_demo(conn)
        settings = settings_for_tests(url, data_dir=tmp_path, depot_stock_file=REPO / "fixtures" / "depot_stock.csv",
                                      jobs_enabled=False)  # the job runs here, with its clock
        with TestClient(create_app(settings)) as client, \
                engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            order = Order(client, conn)
            timeout = order.power_on() + timedelta(days=RULES.timeout_days)
            booked = order.reserved_on_transformer()
            factory = make_session_factory(engine)

            with engine.connect() as holder:  # a transition holding the application's row lock
                transaction = holder.begin()
                holder.execute(select(Application.id).where(Application.id == order.id).with_for_update())
                started = time.monotonic()
                skipped = booking_release_job(factory, settings, now=timeout)
                assert time.monotonic() - started < 5  # SKIP LOCKED: the job does not wait for the holder
                assert skipped["skipped_locked"] == 1 and skipped["released_on_timeout"] == 0
                transaction.commit()
            assert order.show()["reservation"]["status"] == "open"

            barrier = threading.Barrier(2)

            def run() -> dict[str, int]:
                barrier.wait()
                return booking_release_job(factory, settings, now=timeout)

            with ThreadPoolExecutor(2) as pool:
                runs = list(pool.map(lambda _: run(), range(2)))
            assert sum(r["released_on_timeout"] for r in runs) == 1
            assert len(order.released_audits()) == 1
            assert order.reserved_on_transformer() == pytest.approx(booked - order.kva, abs=1e-3)
            assert order.reserved_on_transformer() == pytest.approx(order.bookings_sum(), abs=1e-6)
    finally:
        engine.dispose()
