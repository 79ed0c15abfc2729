"""Load readings and bookings reach every worker in place, never through a re-read of the network (issue 12).

A readings import moved ``network_generation``, so each worker re-read and rebuilt the whole network on its next
request (8.7 s at 20k transformers, 21 s at 50k). Now readings, like bookings and releases, are logged in
``capacity_changes`` (``peak_kva``) and applied to the snapshot a worker holds. The property checked on both
databases: after any sequence of readings imports (through the real importer) and bookings, the snapshot a
worker updated in place answers exactly as a fresh full build of the same database — same peaks, same
reservations, same sources for every pin, same loads in a survey package — and it is still the same network
(its road graph and trees are the ones built at the start: nothing was re-read).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from app.design.survey import assets_near
from app.network.generations import network_version, record_capacity_changes
from app.network.loading import import_layer_file, load_demo
from app.network.reading import read_network
from app.network.siting import NetworkSnapshot, SitingEngine
from app.platform import migrate
from app.platform.db import create_db_engine
from tests.app.auth_helpers import settings_for_tests

#: Pins across the demo district (WGS-84) whose sources are compared.
PINS_WGS84 = [(106.49 + 0.004 * i, 29.50 + 0.003 * j) for i in range(-2, 3) for j in range(-2, 3)]


@dataclass
class District:
    engine: Engine
    siting: SitingEngine
    assets: list[str]
    rated_kva: dict[str, float]
    tmp_path: Path
    clock: list[int] = field(default_factory=lambda: [0])


@pytest.fixture(scope="module")
def district(backend: str, fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:  # type: ignore[no-untyped-def]
    url = fresh_database(backend)
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with engine.begin() as conn:
        load_demo(conn)
        rated = {str(a): float(r) for a, r in conn.execute(text(
            "SELECT asset_id, rated_kva FROM transformers WHERE status = 'in_service' ORDER BY asset_id"))}
    siting = SitingEngine.from_settings(settings_for_tests(url))
    yield District(engine, siting, sorted(rated), rated, tmp_path_factory.mktemp("readings"))
    engine.dispose()


def _import_readings(district: District, peaks: dict[str, float]) -> None:
    district.clock[0] += 1  # each file is newer than the last, so its readings become the latest
    day, hour = divmod(district.clock[0], 24)
    lines = [f"{asset},2026-{1 + day // 28:02d}-{1 + day % 28:02d} {hour:02d}:00,{kva:.3f}"
             for asset, kva in peaks.items()]
    path = district.tmp_path / f"readings-{district.clock[0]}.csv"
    path.write_text("transformer_asset_id,read_at,peak_kva\n" + "\n".join(lines) + "\n")
    with district.engine.begin() as conn:
        import_layer_file(conn, "load_readings", path)


def _book(district: District, asset: str, reserved_kva: float) -> None:
    with district.engine.begin() as conn:
        conn.execute(text("UPDATE transformers SET reserved_kva = :r WHERE asset_id = :a"),
                     {"r": reserved_kva, "a": asset})
        record_capacity_changes(conn, {asset: reserved_kva})


def _sources(snapshot: NetworkSnapshot, siting: SitingEngine) -> list[list[tuple[str, float]]]:
    answers = []
    for lon, lat in PINS_WGS84:
        x_m, y_m = siting.projector.project(lon, lat)
        found = snapshot.index.nearest_feasible(x_m, y_m, 40.0, 80.0, 400.0, 5)
        answers.append([(str(snapshot.index.transformers.asset_id[n.pos]), round(n.distance_m, 6)) for n in found])
    return answers


step = st.one_of(
    st.tuples(st.just("readings"), st.dictionaries(st.integers(0, 10_000), st.floats(0, 1.2), min_size=1,
                                                   max_size=6)),
    st.tuples(st.just("booking"), st.tuples(st.integers(0, 10_000), st.floats(0, 0.5))),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=5))
def test_readings_and_bookings_apply_in_place_exactly_as_a_fresh_build(district: District, steps: list) -> None:  # type: ignore[type-arg]
    with district.engine.connect() as conn:
        start = district.siting.snapshot(conn)
    for kind, payload in steps:
        if kind == "readings":
            picked = {district.assets[i % len(district.assets)]: share for i, share in payload.items()}
            _import_readings(district, {a: share * district.rated_kva[a] for a, share in picked.items()})
        else:
            i, share = payload
            asset = district.assets[i % len(district.assets)]
            _book(district, asset, share * district.rated_kva[asset])
        with district.engine.connect() as conn:
            updated = district.siting.snapshot(conn)
            version = network_version(conn)
            fresh = NetworkSnapshot.build(read_network(conn, district.siting.projector), version)
        assert updated.network_generation == start.network_generation  # readings are not a network change
        assert updated.roads is start.roads and updated.road_tree is start.road_tree  # nothing was re-read
        assert (updated.generation, updated.capacity_seq) == (version.generation, version.capacity_seq)
        np.testing.assert_allclose(updated.index.transformers.peak_kva, fresh.index.transformers.peak_kva,
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(updated.index.transformers.reserved_kva, fresh.index.transformers.reserved_kva,
                                   rtol=0, atol=1e-6)
        assert _sources(updated, district.siting) == _sources(fresh, district.siting)
        assert _survey_loads(updated, district.siting) == _survey_loads(fresh, district.siting)


def _survey_loads(snapshot: NetworkSnapshot, siting: SitingEngine) -> list[tuple[str, float, float, float]]:
    """The transformer figures a PM's survey package shows around the district's centre (R5.1)."""
    x_m, y_m = siting.projector.project(*PINS_WGS84[12])
    package = assets_near(snapshot, siting, x_m, y_m, radius_m=600.0)
    return sorted((f["properties"]["asset_id"], f["properties"]["peak_kva"], f["properties"]["reserved_kva"],
                   f["properties"]["load_rate_pct"]) for f in package["features"]
                  if f["properties"]["layer"] == "transformers")
