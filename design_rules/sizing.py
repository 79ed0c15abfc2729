"""Electrical sizing (R4.2): design current, voltage drop, conductor choice and meter wiring.

The meter choice itself is :mod:`design_rules.metering`; :class:`MeterSelection` and :func:`select_meter`
are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from design_rules.catalogue import (
    Conductor,
    ConductorCatalogue,
    Installation,
    Material,
    MeterWiring,
    Role,
    SizingRules,
    load_conductors,
    load_sizing_rules,
)
from design_rules.metering import MeterSelection as MeterSelection
from design_rules.metering import select_meter
from design_rules.reasons import Reason
from gis.errors import InvalidInputError

_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True, slots=True)
class SizingResult:
    """Outcome of sizing one LV connection (R4.2).

    When ``feasible`` is false no standard conductor meets both ampacity and the voltage-drop budget:
    the conductor fields are ``None`` and a ``NO_STANDARD_CONDUCTOR`` reason says what the largest
    candidate achieved, so that the caller may escalate (dedicated cable, new or uprated transformer).
    ``ampacity_a`` is the derated ampacity; ``r_ohm_per_km`` is R at ``resistance_temperature_c``.
    """

    kw: float
    power_factor: float
    phases: int
    route_length_m: float
    installation: Installation
    role: Role
    design_current_a: float
    feasible: bool
    conductor: str | None
    material: Material | None
    size_mm2: float | None
    cores: int | None
    ampacity_a: float | None
    derating_factor: float | None
    r_ohm_per_km: float | None
    x_ohm_per_km: float | None
    resistance_temperature_c: float
    voltage_drop_pct: float | None
    voltage_drop_budget_pct: float
    meter_wiring: MeterWiring
    meter_designation: str
    meter_rating: str
    ct_ratio: str | None
    ct_load_fraction: float | None
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict; ``reasons`` become ``{code, message, source}`` objects.

        Examples
        --------
        >>> r = size_conductor(50, 0.85, 3, 120, "overhead", 5.0)
        >>> r.to_dict()["conductor"], r.to_dict()["reasons"][0]["code"]
        ('JKLYJ-1kV-70', 'DESIGN_CURRENT')
        """
        data = {field.name: getattr(self, field.name) for field in fields(self)}  # flat: no deep copy needed
        data["reasons"] = [reason.to_dict() for reason in self.reasons]
        return data


def _check_load(kw: float, power_factor: float, phases: int) -> None:
    if not kw > 0:
        raise InvalidInputError("kw must be positive", field="kw", value=kw)
    if not 0 < power_factor <= 1:
        raise InvalidInputError("power_factor must be in (0, 1]", field="power_factor", value=power_factor)
    if phases not in (1, 3):
        raise InvalidInputError("phases must be 1 or 3", field="phases", value=phases)


def _check_length(length_m: float, field: str) -> None:
    if not (length_m >= 0 and math.isfinite(length_m)):
        raise InvalidInputError(f"{field} must be a finite length ≥ 0", field=field, value=length_m)


def design_current_a(kw: float, power_factor: float, phases: int, *, rules: SizingRules | None = None) -> float:
    """Design current of a balanced load (R4.2; DOMAIN §7.1).

    ``I = P / (√3 · U_L · cosφ)`` for three phases and ``I = P / (U_ph · cosφ)`` for one, with the
    nominal voltages of the sizing rules (380 V / 220 V).

    Parameters
    ----------
    kw : float
        Requested active power in kW.
    power_factor : float
        cosφ in (0, 1].
    phases : int
        1 or 3.
    rules : SizingRules, optional
        Voltages; the packaged rules when omitted.

    Returns
    -------
    float
        Design current in A.

    Examples
    --------
    >>> round(design_current_a(160, 0.85, 3), 1)
    286.0
    >>> round(design_current_a(10, 0.9, 1), 1)
    50.5
    """
    _check_load(kw, power_factor, phases)
    voltage = (rules or load_sizing_rules()).voltage
    if phases == 3:
        return kw / (_SQRT3 * voltage.three_phase_line_kv * power_factor)
    return kw / (voltage.single_phase_kv * power_factor)


