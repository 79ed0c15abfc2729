"""Tests of gis.index against a brute-force numpy oracle."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import LineString, MultiLineString

from gis.errors import InvalidInputError
from gis.index import (
    AccessPointSnapshot,
    LineSegmentSnapshot,
    Neighbour,
    SourceIndex,
    TransformerSnapshot,
    added_kva_limit,
)

R10_KVA = [30, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800]


def oracle(
    t: TransformerSnapshot, x_m: float, y_m: float, added_kva: float, pct: float, radius_m: float, k: int
) -> list[Neighbour]:
    """Brute force: the contract's formula, math.hypot distances, sort by (distance, position)."""
    feasible = (t.peak_kva + t.reserved_kva + added_kva) / t.rated_kva * 100 <= pct
    found = []
    for pos in np.flatnonzero(feasible).tolist():
        d = math.hypot(float(t.x_m[pos]) - x_m, float(t.y_m[pos]) - y_m)
        if d <= radius_m:
            found.append((d, pos))
    return [Neighbour(pos, d) for d, pos in sorted(found)[:k]]


def snapshot(rows: list[tuple[float, float, float, float, float]], area: str = "G1") -> TransformerSnapshot:
    """Rows of (x_m, y_m, rated_kva, peak_kva, reserved_kva)."""
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
    return TransformerSnapshot.from_lists(
        [f"T{i}" for i in range(len(rows))],
        *cols,
        [area] * len(rows),  # type: ignore[arg-type]
    )


@st.composite
def networks(
    draw: Any, min_n: int = 0, max_n: int = 60, span_m: float = 400.0, loads: tuple[float, ...] = ()
) -> TransformerSnapshot:
    n = draw(st.integers(min_n, max_n))
    loads = loads or (0.1, 0.3, 0.5, 0.7, 0.79, 0.8, 0.95, 1.1)
    # coarse coordinates (multiples of 10 m) make equal distances and coincident points common
    coord = st.integers(0, int(span_m / 10)).map(lambda v: v * 10.0)
    rows = []
    for _ in range(n):
        rated = float(draw(st.sampled_from(R10_KVA)))
        load = draw(st.sampled_from(loads))
        reserved = draw(st.sampled_from([0.0, 0.0, 5.0, 12.5]))
        rows.append((draw(coord), draw(coord), rated, rated * load, reserved))
    return snapshot(rows)


queries = st.tuples(
    st.integers(-20, 60).map(lambda v: v * 10.0),  # x_m, sometimes outside the network
    st.integers(-20, 60).map(lambda v: v * 10.0),  # y_m
    st.sampled_from([0.0, 5.0, 10.0, 20.0, 45.0, 100.0, 160.0]),  # added_kva
    st.sampled_from([80.0, 70.0, 100.0]),  # max_load_after_pct
    st.sampled_from([math.inf, 0.0, 50.0, 150.0, 250.0]),  # radius_m
    st.integers(1, 6),  # k
)


@settings(max_examples=150, deadline=None)
@given(networks(), st.lists(queries, min_size=1, max_size=8))
def test_nearest_feasible_matches_oracle(t: TransformerSnapshot, qs: list[Any]) -> None:
    index = SourceIndex.build(t)
    for x_m, y_m, added_kva, pct, radius_m, k in qs:
        got = index.nearest_feasible(x_m, y_m, added_kva, pct, radius_m, k)
        assert got == oracle(t, x_m, y_m, added_kva, pct, radius_m, k)


# mostly overloaded transformers: the few feasible ones are many cells away
sparse_networks = networks(min_n=200, max_n=400, span_m=20_000.0, loads=(0.3, 0.95, 0.95, 0.95, 0.95, 1.1, 1.1, 1.1))


@settings(max_examples=40, deadline=None)
@given(sparse_networks, st.lists(queries, min_size=1, max_size=5))
def test_sparse_wide_networks_match_oracle(t: TransformerSnapshot, qs: list[Any]) -> None:
    # wide, sparse networks push answers many cells away (the vectorised doubling scan)
    index = SourceIndex.build(t)
    for x_m, y_m, added_kva, pct, _, k in qs:
        for radius_m in (math.inf, 3_000.0):
            got = index.nearest_feasible(x_m * 30, y_m * 30, added_kva, pct, radius_m, k)
            assert got == oracle(t, x_m * 30, y_m * 30, added_kva, pct, radius_m, k)


