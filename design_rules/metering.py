"""Meter wiring, meter and CT ratio chosen from the design current (R4.2; DOMAIN §5.1).

Part of the electrical sizing: :func:`~design_rules.sizing.size_conductor` and
:func:`~design_rules.sizing.size_service_drop` call :func:`select_meter` for every result, and
:mod:`design_rules.sizing` re-exports both names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from design_rules.catalogue import MeterWiring, SizingRules, load_sizing_rules
from design_rules.reasons import Reason
from gis.errors import InvalidInputError

__all__ = ["MeterSelection", "select_meter"]


@dataclass(frozen=True, slots=True)
class MeterSelection:
    """Meter wiring, meter and CT ratio chosen for a design current (DOMAIN §5.1).

    ``ct_ratio`` (e.g. ``"300/5"``), ``ct_primary_a`` and ``ct_load_fraction`` are set only for
    CT-connected metering.
    """

    meter_wiring: MeterWiring
    meter_designation: str
    meter_rating: str
    ct_ratio: str | None
    ct_primary_a: int | None
    ct_load_fraction: float | None
    reasons: tuple[Reason, ...]


def select_meter(design_current_a: float, phases: int, *, rules: SizingRules | None = None) -> MeterSelection:
    """Choose meter wiring, meter and CT ratio from the design current (R4.2; DOMAIN §5.1).

    Single-phase supply → single-phase meter. Three-phase: direct-connected up to
    ``metering.direct_max_a`` (DL/T 448-2016: 60 A, TU), CT-connected above, with the smallest
    standard CT primary that keeps the normal load at or below the target fraction (≈60 %) of rating.

    Examples
    --------
    >>> select_meter(286.0, 3).ct_ratio
    '500/5'
    >>> select_meter(40.0, 3).meter_wiring
    'three_phase_direct'
    """
    if not design_current_a > 0:
        raise InvalidInputError("design_current_a must be positive", field="design_current_a")
    metering = (rules or load_sizing_rules()).metering
    source = metering.source
    if phases == 1:
        return _direct_meter("single_phase", design_current_a, metering.meters, source)
    if design_current_a <= metering.direct_max_a:
        selection = _direct_meter("three_phase_direct", design_current_a, metering.meters, source)
        note = Reason(
            "METER_DIRECT",
            f"design current {design_current_a:.1f} A ≤ {metering.direct_max_a:g} A: direct-connected meter",
            source,
        )
        return _with_reasons(selection, (note,))
    primaries = metering.ct_primaries_a
    fitting = [p for p in primaries if design_current_a / p <= metering.ct_target_load_fraction]
    primary_a = fitting[0] if fitting else primaries[-1]
    fraction = design_current_a / primary_a
    ratio = f"{primary_a}/{metering.ct_secondary_a}"
    reasons = [
        Reason(
            "METER_CT",
            f"design current {design_current_a:.1f} A > {metering.direct_max_a:g} A: CT-connected meter",
            source,
        ),
        Reason(
            "CT_RATIO",
            f"CT {ratio}: normal load {fraction:.0%} of rating (target ≤ {metering.ct_target_load_fraction:.0%}, "
            f"never below {metering.ct_min_load_fraction:.0%})",
            source,
        ),
    ]
    if not fitting:
        reasons.append(
            Reason(
                "CT_ABOVE_TARGET",
                f"the largest standard CT {ratio} carries {fraction:.0%} of rating, above the target",
                source,
            )
        )
    elif fraction < metering.ct_min_load_fraction:
        reasons.append(Reason("CT_BELOW_MINIMUM", f"CT {ratio} is loaded below the minimum fraction", source))
    meter = min((m for m in metering.meters if m.wiring == "ct_connected"), key=lambda m: m.max_current_a)
    return MeterSelection(
        "ct_connected", meter.designation, meter.rating, ratio, primary_a, round(fraction, 4), tuple(reasons)
    )


def _direct_meter(wiring: MeterWiring, current_a: float, meters: Any, source: str) -> MeterSelection:
    ranked = sorted((m for m in meters if m.wiring == wiring), key=lambda m: m.max_current_a)
    fitting = [m for m in ranked if m.max_current_a >= current_a]
    meter = fitting[0] if fitting else ranked[-1]
    reasons: list[Reason] = []
    if wiring == "single_phase":
        reasons.append(Reason("METER_SINGLE_PHASE", "single-phase supply: single-phase meter", source))
    if not fitting:
        reasons.append(
            Reason(
                "METER_ABOVE_RATING",
                f"design current {current_a:.1f} A exceeds the largest {wiring} meter {meter.rating}; "
                "supply three-phase instead (single-phase is for equipment < 10 kW)",
                "DOMAIN §5.1, §5.2",
            )
        )
    return MeterSelection(wiring, meter.designation, meter.rating, None, None, None, tuple(reasons))


def _with_reasons(selection: MeterSelection, extra: tuple[Reason, ...]) -> MeterSelection:
    return MeterSelection(
        selection.meter_wiring,
        selection.meter_designation,
        selection.meter_rating,
        selection.ct_ratio,
        selection.ct_primary_a,
        selection.ct_load_fraction,
        extra + selection.reasons,
    )