def kw_from_current(
    design_current_a: float, power_factor: float, phases: int, *, rules: SizingRules | None = None
) -> float:
    """Active power in kW that draws ``design_current_a`` (inverse of :func:`design_current_a`).

    Examples
    --------
    >>> round(kw_from_current(60, 0.85, 3), 2)
    33.57
    """
    if not design_current_a > 0:
        raise InvalidInputError("design_current_a must be positive", field="design_current_a")
    _check_load(1.0, power_factor, phases)
    voltage = (rules or load_sizing_rules()).voltage
    if phases == 3:
        return design_current_a * _SQRT3 * voltage.three_phase_line_kv * power_factor
    return design_current_a * voltage.single_phase_kv * power_factor


def voltage_drop_pct(
    kw: float,
    power_factor: float,
    phases: int,
    r_ohm_per_km: float,
    x_ohm_per_km: float,
    length_m: float,
    *,
    voltage_kv: float | None = None,
    rules: SizingRules | None = None,
) -> float:
    """Voltage drop of a load at the end of a line, in % of the nominal voltage (DOMAIN §7.1).

    ``ΔU% = (P·R0 + Q·X0)·L / (10·U²)`` (three-phase, U line-to-line) and
    ``ΔU% = 2·(P·R0 + Q·X0)·L / (10·U_ph²)`` (single-phase, phase and neutral of equal size), with P in
    kW, Q = P·tanφ in kvar, R0 and X0 in Ω/km, L in km and U in kV. Pass R at the temperature you
    size at (see :func:`resistance_ohm_per_km`).

    Parameters
    ----------
    kw, power_factor, phases
        The load, as for :func:`design_current_a`.
    r_ohm_per_km, x_ohm_per_km : float
        Per-conductor resistance and positive-sequence reactance.
    length_m : float
        Line length in metres.
    voltage_kv : float, optional
        The voltage U of the formula (line-to-line for three phases, phase for one phase); the
        nominal 0.38 / 0.22 kV of the rules when omitted.
    rules : SizingRules, optional
        Nominal voltages; the packaged rules when omitted.

    Returns
    -------
    float
        Voltage drop in percent.

    Examples
    --------
    >>> round(voltage_drop_pct(1, 0.85, 3, 0.5323, 0.30, 1000), 3)   # DOMAIN §7.4: JKLYJ-70, 0.497
    0.497
    """
    _check_load(kw, power_factor, phases)
    _check_length(length_m, "length_m")
    voltage = (rules or load_sizing_rules()).voltage
    kvar = kw * math.tan(math.acos(power_factor))
    moment = (kw * r_ohm_per_km + kvar * x_ohm_per_km) * length_m / 1000.0
    if phases == 3:
        u_kv = voltage_kv or voltage.three_phase_line_kv
        return moment / (10.0 * u_kv**2)
    u_kv = voltage_kv or voltage.single_phase_kv
    return 2.0 * moment / (10.0 * u_kv**2)


def resistance_ohm_per_km(
    conductor: Conductor, temperature_c: float | None = None, *, rules: SizingRules | None = None
) -> float:
    """Conductor resistance at ``temperature_c``: ``R20·(1 + α(θ − 20))`` (DOMAIN §3.1).

    Parameters
    ----------
    conductor : Conductor
        Catalogue entry.
    temperature_c : float, optional
        Conductor temperature; the rules' sizing basis (70 °C) when omitted.
    rules : SizingRules, optional
        Temperature coefficients; the packaged rules when omitted.

    Examples
    --------
    >>> from design_rules.catalogue import load_conductors
    >>> round(resistance_ohm_per_km(load_conductors()["JKLYJ-1kV-120"]), 3)   # DOMAIN §3.1: 0.304
    0.304
    """
    resistance = (rules or load_sizing_rules()).resistance
    theta_c = resistance.conductor_temperature_c if temperature_c is None else temperature_c
    return conductor.r20_ohm_per_km * (1.0 + resistance.alpha_per_k[conductor.material] * (theta_c - 20.0))


