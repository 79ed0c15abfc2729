"""``GET /api/v1/sources``: the ranked sources with spare capacity for a meter-box pin (R2.1–R2.4, R4.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.identity.auth import AuthenticatedUser, Role, require_roles
from app.network.deps import SitingEngineDep
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, SettingsDep
from app.platform.params import (
    PIN_CRS_NOTE,
    SERVICE_AREA_LAT,
    SERVICE_AREA_LON,
    SERVICE_AREA_NOTE,
    PinCrs,
    ProfileId,
)
from design_rules.profiles import AreaType, get_profile
from design_rules.siting_policy import effective_factors, requested_kva, resolve_area_type, siting_params
from gis.crs import pin_to_local
from gis.siting import site

router = APIRouter(prefix="/api/v1", tags=["sources"])

#: Staff who may see asset ids and positions (customers use the public capacity endpoint instead).
StaffUser = Annotated[AuthenticatedUser, Depends(require_roles(
    Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER, Role.PLANNER, Role.GIS_ADMIN))]

AreaTypeName = AreaType


class GeoJsonGeometry(BaseModel):
    """An RFC 7946 geometry in WGS-84 lon/lat."""

    type: str = Field(examples=["Point"])
    coordinates: Any = Field(examples=[[106.4883, 29.4993]])


class Pin(BaseModel):
    """The meter box (表箱) after conversion: WGS-84 and the deployment's metric CRS."""

    lon_wgs84: float
    lat_wgs84: float
    x_m: float = Field(description="Easting in the deployment's projected CRS, metres.")
    y_m: float = Field(description="Northing in the deployment's projected CRS, metres.")
    geometry: GeoJsonGeometry


class SitingParamsOut(BaseModel):
    """The thresholds the search used (from the policy profile and settings)."""

    added_kva: float = Field(description="kw / power_factor × demand_factor, kVA.")
    max_load_after_pct: float
    radius_m: float | None = Field(description="Supply radius of the area type; null: no fixed radius.")
    may_start_pct: float
    must_start_pct: float
    area_precontrol_kva: float
    top_k: int


class AccessPointOut(BaseModel):
    """Where the new connection leaves the network: `pole`, `branch_box`, `line_segment` or `transformer`."""

    asset_id: str
    kind: Literal["pole", "branch_box", "line_segment", "transformer"]
    derived: bool = Field(default=False, description="A branch box derived from the cable network's junctions and "
                          "ends (no branch box in the GIS): to be confirmed on site (issue 20 item 1a).")
    geometry: GeoJsonGeometry


class RoadCrossingOut(BaseModel):
    """A road whose centre line the route crosses."""

    road_id: str
    name: str | None
    road_class: str = Field(examples=["arterial"])


class RouteOut(BaseModel):
    """The route from the access point to the meter box."""

    geometry: GeoJsonGeometry
    length_m: float
    method: Literal["direct", "road", "straight_fallback"] = Field(
        description="`direct`: straight, crossing no road; `road`: along road centre lines with off-road legs; "
        "`straight_fallback`: no roads loaded, straight length × detour factor.")
    crossings: list[RoadCrossingOut]
    enters_no_overhead_zone: bool


class CandidateOut(BaseModel):
    """One transformer (配变) that can take the load, with its access point, route and load flags."""

    transformer_asset_id: str
    transformer_name: str | None = None
    transformer_geometry: GeoJsonGeometry
    access_point: AccessPointOut
    straight_to_access_point_m: float
    straight_to_transformer_m: float
    route: RouteOut
    load_rate_before_pct: float = Field(description="peak / rated × 100.")
    load_rate_after_pct: float = Field(description="(peak + reserved + added) / rated × 100.")
    may_start_project: bool = Field(description="Load rate before ≥ may_start_pct (50 %): a project may start.")
    must_start_project: bool = Field(description="Load rate before ≥ must_start_pct (70 %): a project must start.")
    start_in_advance: bool = Field(description="Load rate after > max_load_after_pct (80 %).")
    grid_area_code: str | None
    area_precontrol: bool = Field(description="The grid area's allowable connection capacity < 160 kVA.")


