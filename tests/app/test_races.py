"""Race suite (issue 13 items 1 and 3): storms of concurrent identical requests through the real HTTP server.

``sanling serve --workers 2`` runs as a subprocess on a fresh demo database (SpatiaLite, and a throwaway
PostGIS cluster). asyncio + httpx send every request of a storm at once, each on its own connection, so the
kernel spreads them over both workers (SO_REUSEPORT). Asserted on both databases:

(a) bookings: 1,000 (PostGIS) / 300 (SpatiaLite) applications race for the last kVA of one transformer,
    tuned so that only a few fit: no transformer is over-allocated (its stored ``reserved_kva`` is the sum of
    its open bookings, load after ≤ the profile's 80 %), exactly the bookings that fit win it, no 5xx; then
    10 cancels of each of its bookings mixed with 100 new bookings: each booking released once, the room
    booked again and no more;
(b) 20 concurrent cancels of one application: one 200, the rest 409, the booking released once;
(c) 10 concurrent confirms: one 200, the rest 409, one materials request;
(d) 10 concurrent stage reports of one step: one 200, the rest 409, the step completed once;
(e) 10 concurrent survey adjustments (terminal) and design versions (designs API) with the same If-Match:
    one 201, the rest 412, one new version;
(f) 10 concurrent admin assignments of a queued application: one 200, the rest 409.

Each storm prints its figures (attempts, winners, statuses, 5xx, p50/p99 latency; ``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, update

from app.identity.auth import Role
from app.network.loading import load_demo
from app.network.reservations import BookingChangedError, release_reservation, reservation_kva
from app.platform import migrate
from app.platform.db import create_db_engine, make_session_factory
from app.platform.models import (
    Application,
    ApplicationStep,
    AssignmentQueueItem,
    AuditLog,
    CapacityChange,
    Design,
    MaterialsRequest,
    Transformer,
)
from app.serving import reuseport_supported
from design_rules.profiles import get_profile
from tests.app.auth_helpers import TEST_JWT_SECRET, AuthUser, make_user, settings_for_tests
from tests.app.lifecycle_helpers import (
    PIN_OUTSIDE_GRID_AREAS,
    REPO,
    SAMPLES,
    application_form,
    application_multipart,
    make_teams,
    report_multipart,
)

SANLING = str(Path(sys.executable).parent / "sanling")
pytestmark = pytest.mark.skipif(not reuseport_supported(), reason="sanling serve --workers 2 needs SO_REUSEPORT")

#: Concurrent application submissions of storm (a).
BOOKING_ATTEMPTS = {"postgis": 1000, "spatialite": 300}
#: 10 kW, 9 m from a pole of T-0020 (fixtures/sample_applications.csv): its design books T-0020 while it has room.
TARGET_SAMPLE = "DEMO-001"
TARGET = "T-0020"
#: Bookings of TARGET_SAMPLE that fit on the tuned target (its peak is set so that 4.5 would).
FITS = 4
#: 8 kW, 9 m from a pole of T-0008 (25 % loaded): the applications of storms (b)-(e), each booking T-0008.
STORM_SAMPLE = "DEMO-003"
CANCELS, CONFIRMS, REPORTS, ADJUSTMENTS, ASSIGNMENTS = 20, 10, 10, 10, 10
#: New bookings sent together with the cancels of every booking on the full target.
BOOKINGS_WITH_CANCELS = 100
PROFILE = "chongqing-2019"


def _sample(app_id: str) -> dict[str, str]:
    return next(s for s in SAMPLES if s["app_id"] == app_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Outcome:
    """One answer of a storm: status, JSON body (or None) and the client-side latency."""

    status: int
    body: Any
    seconds: float

    @property
    def code(self) -> str | None:
        """The error code of an error answer."""
        return self.body.get("code") if isinstance(self.body, dict) else None


@dataclass
class Service:
    """The served database and the people who use it."""

    backend: str
    base: str
    engine: Engine
    log_path: Path
    headers: dict[str, dict[str, str]]
    team_pm: dict[str, AuthUser]
    booking_kva: float
    max_load_after_pct: float
    figures: list[str] = field(default_factory=list)

    def get(self, path: str, role: str = "admin") -> Any:
        response = httpx.get(self.base + path, headers=self.headers[role], timeout=60)
        assert response.status_code == 200, response.text
        return response

    def post(self, path: str, role: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.base + path, headers={**self.headers[role], **kwargs.pop("headers", {})},
                          timeout=60, **kwargs)


def _wait_for_workers(base: str, server: subprocess.Popen[bytes], log_path: Path, workers: int = 2) -> None:
    """Until ``workers`` different worker processes have answered ``/healthz`` (each listens once loaded)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 90
    while len(seen) < workers:
        assert server.poll() is None, "the server exited: " + log_path.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"only workers {seen} came up"
        try:
            # a new connection each time: the kernel picks a listening worker by the connection's hash
            seen.add(int(httpx.get(base + "/healthz", timeout=5).json()["worker_pid"]))
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.2)


