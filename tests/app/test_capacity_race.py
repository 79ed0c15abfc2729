"""Racing for the last spare capacity of one transformer never over-allocates it (issue 5 item 4).

Each request runs ``move_reservation`` in its own thread, on its own database connection, and commits; the
threads start together at a barrier. PostGIS serialises them with ``SELECT … FOR UPDATE`` on the transformer
row, SpatiaLite with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app.identity.auth import Role
from app.network.reservations import CapacityTakenError, ReservationTarget, move_reservation
from app.platform import migrate
from app.platform.db import create_db_engine
from app.platform.models import Application, Transformer
from gis.index import fits_after_connection
from tests.app.auth_helpers import make_user

RATED_KVA = 400.0
PEAK_KVA = 220.0
RESERVED_KVA = 0.0
MAX_LOAD_AFTER_PCT = 80.0
#: 10 kW at cos φ 0.85: the booking of a typical small shop.
BOOKING_KVA = 10 / 0.85
REQUESTS = {"postgis": 200, "spatialite": 40}


def _expected_winners(requests: int) -> int:
    """Bookings that fit when the requests come one after another (the same test as the service)."""
    reserved, winners = RESERVED_KVA, 0
    for _ in range(requests):
        if fits_after_connection(committed_kva=PEAK_KVA + reserved, added_kva=BOOKING_KVA, rated_kva=RATED_KVA,
                                 max_load_after_pct=MAX_LOAD_AFTER_PCT):
            reserved, winners = reserved + BOOKING_KVA, winners + 1
    return winners


@pytest.fixture
def race_engine(backend: str, fresh_database) -> Engine:  # type: ignore[no-untyped-def]
    url = fresh_database(backend)
    migrate.upgrade(url)
    # one pooled connection per thread, all open at once
    engine = create_db_engine(url, pool_size=REQUESTS[backend] + 2, max_overflow=0, pool_timeout=120)
    customer = make_user(engine, Role.CUSTOMER)
    now = datetime.now(UTC)
    point = from_shape(shapely.Point(106.49, 29.50), srid=4326)
    with Session(engine) as session:
        session.add(Transformer(asset_id="T-RACE", name="race", rated_kva=RATED_KVA, peak_kva=PEAK_KVA,
                                reserved_kva=RESERVED_KVA, status="in_service", geom=point))
        session.add_all(Application(
            customer_user_id=customer.id, applicant_name=f"racer {i}", identity_kind="id_card",
            identity_number="500000000000000000", address="race", pin_lon=106.49, pin_lat=29.5, pin_crs="wgs84",
            requested_kw=10.0, phases=3, category="small_enterprise", status="in_progress", reserved_kva=0.0,
            documents_complete=True, contract_version="v", contract_sha256="0" * 64, contract_accepted_at=now,
            contract_accepted_by_user_id=customer.id, created_at=now, updated_at=now, meter_box=point)
            for i in range(REQUESTS[backend]))
        session.commit()
    return engine


def test_racing_bookings_never_exceed_the_transformer_limit(backend: str, race_engine: Engine) -> None:
    requests = REQUESTS[backend]
    with race_engine.connect() as conn:
        ids = [row[0] for row in conn.execute(select(Application.id).order_by(Application.id))]
        generation_before = conn.execute(text("SELECT generation FROM asset_generation")).scalar_one()
    barrier = threading.Barrier(requests)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def book(application_id: int) -> None:
        barrier.wait()
        with Session(race_engine) as session:
            try:
                application = session.get(Application, application_id)
                assert application is not None
                move_reservation(session, application,
                                 ReservationTarget("T-RACE", BOOKING_KVA, MAX_LOAD_AFTER_PCT))
                session.commit()
                outcome = "won"
            except CapacityTakenError:
                session.rollback()
                outcome = "capacity_taken"
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=book, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(outcomes.values()) == requests  # every request answered, none crashed

    limit_kva = RATED_KVA * MAX_LOAD_AFTER_PCT / 100 - PEAK_KVA
    with race_engine.connect() as conn:
        reserved = conn.execute(select(Transformer.reserved_kva).where(Transformer.asset_id == "T-RACE")).scalar_one()
        booked = conn.execute(select(func.count(), func.coalesce(func.sum(Application.reserved_kva), 0.0))
                              .where(Application.reserved_transformer_asset_id == "T-RACE")).one()
        generation_after = conn.execute(text("SELECT generation FROM asset_generation")).scalar_one()
    print(f"\n{backend}: {requests} requests, {outcomes['won']} winners (expected {_expected_winners(requests)}), "
          f"reserved {reserved:.4f} kVA of a {limit_kva:.4f} kVA limit")
    assert outcomes["won"] == _expected_winners(requests) == booked[0]
    assert reserved <= limit_kva + 1e-9
    assert reserved == pytest.approx(booked[1]) == pytest.approx(outcomes["won"] * BOOKING_KVA)
    assert generation_after - generation_before == outcomes["won"]  # every booking told the siting workers
    with race_engine.connect() as conn:
        logged = conn.execute(text("SELECT count(*) FROM capacity_changes")).scalar_one()
    assert logged == outcomes["won"]  # one ordered change per booking, applied by workers without a rebuild
