"""Electrical sizing (R4.2): formulas against DOMAIN §7 tables, selection rules, meter wiring, properties."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from design_rules.catalogue import load_conductors, load_sizing_rules
from design_rules.sizing import (
    candidate_conductors,
    design_current_a,
    kw_from_current,
    resistance_ohm_per_km,
    select_meter,
    size_conductor,
    size_service_drop,
    voltage_drop_pct,
)
from gis.errors import InvalidInputError

CATALOGUE = load_conductors()
RULES = load_sizing_rules()


@pytest.mark.parametrize(
    ("kw", "power_factor", "expected_a"),
    [(10, 0.85, 18), (50, 0.85, 89), (100, 0.85, 179), (160, 0.85, 286), (60, 0.90, 101), (125, 0.90, 211)],
)
def test_three_phase_current_matches_domain_table(kw: float, power_factor: float, expected_a: float) -> None:
    # DOMAIN §7.3, rounded to whole amperes there.
    assert round(design_current_a(kw, power_factor, 3)) == expected_a


@pytest.mark.parametrize(("kw", "expected_a"), [(4, 20), (6, 30), (8, 40), (12, 61)])
def test_single_phase_current_matches_domain(kw: float, expected_a: float) -> None:
    # DOMAIN §7.3: single-phase at 0.9.
    assert round(design_current_a(kw, 0.9, 1)) == expected_a


@pytest.mark.parametrize(
    ("designation", "k_pct_per_kw_km"),
    [
        ("JKLYJ-1kV-70", 0.497),
        ("JKLYJ-1kV-120", 0.339),
        ("JKLYJ-1kV-240", 0.233),
        ("YJLV22-0.6/1kV-4x185", 0.171),
        ("YJV22-0.6/1kV-4x150", 0.137),
    ],
)
def test_drop_coefficient_matches_domain_table(designation: str, k_pct_per_kw_km: float) -> None:
    # DOMAIN §7.4: k = ΔU% per kW·km at cosφ 0.85 with R at 70 °C.
    conductor = CATALOGUE[designation]
    k = voltage_drop_pct(1.0, 0.85, 3, resistance_ohm_per_km(conductor), conductor.x_ohm_per_km, 1000.0)
    assert k == pytest.approx(k_pct_per_kw_km, abs=0.002)


def test_r70_matches_domain_table() -> None:
    # DOMAIN §3.1: Al R70 for 50 mm² 0.770, Cu R70 for 240 mm² 0.090.
    assert resistance_ohm_per_km(CATALOGUE["JKLYJ-1kV-50"]) == pytest.approx(0.770, abs=0.001)
    assert resistance_ohm_per_km(CATALOGUE["YJV22-0.6/1kV-4x240"]) == pytest.approx(0.090, abs=0.001)
    assert resistance_ohm_per_km(CATALOGUE["YJV22-0.6/1kV-4x240"], 20.0) == 0.0754


def test_single_phase_drop_is_twice_the_loop_over_phase_voltage() -> None:
    three = voltage_drop_pct(10, 0.9, 3, 0.5, 0.3, 100, voltage_kv=0.22)
    assert voltage_drop_pct(10, 0.9, 1, 0.5, 0.3, 100) == pytest.approx(2 * three)


@pytest.mark.parametrize(
    ("kw", "length_m", "installation", "expected"),
    [
        (50, 120, "overhead", "JKLYJ-1kV-70"),  # mechanical minimum governs (DOMAIN §7.5)
        (160, 80, "overhead", "JKLYJ-1kV-120"),  # ampacity: 286 A > 275 A of JKLYJ-95
        (160, 130, "overhead", "JKLYJ-1kV-240"),  # voltage drop governs beyond ~104 m on 150 (DOMAIN §7.4)
        (100, 150, "cable", "YJV22-0.6/1kV-4x70"),  # buried Cu with duct factor 0.85
        (160, 300, "cable", "YJV22-0.6/1kV-4x240"),  # drop 4.65 % on 4×240
    ],
)
def test_size_conductor_choices(kw: float, length_m: float, installation: str, expected: str) -> None:
    result = size_conductor(kw, 0.85, 3, length_m, installation, 5.0)  # type: ignore[arg-type]
    assert result.feasible and result.conductor == expected
    assert result.design_current_a <= result.ampacity_a  # type: ignore[operator]
    assert result.voltage_drop_pct <= 5.0  # type: ignore[operator]
    assert [r.code for r in result.reasons][:1] == ["DESIGN_CURRENT"]
    assert "CONDUCTOR_SELECTED" in {r.code for r in result.reasons}


def test_selected_size_is_the_smallest_that_qualifies() -> None:
    result = size_conductor(125, 0.85, 3, 160, "overhead", 5.0)
    candidates = candidate_conductors("overhead", "line", 3)
    index = [c.designation for c in candidates].index(result.conductor)  # type: ignore[arg-type]
    assert index > 0
    smaller = size_conductor(125, 0.85, 3, 160, "overhead", 5.0, catalogue=_only(candidates[index - 1].designation))
    assert not smaller.feasible


def _only(designation: str):  # type: ignore[no-untyped-def]
    from types import MappingProxyType

    from design_rules.catalogue import ConductorCatalogue

    return ConductorCatalogue(MappingProxyType({designation: CATALOGUE[designation]}))


def test_infeasible_says_so_with_a_reason() -> None:
    result = size_conductor(160, 0.85, 3, 600, "overhead", 5.0)
    assert not result.feasible and result.conductor is None and result.voltage_drop_pct is None
    reason = next(r for r in result.reasons if r.code == "NO_STANDARD_CONDUCTOR")
    assert "JKLYJ-1kV-240" in reason.message and "transformer" in reason.message


def test_material_fallback_is_reported() -> None:
    # 160 kW over 280 m: no Al cable keeps within 5 %, Cu 4×240 does.
    result = size_conductor(160, 0.85, 3, 280, "cable", 5.0, preferred_material="Al")
    assert result.feasible and result.material == "Cu"
    assert "MATERIAL_FALLBACK" in {r.code for r in result.reasons}


def test_overhead_trunk_never_below_mechanical_minimum() -> None:
    minimum = RULES.method("overhead", "line").min_size_mm2
    assert all(c.size_mm2 >= minimum for c in candidate_conductors("overhead", "line", 3))
    assert size_conductor(2, 0.85, 3, 10, "overhead", 5.0).size_mm2 == minimum


@pytest.mark.parametrize(
    ("current_a", "phases", "wiring", "ct_ratio"),
    [
        (40.0, 1, "single_phase", None),
        (60.0, 3, "three_phase_direct", None),  # DL/T 448-2016: ≤60 A direct (TU)
        (60.1, 3, "ct_connected", "150/5"),  # 60.1/150 = 40 % (100/5 would be 60.1 %)
        (178.7, 3, "ct_connected", "300/5"),
        (286.0, 3, "ct_connected", "500/5"),
    ],
)
def test_meter_wiring_and_ct_ratio(current_a: float, phases: int, wiring: str, ct_ratio: str | None) -> None:
    selection = select_meter(current_a, phases)
    assert selection.meter_wiring == wiring
    assert selection.ct_ratio == ct_ratio
    if ct_ratio:
        assert RULES.metering.ct_min_load_fraction <= selection.ct_load_fraction <= 0.6  # type: ignore[operator]


def test_single_phase_above_meter_rating_is_flagged() -> None:
    selection = select_meter(75.0, 1)
    assert selection.meter_wiring == "single_phase"
    assert "METER_ABOVE_RATING" in {r.code for r in selection.reasons}


@pytest.mark.parametrize(
    ("kw", "phases", "length_m", "installation", "expected"),
    [
        (8, 1, 20, "overhead", "JKLYJ-1kV-2x25"),  # small shop, bundled drop
        (25, 3, 25, "overhead", "JKLYJ-1kV-4x25"),
        (45, 3, 25, "overhead", "JKLYJ-1kV-4x35"),  # 80 A ≤ 104 A × 0.91 (catalogue 30 °C → design 40 °C)
        (55, 3, 25, "overhead", "JKLYJ-1kV-50"),  # 98 A > 95 A of 4×35: single-core conductors
        (30, 3, 15, "cable", "YJV22-0.6/1kV-4x25"),  # from a branch box along the wall
    ],
)
def test_service_drop_sizes(kw: float, phases: int, length_m: float, installation: str, expected: str) -> None:
    result = size_service_drop(kw, 0.85, phases, length_m, installation, 2.0)  # type: ignore[arg-type]
    assert result.role == "service" and result.conductor == expected


@pytest.mark.parametrize(
    ("kw", "power_factor", "phases", "expectation"),
    [
        (10, 0.85, 3, nullcontext()),
        (0, 0.85, 3, pytest.raises(InvalidInputError)),  # no load
        (10, 1.2, 3, pytest.raises(InvalidInputError)),  # cosφ above 1
        (10, 0.85, 2, pytest.raises(InvalidInputError)),  # two phases
    ],
)
def test_input_validation(kw: float, power_factor: float, phases: int, expectation: object) -> None:
    with expectation:  # type: ignore[attr-defined]
        size_conductor(kw, power_factor, phases, 50, "overhead", 5.0)


# ------------------------------------------------------------------------------------------ properties

KW = st.floats(min_value=0.5, max_value=160.0, allow_nan=False)
LENGTH_M = st.floats(min_value=0.0, max_value=600.0, allow_nan=False)
PF = st.floats(min_value=0.7, max_value=1.0, allow_nan=False)
PHASES = st.sampled_from([1, 3])
INSTALLATION = st.sampled_from(["overhead", "cable"])


@given(kw=KW, power_factor=PF, phases=PHASES)
def test_current_formula_inverse(kw: float, power_factor: float, phases: int) -> None:
    current_a = design_current_a(kw, power_factor, phases)
    assert kw_from_current(current_a, power_factor, phases) == pytest.approx(kw, rel=1e-12)


@given(kw=KW, extra_kw=st.floats(0.0, 50.0), length_m=LENGTH_M, extra_m=st.floats(0.0, 300.0), phases=PHASES)
def test_drop_monotone_in_kw_and_length(
    kw: float, extra_kw: float, length_m: float, extra_m: float, phases: int
) -> None:
    base = voltage_drop_pct(kw, 0.85, phases, 0.3, 0.3, length_m)
    assert voltage_drop_pct(kw + extra_kw, 0.85, phases, 0.3, 0.3, length_m) >= base
    assert voltage_drop_pct(kw, 0.85, phases, 0.3, 0.3, length_m + extra_m) >= base


def _rank(result, installation: str, phases: int) -> float:  # type: ignore[no-untyped-def]
    if not result.feasible:
        return math.inf
    order = [c.designation for c in candidate_conductors(installation, "line", phases)]  # type: ignore[arg-type]
    return order.index(result.conductor)


@settings(max_examples=60, deadline=None)
@given(kw=KW, extra_kw=st.floats(0.0, 60.0), length_m=LENGTH_M, extra_m=st.floats(0.0, 200.0), inst=INSTALLATION)
def test_selection_monotone_in_kw_and_length(
    kw: float, extra_kw: float, length_m: float, extra_m: float, inst: str
) -> None:
    base = _rank(size_conductor(kw, 0.85, 3, length_m, inst, 5.0), inst, 3)  # type: ignore[arg-type]
    more_kw = _rank(size_conductor(min(kw + extra_kw, 200.0), 0.85, 3, length_m, inst, 5.0), inst, 3)  # type: ignore[arg-type]
    longer = _rank(size_conductor(kw, 0.85, 3, length_m + extra_m, inst, 5.0), inst, 3)  # type: ignore[arg-type]
    assert more_kw >= base and longer >= base


@settings(max_examples=60, deadline=None)
@given(kw=KW, length_m=LENGTH_M, phases=PHASES, inst=INSTALLATION)
def test_feasible_result_meets_both_limits(kw: float, length_m: float, phases: int, inst: str) -> None:
    result = size_conductor(kw, 0.85, phases, length_m, inst, 5.0)  # type: ignore[arg-type]
    if result.feasible:
        assert result.design_current_a <= result.ampacity_a  # type: ignore[operator]
        assert result.voltage_drop_pct <= 5.0  # type: ignore[operator]
    else:
        assert any(r.code == "NO_STANDARD_CONDUCTOR" for r in result.reasons)