def _sign_in(base: str, user: AuthUser) -> dict[str, str]:
    response = httpx.post(base + "/api/v1/auth/token", data={"username": user.username, "password": user.password},
                          timeout=30)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def service(backend: str, fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:  # type: ignore[no-untyped-def]
    url = fresh_database(backend)
    migrate.upgrade(url)  # what `sanling db upgrade` runs
    settings = settings_for_tests(url)
    booking_kva = reservation_kva(float(_sample(TARGET_SAMPLE)["kw"]), settings)
    max_pct = get_profile(PROFILE).load_thresholds.max_load_after_pct
    engine = create_db_engine(url)
    with engine.begin() as conn:
        load_demo(conn)
        rated = float(conn.execute(select(Transformer.rated_kva).where(Transformer.asset_id == TARGET)).scalar_one())
        # room for FITS + ½ bookings: the last kVA of the transformer
        conn.execute(update(Transformer).where(Transformer.asset_id == TARGET).values(
            peak_kva=rated * max_pct / 100 - (FITS + 0.5) * booking_kva, reserved_kva=0.0))
        teams = make_teams(conn)
        people = {"customer": make_user(conn, Role.CUSTOMER), "admin": make_user(conn, Role.ADMIN),
                  "planner": make_user(conn, Role.PLANNER)}
    data_dir = tmp_path_factory.mktemp(f"races-{backend}")
    log_path = data_dir / "server.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(data_dir), "SANLING_LOG_LEVEL": "WARNING",
                "SANLING_LOG_JSON": "false", "SANLING_JOBS_ENABLED": "false", "SANLING_JWT_SECRET": TEST_JWT_SECRET,
                "SANLING_PASSWORD_HASH_PROFILE": "fast",
                "SANLING_DEPOT_STOCK_FILE": str(REPO / "fixtures" / "depot_stock.csv")})
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        server = subprocess.Popen([SANLING, "serve", "--port", str(port), "--workers", "2"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_workers(base, server, log_path)
        headers = {role: _sign_in(base, user) for role, user in people.items()}
        for code, (cm, pm) in teams.items():
            headers[f"cm:{code}"], headers[f"pm:{code}"] = _sign_in(base, cm), _sign_in(base, pm)
        served = Service(backend=backend, base=base, engine=engine, log_path=log_path, headers=headers,
                         team_pm={code: pm for code, (_cm, pm) in teams.items()}, booking_kva=booking_kva,
                         max_load_after_pct=max_pct)
        yield served
        print(f"\n--- race figures, {backend} (sanling serve --workers 2) ---")
        for line in served.figures:
            print(line)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        engine.dispose()


# --- firing storms -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of a storm."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    data: dict[str, str] | None = None
    files: Sequence[tuple[str, tuple[str, bytes, str]]] | None = None


async def _fire(base: str, calls: Sequence[Call]) -> list[Outcome]:
    # no connection reuse: every request opens its own connection, all at once
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(180.0), limits=limits) as client:

        async def one(call: Call) -> Outcome:
            started = time.perf_counter()
            response = await client.request(call.method, call.path, headers=call.headers, json=call.json,
                                            data=call.data, files=list(call.files) if call.files else None)
            seconds = time.perf_counter() - started
            try:
                body = response.json()
            except ValueError:
                body = response.text
            return Outcome(response.status_code, body, seconds)

        return list(await asyncio.gather(*(one(call) for call in calls)))


def _percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def storm(service: Service, name: str, calls: Sequence[Call], *, extra: str = "") -> list[Outcome]:
    """Send ``calls`` all at once; record and print the figures; fail on any 5xx (with the server's log)."""
    started = time.perf_counter()
    outcomes = asyncio.run(_fire(service.base, calls))
    wall = time.perf_counter() - started
    statuses = Counter(o.status for o in outcomes)
    codes = Counter(o.code for o in outcomes if o.code)
    latencies = [o.seconds for o in outcomes]
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    line = (f"{service.backend:10} {name:22} attempts {len(calls):5}  statuses {dict(sorted(statuses.items()))}  "
            f"codes {dict(sorted(codes.items()))}  5xx {server_errors}  p50 {_percentile(latencies, 50) * 1000:.0f} ms"
            f"  p99 {_percentile(latencies, 99) * 1000:.0f} ms  wall {wall:.1f} s{'  ' + extra if extra else ''}")
    service.figures.append(line)
    print("\n" + line)
    if server_errors:
        errors = [o.body for o in outcomes if o.status >= 500][:3]
        pytest.fail(f"{server_errors} server errors, e.g. {errors}\n--- server log ---\n"
                    + service.log_path.read_text(errors="replace")[-4000:])
    return outcomes


def _only(outcomes: Sequence[Outcome], status: int) -> Outcome:
    winners = [o for o in outcomes if o.status == status]
    assert len(winners) == 1, Counter((o.status, o.code) for o in outcomes)
    return winners[0]


# --- the database's view -------------------------------------------------------------------------------------


def assert_no_over_allocation(service: Service) -> dict[str, tuple[float, float]]:
    """Every transformer's stored booking is the sum of its open applications' bookings, and within the limit.

    Returns ``{asset_id: (reserved_kva, limit_kva)}`` of the transformers that hold bookings.
    """
    with service.engine.connect() as conn:
        held = dict(conn.execute(
            select(Application.reserved_transformer_asset_id, func.sum(Application.reserved_kva))
            .where(Application.status != "cancelled", Application.reserved_transformer_asset_id.is_not(None))
            .group_by(Application.reserved_transformer_asset_id)).all())
        cancelled_holding = conn.execute(select(func.count()).select_from(Application).where(
            Application.status == "cancelled", Application.reserved_kva != 0.0)).scalar_one()
        rows = conn.execute(select(Transformer.asset_id, Transformer.rated_kva, Transformer.peak_kva,
                                   Transformer.reserved_kva)).all()
    assert cancelled_holding == 0, "a cancelled application still holds a booking"
    booked: dict[str, tuple[float, float]] = {}
    for asset_id, rated, peak, reserved in rows:
        assert float(reserved or 0.0) == pytest.approx(float(held.get(asset_id, 0.0)), abs=1e-6), asset_id
        if reserved:
            limit = float(rated) * service.max_load_after_pct / 100 - float(peak or 0.0)
            assert float(reserved) <= limit + 1e-9, f"{asset_id}: {reserved} kVA booked, {limit} kVA allowed"
            booked[asset_id] = (float(reserved), limit)
    return booked


def _audit_count(service: Service, application_id: int, action: str) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.entity == "application", AuditLog.entity_id == str(application_id),
            AuditLog.action == action)).scalar_one())