def derated_ampacity_a(
    conductor: Conductor, installation: Installation, role: Role, *, rules: SizingRules | None = None
) -> tuple[float, float]:
    """Ampacity after derating for the installation method, and the total factor (DOMAIN §3.6).

    The catalogue figure for the method's medium (air or ground) is corrected from the catalogue's
    base ambient to the method's design ambient, then multiplied by the method's extra factors.

    Returns
    -------
    tuple of float
        ``(ampacity_a, derating_factor)``.

    Examples
    --------
    >>> from design_rules.catalogue import load_conductors
    >>> derated_ampacity_a(load_conductors()["YJV22-0.6/1kV-4x95"], "cable", "line")
    (219.3, 0.85)
    """
    rules = rules or load_sizing_rules()
    method = rules.method(installation, role)
    base_a, base_c = conductor.ampacity_a(method.ampacity_medium)
    factor = rules.temperature_table(method.ampacity_medium, base_c).factor_at(method.design_temperature_c)
    for extra in method.factors:
        factor *= extra.factor
    factor = round(factor, 6)
    return round(base_a * factor, 3), factor


def candidate_conductors(
    installation: Installation,
    role: Role,
    phases: int,
    *,
    preferred_material: Material | None = None,
    catalogue: ConductorCatalogue | None = None,
    rules: SizingRules | None = None,
) -> tuple[Conductor, ...]:
    """Conductors allowed for the job, in the order they are tried (R4.2; DOMAIN §7.5).

    Filter: the installation, role and phase count fit, and the size is at least the method's
    mechanical minimum. Order: the preferred material (the method's default when omitted) by size
    then core count, then the other material the same way.

    Examples
    --------
    >>> [c.designation for c in candidate_conductors("overhead", "line", 3)][:2]
    ['JKLYJ-1kV-70', 'JKLYJ-1kV-95']
    """
    rules = rules or load_sizing_rules()
    catalogue = catalogue or load_conductors()
    method = rules.method(installation, role)
    material = preferred_material or method.default_material
    allowed = [
        c
        for c in catalogue.values()
        if c.installation == installation
        and role in c.roles
        and phases in c.phases
        and c.size_mm2 >= method.min_size_mm2
    ]
    return tuple(sorted(allowed, key=lambda c: (c.material != material, c.material, c.size_mm2, c.cores)))


@dataclass(frozen=True, slots=True)
class _Check:
    conductor: Conductor
    ampacity_a: float
    derating_factor: float
    r_ohm_per_km: float
    voltage_drop_pct: float
    ampacity_ok: bool
    drop_ok: bool