def test_capacity_exhausted_nearby_gives_farther_transformer() -> None:
    # 300 full transformers on a 10 m lattice around the pin; one with capacity 2 km away
    rows = [(i * 10.0, j * 10.0, 100.0, 95.0, 0.0) for i in range(20) for j in range(15)]
    rows.append((2_000.0, 0.0, 400.0, 100.0, 0.0))
    t = snapshot(rows)
    index = SourceIndex.build(t)
    got = index.nearest_feasible(100.0, 70.0, 50.0, 80.0, math.inf, 3)
    assert got == oracle(t, 100.0, 70.0, 50.0, 80.0, math.inf, 3)
    assert [n.pos for n in got] == [300]
    assert index.nearest_feasible(100.0, 70.0, 50.0, 80.0, 500.0, 3) == []


def test_ties_are_broken_by_position() -> None:
    t = snapshot([(10.0, 0.0, 100.0, 0.0, 0.0), (-10.0, 0.0, 100.0, 0.0, 0.0), (0.0, 10.0, 100.0, 0.0, 0.0)])
    got = SourceIndex.build(t).nearest_feasible(0.0, 0.0, 10.0, 80.0, math.inf, 2)
    assert got == [Neighbour(0, 10.0), Neighbour(1, 10.0)]


def test_empty_index() -> None:
    index = SourceIndex.build(snapshot([]))
    assert index.nearest_feasible(0.0, 0.0, 10.0, 80.0, 100.0, 5) == []
    assert index.nearest_any(0.0, 0.0) is None
    assert len(index) == 0


def test_pin_exactly_on_a_transformer() -> None:
    t = snapshot([(5.0, 5.0, 200.0, 20.0, 0.0), (6.0, 5.0, 200.0, 20.0, 0.0)])
    assert SourceIndex.build(t).nearest_feasible(5.0, 5.0, 10.0, 80.0, 0.0, 5) == [Neighbour(0, 0.0)]


def test_all_candidates_beyond_radius() -> None:
    t = snapshot([(600.0, 0.0, 200.0, 20.0, 0.0), (0.0, -700.0, 200.0, 20.0, 0.0)])
    index = SourceIndex.build(t)
    assert index.nearest_feasible(0.0, 0.0, 10.0, 80.0, 500.0, 5) == []
    assert index.nearest_any(0.0, 0.0) == Neighbour(0, 600.0)
    assert index.nearest_any(0.0, 0.0, radius_m=500.0) is None


def test_feasibility_boundary_is_inclusive() -> None:
    # (30 + 10 + 40) / 100 * 100 = 80 exactly: feasible at 80 %, not at 79.99 %
    t = snapshot([(0.0, 0.0, 100.0, 30.0, 10.0)])
    index = SourceIndex.build(t)
    assert index.nearest_feasible(1.0, 0.0, 40.0, 80.0) == [Neighbour(0, 1.0)]
    assert index.nearest_feasible(1.0, 0.0, 40.0, 79.99) == []


@pytest.mark.parametrize(
    ("rated_kva", "committed_kva", "pct", "added_kva"),
    [
        (100.0, 30.0, 80.0, 50.00000000000001),  # one ulp above the algebraic limit, yet the test passes
        (630.0, 65.82, 55.0, 280.68),  # the algebraic limit itself, yet the test fails
        (100.0, 18.12, 59.1, 40.980000000000004),  # same
    ],
)
def test_rounding_at_the_limit_follows_the_formula(
    rated_kva: float, committed_kva: float, pct: float, added_kva: float
) -> None:
    t = snapshot([(0.0, 0.0, rated_kva, committed_kva, 0.0)])
    expected = oracle(t, 3.0, 4.0, added_kva, pct, math.inf, 1)
    assert SourceIndex.build(t).nearest_feasible(3.0, 4.0, added_kva, pct) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.floats(1.0, 2_000.0),
    st.floats(0.0, 2_000.0),
    st.floats(1.0, 120.0),
    st.floats(0.0, 500.0),
    st.floats(-1e-9, 1e-9),
)
def test_limit_bounds_the_formula(
    rated_kva: float, committed_kva: float, pct: float, added_kva: float, nudge_kva: float
) -> None:
    upper, band_kva = added_kva_limit(np.array([rated_kva]), np.array([committed_kva]), pct)
    # probe right at the algebraic boundary too, where rounding decides
    for added in (added_kva, max(float(upper[0]) + nudge_kva, 0.0), max(float(upper[0]) - band_kva / 2, 0.0)):
        holds = (committed_kva + added) / rated_kva * 100 <= pct
        if added > upper[0]:
            assert not holds
        if added <= upper[0] - band_kva:
            assert holds