def _submit(service: Service, app_id: str = STORM_SAMPLE, **form: Any) -> dict[str, Any]:
    data, files = application_multipart(application_form(_sample(app_id), **form))
    response = service.post("/api/v1/applications", "customer", data=data, files=files)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _pm(service: Service, application: dict[str, Any]) -> str:
    return f"pm:{application['grid_area_code']}"


def _etag(service: Service, application: dict[str, Any]) -> str:
    package = service.get(f"/api/v1/terminal/jobs/{application['id']}/survey-package", _pm(service, application))
    return str(package.headers["ETag"])


# --- the storms ----------------------------------------------------------------------------------------------


def test_booking_storm_never_over_allocates(service: Service) -> None:
    attempts = BOOKING_ATTEMPTS[service.backend]
    data, files = application_multipart(application_form(_sample(TARGET_SAMPLE)))
    calls = [Call("POST", "/api/v1/applications", service.headers["customer"], data=data, files=files)
             for _ in range(attempts)]
    outcomes = storm(service, "bookings", calls)
    booked = assert_no_over_allocation(service)
    with service.engine.connect() as conn:
        on_target = conn.execute(select(func.count()).select_from(Application).where(
            Application.reserved_transformer_asset_id == TARGET)).scalar_one()
    reserved, limit = booked.get(TARGET, (0.0, math.nan))
    job_classes = Counter(o.body["job_class"] for o in outcomes if o.status == 201)
    figures = (f"target {TARGET}: {on_target} winners (fit {FITS}), reserved {reserved:.2f} of {limit:.2f} kVA spare; "
               f"{len(booked)} transformers hold bookings, all ≤ {service.max_load_after_pct:.0f} %; "
               f"job classes {dict(job_classes)}")
    service.figures.append(" " * 11 + figures)
    print(figures)
    assert on_target == FITS
    assert reserved == pytest.approx(FITS * service.booking_kva)
    assert all(o.status == 201 or (o.status == 409 and o.code == "CAPACITY_TAKEN") for o in outcomes), \
        Counter((o.status, o.code) for o in outcomes)