class SourcesResponse(BaseModel):
    """Ranked feasible sources (best first, by route length) or the upgrade candidate when none is feasible."""

    pin: Pin
    profile_id: str
    area_type: str
    area_type_source: Literal["request", "grid_area", "deployment"]
    grid_area_code: str | None = Field(description="The grid area containing the meter box, if any.")
    kw: float
    power_factor: float
    demand_factor: float
    requested_kva: float = Field(description="kw / power_factor.")
    params: SitingParamsOut
    feasible: bool
    reason_code: str | None = Field(examples=[None, "NO_FEASIBLE_SOURCE"])
    reason: str | None
    candidates: list[CandidateOut]
    upgrade_candidate: CandidateOut | None
    network_generation: int = Field(description="asset_generation the answer was computed from.")


def _with_names(candidate: dict[str, Any] | None, names: dict[str, str]) -> dict[str, Any] | None:
    if candidate is not None:
        candidate["transformer_name"] = names.get(candidate["transformer_asset_id"])
    return candidate


@router.get("/sources", response_model=SourcesResponse, responses={
    401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
    403: {"description": "Role may not see assets (`FORBIDDEN`)."},
    422: {"description": "`CRS_UNSUPPORTED`, `COORDINATE_INVALID`, `OUT_OF_SERVICE_AREA`, `PROFILE_UNKNOWN` "
                         "or `REQUEST_INVALID`, with the field at fault in `details`."},
})
def list_sources(
    user: StaffUser,
    session: SessionDep,
    settings: SettingsDep,
    engine: SitingEngineDep,
    lon: Annotated[float, Query(description="Longitude of the meter box in `crs`. " + SERVICE_AREA_NOTE,
                                examples=[106.4883433], json_schema_extra=SERVICE_AREA_LON)],
    lat: Annotated[float, Query(description="Latitude of the meter box in `crs`. " + SERVICE_AREA_NOTE,
                                examples=[29.499325], json_schema_extra=SERVICE_AREA_LAT)],
    kw: Annotated[float, Query(gt=0, le=10_000, description="Requested capacity, kW.", examples=[25])],
    crs: Annotated[PinCrs, Query(description=PIN_CRS_NOTE)] = "wgs84",
    area_type: Annotated[AreaTypeName | None, Query(
        description="Supply-radius class; default: the grid area's, else the deployment's.")] = None,
    profile: Annotated[ProfileId | None, Query(
        description="Policy profile id; default: the deployment's. Unknown ids answer 422 `PROFILE_UNKNOWN`.",
        examples=["chongqing-2019"])] = None,
    top_k: Annotated[int, Query(ge=1, le=20, description="Nearest feasible transformers to route and rank.")] = 5,
) -> dict[str, Any]:
    """Find the transformers with spare capacity for a meter box (R2.2–R2.4).

    The pin is converted to WGS-84 and projected to the deployment's metric CRS; the nearest
    transformers within the supply radius whose projected load rate after connection stays ≤ 80 %
    are routed along the road network from their nearest access point and ranked by route length.
    When none is feasible, `feasible` is false with `reason_code` `NO_FEASIBLE_SOURCE` and the nearest
    transformer comes back as `upgrade_candidate`. Computed from the network generation named in
    `network_generation` (always the latest committed one).
    """
    policy = get_profile(profile or settings.profile)
    snapshot = engine.snapshot(read_only_connection(session))
    pin = pin_to_local(lon, lat, crs, engine.projector)
    area = snapshot.grid_area_at(pin.x_m, pin.y_m)
    resolved_area, area_source = resolve_area_type(area_type, area.area_type if area else None,
                                                   settings.default_area_type)
    params = siting_params(kw, resolved_area, policy, top_k=top_k, overrides=settings.factor_overrides)
    result = site(pin, snapshot.index, snapshot.roads, params).to_dict(engine.projector)
    power_factor, demand_factor = effective_factors(policy, settings.factor_overrides)
    names = snapshot.transformer_name
    return {
        **result,
        "candidates": [_with_names(c, names) for c in result["candidates"]],
        "upgrade_candidate": _with_names(result["upgrade_candidate"], names),
        "profile_id": policy.profile_id,
        "area_type": AreaType(resolved_area).value,
        "area_type_source": area_source,
        "grid_area_code": None if area is None else area.code,
        "kw": kw,
        "power_factor": power_factor,
        "demand_factor": demand_factor,
        "requested_kva": requested_kva(kw, power_factor),
        "network_generation": snapshot.generation,
    }
