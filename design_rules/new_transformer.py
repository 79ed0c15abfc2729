"""A new distribution transformer by the load (新增配变/新建台区; issue 20 item 1e): the unit and its 10 kV run.

Pure rules over the profile's ``new_transformer`` table (DOMAIN §1.1, §6.1): the unit is the smallest
rating of the standard series of the area type's unit kind that carries the booking plus the margin;
its 10 kV line is estimated from the nearest existing transformer (the feeder's stand-in) and bounded
by the 10 kV line radius of the area type.

>>> from design_rules.profiles import get_profile
>>> rules = get_profile("chongqing-2019").new_transformer
>>> unit = size_unit(94.1, AreaType.D, rules)
>>> unit.kind, unit.rated_kva, unit.load_rate_after_pct
('pole_mounted', 200.0, 47.0)
>>> run = mv_run(600.0, AreaType.D, rules)
>>> run.length_m, run.limit_m, run.within_limit
(780.0, 15000.0, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from design_rules.profiles import AreaType, NewTransformerRules
from design_rules.reasons import Reason

__all__ = ["MvRun", "UnitChoice", "mv_run", "size_unit", "unit_reason"]

#: Name of each unit kind on the sheet and in the reasons.
UNIT_KIND_ZH = {"pole_mounted": "柱上变台", "box": "箱式变电站"}


@dataclass(frozen=True)
class UnitChoice:
    """The new unit: its kind, rating, the kVA it must carry and its load rate after connection."""

    kind: str
    rated_kva: float
    needed_kva: float
    load_rate_after_pct: float


@dataclass(frozen=True)
class MvRun:
    """The new unit's 10 kV line: estimated length, the area type's limit, and whether it is within it."""

    straight_m: float
    length_m: float
    limit_m: float

    @property
    def within_limit(self) -> bool:
        """The estimated line is no longer than the 10 kV line radius."""
        return self.length_m <= self.limit_m


def size_unit(added_kva: float, area_type: AreaType, rules: NewTransformerRules) -> UnitChoice | None:
    """The smallest standard rating of the area type's unit kind ≥ ``added_kva × (1 + margin)``; ``None``
    when the series has none that large (DOMAIN §6.1; the margin is the profile's)."""
    kind, series = rules.series(area_type)
    needed = added_kva * (1.0 + rules.margin_pct / 100.0)
    for rated in series:
        if rated >= needed - 1e-9:
            return UnitChoice(kind, rated, round(needed, 1), round(added_kva / rated * 100.0, 1))
    return None


def mv_run(straight_m: float, area_type: AreaType, rules: NewTransformerRules) -> MvRun:
    """The 10 kV line from the feeding transformer: ``straight × mv_detour_factor``, limited by the radius."""
    if not (math.isfinite(straight_m) and straight_m >= 0):
        straight_m = math.inf
    return MvRun(straight_m, round(straight_m * rules.mv_detour_factor, 1), rules.mv_reach_m(area_type))


def unit_reason(unit: UnitChoice, run: MvRun, feeder_asset_id: str, rules: NewTransformerRules) -> Reason:
    """The job-class reason that names the new unit and its 10 kV supply."""
    return Reason(
        "NEW_TRANSFORMER",
        f"就近新增配变：{UNIT_KIND_ZH[unit.kind]} {unit.rated_kva:g} kVA（需 {unit.needed_kva:g} kVA，"
        f"含裕度 {rules.margin_pct:g}%；接入后负载率 {unit.load_rate_after_pct:g}%），设于距计量箱最近的道路处；"
        f"10kV 电源由既有配变 {feeder_asset_id} 处线路 T 接，估算线路长 {run.length_m:.0f} m ≤ 10kV 供电半径 "
        f"{run.limit_m:g} m。",
        f"issue 20 item 1e; {rules.source}; {rules.margin_source}; {rules.mv_source}",
    )
