"""The voltage-drop formula agrees with a pandapower load flow on a 2-bus net (R4.2 truth test).

Net: ext_grid at 1.0 pu on a 0.4 kV bus → one line (custom std type with the same R basis as the
service, R at 70 °C, and the catalogue x) → a constant-power load. Run with ``-s`` to see the table.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass

import pytest

pp = pytest.importorskip("pandapower")

from design_rules.catalogue import load_conductors  # noqa: E402
from design_rules.sizing import resistance_ohm_per_km, voltage_drop_pct  # noqa: E402

TOLERANCE_PP = 0.5
SOURCE_KV = 0.4

# (designation, kW, cosφ, length m) — overhead JKLYJ, Cu and Al cables, service drops; drops of 0.5–7 %.
CASES_3PH: list[tuple[str, float, float, float]] = [
    ("JKLYJ-1kV-50", 20, 0.85, 250),
    ("JKLYJ-1kV-70", 30, 0.85, 100),
    ("JKLYJ-1kV-70", 50, 0.85, 200),
    ("JKLYJ-1kV-95", 80, 0.90, 150),
    ("JKLYJ-1kV-95", 40, 0.80, 300),
    ("JKLYJ-1kV-120", 160, 0.85, 80),
    ("JKLYJ-1kV-120", 100, 0.85, 200),
    ("JKLYJ-1kV-150", 125, 0.90, 150),
    ("JKLYJ-1kV-185", 160, 0.85, 120),
    ("JKLYJ-1kV-240", 160, 0.85, 150),
    ("JKLYJ-1kV-4x35", 25, 0.85, 25),
    ("YJV22-0.6/1kV-4x25", 20, 0.85, 150),
    ("YJV22-0.6/1kV-4x35", 30, 0.90, 120),
    ("YJV22-0.6/1kV-4x50", 60, 0.85, 200),
    ("YJV22-0.6/1kV-4x70", 100, 0.85, 150),
    ("YJV22-0.6/1kV-4x95", 100, 0.80, 200),
    ("YJV22-0.6/1kV-4x120", 125, 0.85, 200),
    ("YJV22-0.6/1kV-4x150", 160, 0.85, 200),
    ("YJV22-0.6/1kV-4x185", 160, 0.90, 250),
    ("YJV22-0.6/1kV-4x240", 160, 0.85, 300),
    ("YJLV22-0.6/1kV-4x50", 30, 0.85, 150),
    ("YJLV22-0.6/1kV-4x95", 80, 0.85, 200),
    ("YJLV22-0.6/1kV-4x150", 120, 0.90, 180),
    ("YJLV22-0.6/1kV-4x185", 140, 0.85, 220),
    ("YJLV22-0.6/1kV-4x240", 160, 0.85, 250),
]

# Single-phase loads on phase a of a 4-wire line, neutral equal to the phase conductor.
CASES_1PH: list[tuple[str, float, float, float]] = [
    ("JKLYJ-1kV-2x25", 6, 0.90, 25),
    ("JKLYJ-1kV-70", 8, 0.90, 100),
    ("YJV22-0.6/1kV-4x25", 10, 0.90, 60),
    ("JKLYJ-1kV-2x35", 9, 0.85, 40),
]


@dataclass(frozen=True)
class Comparison:
    designation: str
    kw: float
    power_factor: float
    length_m: float
    pandapower_pct: float
    formula_pct: float
    design_basis_pct: float

    @property
    def difference_pp(self) -> float:
        return self.formula_pct - self.pandapower_pct


def _line_type(net: object, designation: str) -> None:
    conductor = load_conductors()[designation]
    r_ohm_per_km = resistance_ohm_per_km(conductor)
    x_ohm_per_km = conductor.x_ohm_per_km
    data = {
        "r_ohm_per_km": r_ohm_per_km,
        "x_ohm_per_km": x_ohm_per_km,
        "c_nf_per_km": 0.0,
        "max_i_ka": conductor.ampacity_air_a / 1000,
        # zero sequence of phase + equal neutral without mutual coupling: Z0 = Z + 3·Zn = 4·Z
        "r0_ohm_per_km": 4 * r_ohm_per_km,
        "x0_ohm_per_km": 4 * x_ohm_per_km,
        "c0_nf_per_km": 0.0,
    }
    pp.create_std_type(net, data, designation, element="line")


def _two_bus(designation: str, length_m: float) -> tuple[object, int]:
    net = pp.create_empty_network()
    _line_type(net, designation)
    source = pp.create_bus(net, vn_kv=SOURCE_KV)
    load = pp.create_bus(net, vn_kv=SOURCE_KV)
    pp.create_ext_grid(net, source, vm_pu=1.0, s_sc_max_mva=1e6, rx_max=0.1, x0x_max=1.0, r0x0_max=0.1)
    pp.create_line(net, source, load, length_km=length_m / 1000, std_type=designation)
    return net, load


def _compare(designation: str, kw: float, power_factor: float, length_m: float, phases: int) -> Comparison:
    conductor = load_conductors()[designation]
    r_ohm_per_km = resistance_ohm_per_km(conductor)
    net, load = _two_bus(designation, length_m)
    q_mvar = kw * math.tan(math.acos(power_factor)) / 1000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if phases == 3:
            pp.create_load(net, load, p_mw=kw / 1000, q_mvar=q_mvar)
            pp.runpp(net, numba=False)
            vm_pu = float(net.res_bus.vm_pu.at[load])
        else:
            pp.create_asymmetric_load(net, load, p_a_mw=kw / 1000, q_a_mvar=q_mvar)
            pp.runpp_3ph(net, numba=False)
            vm_pu = float(net.res_bus_3ph.vm_a_pu.at[load])
    same_basis_kv = SOURCE_KV if phases == 3 else SOURCE_KV / math.sqrt(3)
    args = (kw, power_factor, phases, r_ohm_per_km, conductor.x_ohm_per_km, length_m)
    return Comparison(
        designation,
        kw,
        power_factor,
        length_m,
        pandapower_pct=(1.0 - vm_pu) * 100.0,
        formula_pct=voltage_drop_pct(*args, voltage_kv=same_basis_kv),
        design_basis_pct=voltage_drop_pct(*args),
    )


def _report(title: str, results: list[Comparison]) -> None:
    print(f"\n{title}")
    print(
        f"{'conductor':<22}{'kW':>6}{'cosφ':>6}{'L m':>6}{'pandapower %':>14}{'formula %':>11}"
        f"{'diff pp':>9}{'380V basis %':>14}"
    )
    for c in results:
        print(
            f"{c.designation:<22}{c.kw:>6g}{c.power_factor:>6.2f}{c.length_m:>6g}{c.pandapower_pct:>14.3f}"
            f"{c.formula_pct:>11.3f}{c.difference_pp:>9.3f}{c.design_basis_pct:>14.3f}"
        )
    worst = max(results, key=lambda c: abs(c.difference_pp))
    mean_abs = statistics.fmean(abs(c.difference_pp) for c in results)
    design_diffs = [c.design_basis_pct - c.pandapower_pct for c in results]
    print(
        f"cases {len(results)}; worst |diff| {abs(worst.difference_pp):.3f} pp ({worst.designation}, {worst.kw:g} kW, "
        f"{worst.length_m:g} m); mean |diff| {mean_abs:.3f} pp; design basis (U = 380/220 V) minus pandapower: "
        f"{min(design_diffs):+.3f} … {max(design_diffs):+.3f} pp"
    )


def test_three_phase_formula_agrees_with_pandapower() -> None:
    results = [_compare(*case, phases=3) for case in CASES_3PH]
    _report("three-phase, ext_grid 0.4 kV at 1.0 pu, formula with U = 0.4 kV", results)
    assert len(results) >= 20
    assert all(0.3 < c.pandapower_pct < 8.0 for c in results)  # the cases span the design range
    assert max(abs(c.difference_pp) for c in results) <= TOLERANCE_PP
    # the service's own basis (U = 0.38 kV) never understates the drop computed by pandapower
    assert all(c.design_basis_pct >= c.pandapower_pct for c in results)


def test_single_phase_formula_agrees_with_pandapower_3ph() -> None:
    results = [_compare(*case, phases=1) for case in CASES_1PH]
    _report("single-phase (runpp_3ph, load on phase a), formula with U_ph = 0.4/√3 kV", results)
    assert max(abs(c.difference_pp) for c in results) <= TOLERANCE_PP
    assert all(c.design_basis_pct >= c.pandapower_pct for c in results)