def test_cancels_and_bookings_at_once_never_over_allocate(service: Service) -> None:
    """The issue's scenario: cancels of every booking on the full target (10 each) mixed with new bookings; a
    booking released twice would let the new ones book past the limit."""
    with service.engine.connect() as conn:
        holders = conn.execute(select(Application.id).where(Application.reserved_transformer_asset_id == TARGET,
                                                            Application.status != "cancelled")).scalars().all()
    data, files = application_multipart(application_form(_sample(TARGET_SAMPLE)))
    calls = [Call("POST", f"/api/v1/applications/{application_id}/cancel", service.headers["customer"],
                  json={"reason": "storm"}) for application_id in holders for _ in range(10)]
    calls += [Call("POST", "/api/v1/applications", service.headers["customer"], data=data, files=files)
              for _ in range(BOOKINGS_WITH_CANCELS)]
    random.Random(13).shuffle(calls)
    outcomes = storm(service, "cancels + bookings", calls)
    cancel_wins = Counter(call.path for call, o in zip(calls, outcomes, strict=True)
                          if call.path.endswith("/cancel") and o.status == 200)
    with service.engine.connect() as conn:
        on_target, held = conn.execute(select(func.count(), func.coalesce(func.sum(Application.reserved_kva), 0.0))
                                       .where(Application.reserved_transformer_asset_id == TARGET,
                                              Application.status != "cancelled")).one()
        rated, peak, reserved = conn.execute(select(
            Transformer.rated_kva, Transformer.peak_kva, Transformer.reserved_kva).where(
            Transformer.asset_id == TARGET)).one()
    limit = float(rated) * service.max_load_after_pct / 100 - float(peak)
    figures = (f"{len(holders)} bookings cancelled ({sum(cancel_wins.values())} cancels won of {len(holders) * 10}), "
               f"{BOOKINGS_WITH_CANCELS} bookings: target {TARGET} holds {on_target} (fit {FITS}), "
               f"reserved {reserved:.2f} (its bookings hold {held:.2f}) of {limit:.2f} kVA spare, "
               f"load {(peak + held) / rated * 100:.1f} %")
    service.figures.append(" " * 11 + figures)
    print(figures)
    assert_no_over_allocation(service)
    assert all(cancel_wins[f"/api/v1/applications/{i}/cancel"] == 1 for i in holders), cancel_wins
    assert Counter(o.code for o in outcomes if o.status == 409) == {"APPLICATION_CLOSED": 9 * len(holders)}
    assert on_target == FITS  # the freed room was booked again, and no more
    assert reserved == pytest.approx(FITS * service.booking_kva)


def _booking(service: Service, application_id: int) -> tuple[str | None, float]:
    with service.engine.connect() as conn:
        asset_id, kva = conn.execute(select(Application.reserved_transformer_asset_id, Application.reserved_kva)
                                     .where(Application.id == application_id)).one()
    return asset_id, float(kva)