def _size(
    kw: float,
    power_factor: float,
    phases: int,
    length_m: float,
    installation: Installation,
    role: Role,
    voltage_drop_budget_pct: float,
    catalogue: ConductorCatalogue | None,
    rules: SizingRules | None,
    preferred_material: Material | None,
) -> SizingResult:
    _check_load(kw, power_factor, phases)
    _check_length(length_m, "route_length_m")
    if not voltage_drop_budget_pct > 0:
        raise InvalidInputError("voltage_drop_budget_pct must be positive", field="voltage_drop_budget_pct")
    if installation not in ("overhead", "cable"):
        raise InvalidInputError("installation must be 'overhead' or 'cable'", field="installation")
    rules = rules or load_sizing_rules()
    method = rules.method(installation, role)
    current_a = design_current_a(kw, power_factor, phases, rules=rules)
    theta_c = rules.resistance.conductor_temperature_c
    formula = "P/(√3·U·cosφ)" if phases == 3 else "P/(U·cosφ)"
    reasons: list[Reason] = [
        Reason(
            "DESIGN_CURRENT", f"I = {formula} = {kw:g} kW at cosφ {power_factor:g} → {current_a:.1f} A", "DOMAIN §7.1"
        )
    ]
    if method.min_size_mm2 > 0:
        reasons.append(
            Reason(
                "MECHANICAL_MINIMUM",
                f"{installation} {role}: sizes below {method.min_size_mm2:g} mm² are not used",
                method.source,
            )
        )
    checks: list[_Check] = []
    for conductor in candidate_conductors(
        installation, role, phases, preferred_material=preferred_material, catalogue=catalogue, rules=rules
    ):
        ampacity_a, factor = derated_ampacity_a(conductor, installation, role, rules=rules)
        r_ohm_per_km = resistance_ohm_per_km(conductor, rules=rules)
        drop_pct = voltage_drop_pct(
            kw, power_factor, phases, r_ohm_per_km, conductor.x_ohm_per_km, length_m, rules=rules
        )
        check = _Check(
            conductor,
            ampacity_a,
            factor,
            r_ohm_per_km,
            drop_pct,
            current_a <= ampacity_a,
            drop_pct <= voltage_drop_budget_pct,
        )
        checks.append(check)
        if check.ampacity_ok and check.drop_ok:
            break
    meter = select_meter(current_a, phases, rules=rules)
    chosen = checks[-1] if checks and checks[-1].ampacity_ok and checks[-1].drop_ok else None
    reasons.extend(_selection_reasons(checks, chosen, current_a, voltage_drop_budget_pct, length_m, theta_c, method))
    if chosen is not None and chosen.conductor.material != (preferred_material or method.default_material):
        reasons.append(
            Reason(
                "MATERIAL_FALLBACK",
                f"no {preferred_material or method.default_material} size qualifies; "
                f"{chosen.conductor.material} is used",
                method.source,
            )
        )
    reasons.extend(meter.reasons)
    return SizingResult(
        kw=kw,
        power_factor=power_factor,
        phases=phases,
        route_length_m=length_m,
        installation=installation,
        role=role,
        design_current_a=round(current_a, 3),
        feasible=chosen is not None,
        conductor=chosen.conductor.designation if chosen else None,
        material=chosen.conductor.material if chosen else None,
        size_mm2=chosen.conductor.size_mm2 if chosen else None,
        cores=chosen.conductor.cores if chosen else None,
        ampacity_a=chosen.ampacity_a if chosen else None,
        derating_factor=chosen.derating_factor if chosen else None,
        r_ohm_per_km=round(chosen.r_ohm_per_km, 6) if chosen else None,
        x_ohm_per_km=chosen.conductor.x_ohm_per_km if chosen else None,
        resistance_temperature_c=theta_c,
        voltage_drop_pct=round(chosen.voltage_drop_pct, 4) if chosen else None,
        voltage_drop_budget_pct=voltage_drop_budget_pct,
        meter_wiring=meter.meter_wiring,
        meter_designation=meter.meter_designation,
        meter_rating=meter.meter_rating,
        ct_ratio=meter.ct_ratio,
        ct_load_fraction=meter.ct_load_fraction,
        reasons=tuple(reasons),
    )


def _selection_reasons(
    checks: list[_Check],
    chosen: _Check | None,
    current_a: float,
    budget_pct: float,
    length_m: float,
    theta_c: float,
    method: Any,
) -> list[Reason]:
    def failure(check: _Check) -> str:
        parts = []
        if not check.ampacity_ok:
            parts.append(f"ampacity {check.ampacity_a:.0f} A < {current_a:.0f} A")
        if not check.drop_ok:
            parts.append(f"drop {check.voltage_drop_pct:.2f} % > {budget_pct:g} %")
        return f"{check.conductor.designation} ({', '.join(parts)})"

    rejected = [failure(c) for c in checks if c is not chosen]
    reasons: list[Reason] = []
    if chosen is not None and rejected:
        reasons.append(Reason("SMALLER_SIZES_REJECTED", "; ".join(rejected), "DOMAIN §7.4, §7.5"))
    if chosen is not None:
        reasons.append(
            Reason(
                "CONDUCTOR_SELECTED",
                f"{chosen.conductor.designation}: derated ampacity {chosen.ampacity_a:.0f} A "
                f"(×{chosen.derating_factor:.2f}) ≥ {current_a:.1f} A; voltage drop {chosen.voltage_drop_pct:.2f} % "
                f"≤ {budget_pct:g} % over {length_m:g} m (R at {theta_c:g} °C)",
                f"DOMAIN §7.5; {method.source}",
            )
        )
        return reasons
    largest = failure(checks[-1]) if checks else "no candidate conductor in the catalogue"
    reasons.append(
        Reason(
            "NO_STANDARD_CONDUCTOR",
            f"no standard conductor meets ampacity and the {budget_pct:g} % voltage-drop budget over {length_m:g} m; "
            f"largest tried: {largest}. Consider a dedicated cable from the transformer, or a new or uprated "
            "transformer nearer the load",
            "DOMAIN §7.4, §10",
        )
    )
    return reasons


