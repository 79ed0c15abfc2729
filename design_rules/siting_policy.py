"""What a connection asks of the network under a profile: the area type, the kVA, the siting thresholds (R2.3).

Pure functions between a design request and ``gis.siting``: the service passes the facts (the kW, the area
type the request or its grid area names, the deployment's overrides of the power and demand factors) and
gets the :class:`gis.siting.SitingParams` every threshold of which comes from the profile.

>>> from design_rules.profiles import get_profile
>>> profile = get_profile("chongqing-2019")
>>> resolve_area_type(None, "rural", "urban")
(<AreaType.RURAL: 'rural'>, 'grid_area')
>>> round(requested_kva(80.0, 0.8), 1)
100.0
>>> siting_params(80.0, AreaType.URBAN, profile, top_k=3).max_load_after_pct
80.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from design_rules.profiles import AreaType, Profile
from gis.siting import SitingParams

AreaTypeSource = Literal["request", "grid_area", "deployment"]


@dataclass(frozen=True)
class FactorOverrides:
    """A deployment's overrides of the profile's power and demand factors (``SANLING_POWER_FACTOR`` …)."""

    power_factor: float | None = None
    demand_factor: float | None = None


NO_OVERRIDES = FactorOverrides()


def resolve_area_type(requested: str | None, grid_area_type: str | None, default: str) -> tuple[AreaType,
                                                                                                 AreaTypeSource]:
    """The area type for the supply radius and where it came from (``request``, ``grid_area``, ``deployment``).

    ``grid_area_type`` is the area type of the grid area containing the pin, if any.
    """
    if requested is not None:
        return AreaType(requested), "request"
    if grid_area_type:
        return AreaType(grid_area_type), "grid_area"
    return AreaType(default), "deployment"


def requested_kva(kw: float, power_factor: float) -> float:
    """Apparent power asked for, kVA: ``kw / power_factor`` (R2.3)."""
    return kw / power_factor


def effective_factors(profile: Profile, overrides: FactorOverrides = NO_OVERRIDES) -> tuple[float, float]:
    """``(power_factor, demand_factor)`` in force: the deployment's overrides, else the profile's."""
    power_factor = overrides.power_factor if overrides.power_factor is not None else profile.power_factor.value
    demand_factor = overrides.demand_factor if overrides.demand_factor is not None else profile.demand_factor.value
    return power_factor, demand_factor


def added_kva(kw: float, profile: Profile, overrides: FactorOverrides = NO_OVERRIDES) -> float:
    """The kVA a connection of ``kw`` adds to its transformer's peak: ``kw / power_factor × demand_factor``."""
    power_factor, demand_factor = effective_factors(profile, overrides)
    return requested_kva(kw, power_factor) * demand_factor


def siting_params(kw: float, area_type: AreaType, profile: Profile, *, top_k: int,
                  overrides: FactorOverrides = NO_OVERRIDES) -> SitingParams:
    """Siting thresholds from the profile, the power and demand factors overridable by the deployment (R2.3)."""
    reach_m = profile.supply_radius_m.reach_m(area_type)  # class E: the profile's case-by-case limit
    thresholds = profile.load_thresholds
    return SitingParams(
        added_kva=added_kva(kw, profile, overrides),
        max_load_after_pct=thresholds.max_load_after_pct,
        radius_m=reach_m,
        may_start_pct=thresholds.may_start_pct,
        must_start_pct=thresholds.must_start_pct,
        area_precontrol_kva=thresholds.area_precontrol_kva,
        top_k=top_k,
        upgrade_reach_m=reach_m,
    )