def _transformer_reserved(service: Service, asset_id: str) -> tuple[float, int]:
    """The transformer's stored booking and how many capacity changes were logged for it."""
    with service.engine.connect() as conn:
        reserved = conn.execute(select(Transformer.reserved_kva).where(Transformer.asset_id == asset_id)).scalar_one()
        logged = conn.execute(select(func.count()).select_from(CapacityChange)
                              .where(CapacityChange.transformer_asset_id == asset_id)).scalar_one()
    return float(reserved), int(logged)


def test_cancel_storm_releases_once(service: Service) -> None:
    cancelled, kept = _submit(service), _submit(service)  # the second keeps a booking: a double release shows
    asset_id, kva = _booking(service, cancelled["id"])
    assert asset_id is not None and kva > 0 and _booking(service, kept["id"])[0] == asset_id
    reserved_before, logged_before = _transformer_reserved(service, asset_id)
    calls = [Call("POST", f"/api/v1/applications/{cancelled['id']}/cancel", service.headers["customer"],
                  json={"reason": f"storm {i}"}) for i in range(CANCELS)]
    outcomes = storm(service, "cancels", calls)
    winner = _only(outcomes, 200)
    assert winner.body["status"] == "cancelled"
    assert Counter((o.status, o.code) for o in outcomes if o is not winner) == {
        (409, "APPLICATION_CLOSED"): CANCELS - 1}
    reserved_after, logged_after = _transformer_reserved(service, asset_id)
    assert reserved_after == pytest.approx(reserved_before - kva)  # released once
    assert logged_after == logged_before + 1
    assert _audit_count(service, cancelled["id"], "cancelled") == 1
    assert_no_over_allocation(service)


def test_confirm_storm_requests_the_materials_once(service: Service) -> None:
    application = _submit(service)
    pm = _pm(service, application)
    data, _ = report_multipart(photos=0)
    assert service.post(f"/api/v1/terminal/jobs/{application['id']}/steps/site_survey", pm,
                        data=data).status_code == 200
    headers = {**service.headers[pm], "If-Match": _etag(service, application)}
    calls = [Call("POST", f"/api/v1/terminal/jobs/{application['id']}/confirm", headers) for _ in range(CONFIRMS)]
    outcomes = storm(service, "confirms", calls)
    winner = _only(outcomes, 200)
    assert Counter((o.status, o.code) for o in outcomes if o is not winner) == {(409, "DESIGN_FROZEN"): CONFIRMS - 1}
    with service.engine.connect() as conn:
        requests = conn.execute(select(MaterialsRequest.id).where(
            MaterialsRequest.application_id == application["id"])).scalars().all()
    assert requests == [winner.body["materials_request"]["id"]]
    assert _audit_count(service, application["id"], "design_confirmed") == 1


def test_stage_report_storm_completes_the_step_once(service: Service) -> None:
    application = _submit(service)
    data, files = report_multipart(photos=1)
    calls = [Call("POST", f"/api/v1/terminal/jobs/{application['id']}/steps/site_survey",
                  service.headers[_pm(service, application)], data=data, files=files) for _ in range(REPORTS)]
    outcomes = storm(service, "stage reports", calls)
    winner = _only(outcomes, 200)
    assert Counter((o.status, o.code) for o in outcomes if o is not winner) == {
        (409, "STEP_ALREADY_COMPLETED"): REPORTS - 1}
    with service.engine.connect() as conn:
        completed_at = conn.execute(select(ApplicationStep.completed_at).where(
            ApplicationStep.application_id == application["id"],
            ApplicationStep.step_code == "site_survey")).scalar_one()
    assert completed_at is not None
    assert _audit_count(service, application["id"], "step_completed") == 1


def _moved(service: Service, application: dict[str, Any], east_m: float) -> dict[str, Any]:
    package = service.get(f"/api/v1/terminal/jobs/{application['id']}/survey-package", _pm(service, application))
    lon, lat = package.json()["meter_box"]["coordinates"]
    return {"meter_box": {"lon": lon + east_m * 1e-5, "lat": lat, "crs": "wgs84"}}