def size_conductor(
    kw: float,
    power_factor: float,
    phases: int,
    route_length_m: float,
    installation: Installation,
    voltage_drop_budget_pct: float,
    *,
    catalogue: ConductorCatalogue | None = None,
    rules: SizingRules | None = None,
    preferred_material: Material | None = None,
) -> SizingResult:
    """Size the new LV line from the access point to the meter box (R4.2; DOMAIN §7.5).

    Picks the first candidate (:func:`candidate_conductors`: mechanical minimum applied, preferred
    material first, ascending size) whose derated ampacity carries the design current and whose
    voltage drop over ``route_length_m`` stays within ``voltage_drop_budget_pct``; R is taken at the
    rules' conductor temperature (70 °C). Also chooses the meter wiring (:func:`select_meter`).

    Parameters
    ----------
    kw : float
        Requested active power in kW.
    power_factor : float
        cosφ in (0, 1] (profile default 0.85, DOMAIN §7.2).
    phases : int
        1 or 3.
    route_length_m : float
        Length of the new line in metres.
    installation : {'overhead', 'cable'}
        JKLYJ overhead line or YJV22/YJLV22 buried cable.
    voltage_drop_budget_pct : float
        Allowed drop on this line in percent (profile value, DOMAIN §2.2).
    catalogue : ConductorCatalogue, optional
        Conductors; the packaged catalogue when omitted.
    rules : SizingRules, optional
        Voltages, derating, minimum sizes, metering; the packaged rules when omitted.
    preferred_material : {'Cu', 'Al'}, optional
        Tried first; the method's default material when omitted. The other material is tried next.

    Returns
    -------
    SizingResult
        ``feasible`` is false when nothing qualifies (the caller may escalate to a transformer upgrade).

    Examples
    --------
    >>> r = size_conductor(160, 0.85, 3, 80, "overhead", 5.0)
    >>> r.conductor, r.meter_wiring, r.ct_ratio
    ('JKLYJ-1kV-120', 'ct_connected', '500/5')
    >>> size_conductor(160, 0.85, 3, 400, "overhead", 5.0).feasible
    False
    """
    return _size(
        kw,
        power_factor,
        phases,
        route_length_m,
        installation,
        "line",
        voltage_drop_budget_pct,
        catalogue,
        rules,
        preferred_material,
    )


def size_service_drop(
    kw: float,
    power_factor: float,
    phases: int,
    length_m: float,
    installation: Installation,
    voltage_drop_budget_pct: float,
    *,
    catalogue: ConductorCatalogue | None = None,
    rules: SizingRules | None = None,
    preferred_material: Material | None = None,
) -> SizingResult:
    """Size the service drop of a direct-meter job (R4.2; DOMAIN §1.2, §3.5).

    ``installation='overhead'`` is an insulated drop from an existing pole (bundled JKLYJ first);
    ``'cable'`` is a short cable from a branch box in conduit along the wall. Same selection as
    :func:`size_conductor` with the service methods' derating and no trunk mechanical minimum.

    Examples
    --------
    >>> size_service_drop(8, 0.9, 1, 20, "overhead", 2.0).conductor
    'JKLYJ-1kV-2x25'
    >>> size_service_drop(30, 0.85, 3, 15, "cable", 2.0).conductor
    'YJV22-0.6/1kV-4x25'
    """
    return _size(
        kw,
        power_factor,
        phases,
        length_m,
        installation,
        "service",
        voltage_drop_budget_pct,
        catalogue,
        rules,
        preferred_material,
    )