@pytest.mark.parametrize(
    ("kwargs", "outcome"),
    [
        ({}, nullcontext()),
        ({"x_m": math.nan}, pytest.raises(InvalidInputError)),  # NaN query
        ({"added_kva": -1.0}, pytest.raises(InvalidInputError)),  # negative load
        ({"max_load_after_pct": 0.0}, pytest.raises(InvalidInputError)),
        ({"radius_m": -5.0}, pytest.raises(InvalidInputError)),
        ({"k": 0}, pytest.raises(InvalidInputError)),
    ],
)
def test_query_validation(kwargs: dict[str, Any], outcome: Any) -> None:
    index = SourceIndex.build(snapshot([(0.0, 0.0, 100.0, 10.0, 0.0)]))
    args = {"x_m": 0.0, "y_m": 0.0, "added_kva": 10.0, "max_load_after_pct": 80.0, "radius_m": 10.0, "k": 1}
    with outcome:
        index.nearest_feasible(**(args | kwargs))


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([(0.0, 0.0, 0.0, 0.0, 0.0)], "rated_kva"),  # zero rating
        ([(0.0, 0.0, 100.0, -1.0, 0.0)], "peak_kva"),
        ([(math.nan, 0.0, 100.0, 1.0, 0.0)], "x_m"),
    ],
)
def test_snapshot_validation(rows: list[tuple[float, ...]], field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        snapshot(rows)  # type: ignore[arg-type]
    assert raised.value.details["field"] == field
    assert raised.value.details["asset_id"] == "T0"


def test_snapshot_rejects_duplicate_ids_and_ragged_columns() -> None:
    with pytest.raises(InvalidInputError):
        TransformerSnapshot.from_lists(["A", "A"], [0, 1], [0, 1], [100, 100], [1, 1], [0, 0], ["G", "G"])
    with pytest.raises(InvalidInputError):
        TransformerSnapshot.from_lists(["A", "B"], [0], [0, 1], [100, 100], [1, 1], [0, 0], ["G", "G"])


def test_snapshot_arrays_are_read_only() -> None:
    t = snapshot([(0.0, 0.0, 100.0, 10.0, 0.0)])
    with pytest.raises(ValueError):
        t.peak_kva[0] = 5.0


def test_area_spare_and_precontrol() -> None:
    t = TransformerSnapshot.from_lists(
        ["A1", "A2", "B1", "X"],
        [0, 1, 2, 3],
        [0, 0, 0, 0],
        [400, 200, 100, 100],
        [200, 100, 20, 0],
        [20, 0, 0, 0],
        ["A", "A", "B", None],
    )
    index = SourceIndex.build(t)
    # A: (320 - 200 - 20) + (160 - 100) = 160; B: 80 - 20 = 60
    assert dict(index.area_spare_kva(80.0)) == {"A": 160.0, "B": 60.0}
    assert index.area_precontrol("A", 80.0, 160.0) is False  # 160 is not below 160
    assert index.area_precontrol("B", 80.0, 160.0) is True
    assert index.area_precontrol(None, 80.0, 160.0) is False


def test_load_rates() -> None:
    index = SourceIndex.build(snapshot([(0.0, 0.0, 400.0, 200.0, 40.0)]))
    assert index.load_rates_pct(0, added_kva=80.0) == (50.0, 80.0)


@pytest.fixture
def fed_network() -> tuple[TransformerSnapshot, SourceIndex]:
    t = snapshot([(0.0, 0.0, 400.0, 100.0, 0.0), (500.0, 0.0, 400.0, 100.0, 0.0), (900.0, 0.0, 400.0, 100.0, 0.0)])
    ap = AccessPointSnapshot.from_lists(
        ["P1", "P2", "BB1", "P9"],
        ["T0", "T0", "T0", "T1"],
        ["pole", "pole", "branch_box", "pole"],
        [40.0, 80.0, 80.0, 100.0],
        [0.0, 0.0, 0.0, 0.0],
        t,
    )
    lines = LineSegmentSnapshot.from_lines(
        ["L1", "L2"],
        ["T0", "T1"],
        [LineString([(0, 0), (0, 200)]), MultiLineString([[(500, 0), (500, 50)], [(500, 50), (600, 50)]])],
        t,
    )
    return t, SourceIndex.build(t, ap, lines)


def test_nearest_access_point_prefers_equipment_on_ties(fed_network: tuple[Any, SourceIndex]) -> None:
    _, index = fed_network
    hit = index.nearest_access_point(80.0, 30.0, 0)
    assert hit is not None and (hit.asset_id, hit.kind) == ("P2", "pole")  # pole beats branch box at 30 m
    assert hit.distance_m == pytest.approx(30.0)


def test_nearest_access_point_on_overhead_line(fed_network: tuple[Any, SourceIndex]) -> None:
    _, index = fed_network
    hit = index.nearest_access_point(10.0, 150.0, 0)
    assert hit is not None
    assert (hit.asset_id, hit.kind, hit.x_m, hit.y_m, hit.distance_m) == ("L1", "line_segment", 0.0, 150.0, 10.0)
    hit = index.nearest_access_point(550.0, 80.0, 1)
    assert hit is not None and (hit.asset_id, hit.x_m, hit.y_m) == ("L2", 550.0, 50.0)


def test_transformer_without_access_geometry(fed_network: tuple[Any, SourceIndex]) -> None:
    _, index = fed_network
    assert index.nearest_access_point(900.0, 10.0, 2) is None


def test_access_points_must_reference_known_transformers() -> None:
    t = snapshot([(0.0, 0.0, 100.0, 10.0, 0.0)])
    with pytest.raises(InvalidInputError) as raised:
        AccessPointSnapshot.from_lists(["P1"], ["T-retired"], ["pole"], [1.0], [1.0], t)
    assert raised.value.details["field"] == "transformer_asset_id"
    kept = AccessPointSnapshot.from_lists(["P1"], ["T-retired"], ["pole"], [1.0], [1.0], t, skip_unknown=True)
    assert len(kept.asset_id) == 0
    with pytest.raises(InvalidInputError):
        AccessPointSnapshot.from_lists(["P1"], ["T0"], ["manhole"], [1.0], [1.0], t)


def test_concurrent_queries_with_many_percentages() -> None:
    # more percentages than the cache holds, from several threads at once
    rows = [(float(i % 17) * 25.0, float(i // 17) * 25.0, 200.0, float(i % 9) * 20.0, 0.0) for i in range(300)]
    t = snapshot(rows)
    index = SourceIndex.build(t)
    jobs = [(x * 7.0, x * 5.0, 30.0, 60.0 + x % 12, math.inf, 3) for x in range(60)]

    def run(job: tuple[float, float, float, float, float, int]) -> bool:
        return index.nearest_feasible(*job) == oracle(t, *job)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(run, jobs))


@settings(max_examples=60, deadline=None)
@given(networks(min_n=1), st.lists(queries, min_size=1, max_size=5), st.data())
def test_rebooked_index_answers_like_a_rebuilt_one(t: TransformerSnapshot, qs: list[Any], data: Any) -> None:
    """R2.3 with bookings: new reservations on a shared grid give the answers of a full rebuild."""
    old = SourceIndex.build(t)
    old.nearest_feasible(0.0, 0.0, 10.0, 80.0, math.inf, 3)  # fill the old index's capacity cache first
    reserved = np.array(data.draw(st.lists(st.sampled_from([0.0, 5.0, 40.0, 200.0]), min_size=len(t),
                                           max_size=len(t))))
    rebooked = old.with_reserved_kva(reserved)
    rebuilt = SourceIndex.build(t.with_reserved_kva(reserved))
    for x_m, y_m, added_kva, pct, radius_m, k in qs:
        assert rebooked.nearest_feasible(x_m, y_m, added_kva, pct, radius_m, k) == rebuilt.nearest_feasible(
            x_m, y_m, added_kva, pct, radius_m, k)
    assert dict(rebooked.area_spare_kva(80.0)) == dict(rebuilt.area_spare_kva(80.0))
    assert np.array_equal(old.transformers.reserved_kva, t.reserved_kva)  # the old index is unchanged