def test_survey_adjustment_storm_with_one_if_match(service: Service) -> None:
    application = _submit(service)
    headers = {**service.headers[_pm(service, application)], "If-Match": _etag(service, application)}
    calls = [Call("POST", f"/api/v1/terminal/jobs/{application['id']}/adjustments", headers,
                  json=_moved(service, application, 1 + i % 3)) for i in range(ADJUSTMENTS)]
    outcomes = storm(service, "survey adjustments", calls)
    winner = _only(outcomes, 201)
    assert winner.body["version"] == 2
    assert Counter((o.status, o.code) for o in outcomes if o is not winner) == {
        (412, "DESIGN_VERSION_CONFLICT"): ADJUSTMENTS - 1}
    with service.engine.connect() as conn:
        versions = conn.execute(select(Design.version).where(Design.design_id == winner.body["design_id"])
                                .order_by(Design.version)).scalars().all()
    assert versions == [1, 2]
    assert _audit_count(service, application["id"], "design_adjusted") == 1
    assert_no_over_allocation(service)


def test_design_version_storm(service: Service) -> None:
    row = _sample(STORM_SAMPLE)
    request = {"lon": float(row["lon"]), "lat": float(row["lat"]), "crs": row["crs"], "kw": float(row["kw"]),
               "phases": int(row["phases"]), "category": row["category"], "area_type": row["area_type"]}
    created = service.post("/api/v1/designs", "planner", json=request)
    assert created.status_code == 201, created.text
    design_id = created.json()["design_id"]
    path = f"/api/v1/designs/{design_id}/versions"
    conditioned = [Call("POST", path, {**service.headers["planner"], "If-Match": created.headers["ETag"]},
                        json={**request, "lon": request["lon"] + (1 + i % 3) * 1e-5}) for i in range(ADJUSTMENTS)]
    outcomes = storm(service, "design versions If-Match", conditioned)
    winner = _only(outcomes, 201)
    assert winner.body["version"] == 2
    assert Counter((o.status, o.code) for o in outcomes if o is not winner) == {
        (412, "DESIGN_VERSION_CONFLICT"): ADJUSTMENTS - 1}
    # without If-Match every adjustment is a new version (a planner's unconditioned change), numbered in turn
    unconditioned = [Call("POST", path, service.headers["planner"], json=request) for _ in range(ADJUSTMENTS)]
    outcomes = storm(service, "design versions", unconditioned)
    assert Counter(o.status for o in outcomes) == {201: ADJUSTMENTS}
    assert sorted(o.body["version"] for o in outcomes) == list(range(3, 3 + ADJUSTMENTS))
    with service.engine.connect() as conn:
        versions = conn.execute(select(Design.version).where(Design.design_id == design_id)
                                .order_by(Design.version)).scalars().all()
    assert versions == list(range(1, 3 + ADJUSTMENTS))


def test_admin_assignment_storm(service: Service) -> None:
    lon, lat = PIN_OUTSIDE_GRID_AREAS
    application = _submit(service, TARGET_SAMPLE, lon=lon, lat=lat, crs="wgs84", area_type="urban")
    assert application["status"] == "awaiting_assignment"
    calls = [Call("POST", f"/api/v1/admin/unassigned/{application['id']}/assign", service.headers["admin"],
                  json={"grid_area_code": "CQ-YB-01"}) for _ in range(ASSIGNMENTS)]
    outcomes = storm(service, "admin assignments", calls)
    winner = _only(outcomes, 200)
    assert winner.body["status"] == "in_progress"
    assert Counter((o.status, o.code) for o in outcomes if o is not winner) == {
        (409, "APPLICATION_ALREADY_ASSIGNED"): ASSIGNMENTS - 1}
    assert _audit_count(service, application["id"], "assigned") == 1
    with service.engine.connect() as conn:
        resolved = conn.execute(select(AssignmentQueueItem.resolved_at).where(
            AssignmentQueueItem.application_id == application["id"])).scalar_one()
    assert resolved is not None


def test_a_release_from_a_stale_read_is_refused(service: Service) -> None:
    """The booking layer's own guard: a caller that skipped the application lock and releases from a stale copy
    (the booking was released meanwhile) gets BOOKING_CHANGED, and the transformer is released once."""
    application = _submit(service)
    asset_id, kva = _booking(service, application["id"])
    assert asset_id is not None
    factory = make_session_factory(service.engine)
    with factory() as stale, factory() as first:
        copy = stale.get(Application, application["id"])
        stale.commit()  # the copy stays loaded (expire_on_commit=False); SQLite's write lock is free again
        reserved_before, _ = _transformer_reserved(service, asset_id)
        current = first.get(Application, application["id"])
        assert copy is not None and current is not None
        assert release_reservation(first, current)
        first.commit()
        with pytest.raises(BookingChangedError):
            release_reservation(stale, copy)
        stale.rollback()
    reserved_after, _ = _transformer_reserved(service, asset_id)
    assert reserved_after == pytest.approx(reserved_before - kva)


def test_the_deadline_watch_neither_waits_for_nor_chases_a_transition(service: Service, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """R5.4 and issue 13: the deadline watch marks and chases a step only under its application's row lock.

    (1) While a transition holds the application's lock the watch skips it at once (it does not wait, and it
    does not mark a step that the transition may be completing); (2) a step completed between the watch's read
    and its write is neither marked at risk nor chased — before, the watch marked and notified from its read.
    """
    if service.backend != "postgis":
        pytest.skip("SQLite: the watch holds the write lock from its BEGIN IMMEDIATE; nothing interleaves")
    from app.lifecycle import deadlines
    from app.platform.models import Notification

    application = _submit(service)
    with service.engine.connect() as conn:
        deadline = conn.execute(select(ApplicationStep.deadline).where(
            ApplicationStep.application_id == application["id"],
            ApplicationStep.step_code == "site_survey")).scalar_one()
    on_the_day = datetime.combine(deadline, datetime.min.time(), tzinfo=UTC).replace(hour=2)  # 10:00 in China
    url = service.engine.url.render_as_string(hide_password=False)
    settings = settings_for_tests(url, data_dir=tmp_path)
    # a watch that waited for the held lock would fail after 1 s (lock_not_available), not pass slowly
    impatient = create_db_engine(url, lock_wait_s=1.0)
    factory = make_session_factory(impatient)

    def watch() -> deadlines.WatchReport:
        with factory() as session:
            report = deadlines.watch_deadlines(session, settings, now=on_the_day)
            session.commit()
        return report

    def marked() -> tuple[str, int]:
        with service.engine.connect() as conn:
            status = conn.execute(select(ApplicationStep.deadline_status).where(
                ApplicationStep.application_id == application["id"],
                ApplicationStep.step_code == "site_survey")).scalar_one()
            chased = conn.execute(select(func.count()).select_from(Notification).where(
                Notification.entity_id == str(application["id"]),
                Notification.dedupe_key.like("deadline_%:site_survey:%"))).scalar_one()
        return str(status), int(chased)

    with service.engine.connect() as holder:
        holder.begin()
        holder.execute(select(Application.id).where(Application.id == application["id"]).with_for_update())
        skipped = watch()  # did not wait for the lock: it would have raised after 1 s
        holder.rollback()
    assert all(app_id != application["id"] for app_id, _, _ in skipped.changed_steps), skipped.changed_steps
    assert marked() == ("on_time", 0)

    real_status = deadlines.deadline_status
    completed: list[int] = []

    def complete_the_survey_first(*args: Any, **kwargs: Any) -> Any:
        if not completed:  # the PM's report lands after the watch read the open steps
            data, files = report_multipart(photos=1)
            answer = service.post(f"/api/v1/terminal/jobs/{application['id']}/steps/site_survey",
                                  _pm(service, application), data=data, files=files)
            completed.append(answer.status_code)
        return real_status(*args, **kwargs)

    monkeypatch.setattr(deadlines, "deadline_status", complete_the_survey_first)
    report = watch()
    impatient.dispose()
    assert completed == [200]
    # the survey is done: not marked, not chased (the later steps it leads to are watched as usual)
    assert (application["id"], "site_survey", "at_risk") not in report.changed_steps, report.changed_steps
    assert marked() == ("on_time", 0)
