"""Siting: the ranked feasible sources for a meter box, or the transformer to upgrade (R2, R4.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import shapely

from gis.crs import LocalPin, Projector
from gis.errors import InvalidInputError
from gis.index import Neighbour, SourceIndex
from gis.routing import RoadNetwork, Route

__all__ = [
    "NO_FEASIBLE_SOURCE",
    "TRANSFORMER_KIND",
    "AccessPointRef",
    "NewTransformerSite",
    "SitingParams",
    "SitingResult",
    "SourceCandidate",
    "new_transformer_site",
    "site",
]

#: Reason code when no transformer within the supply radius can take the load (R2.3).
NO_FEASIBLE_SOURCE = "NO_FEASIBLE_SOURCE"
#: Access-point kind used when a transformer feeds no pole, branch box or overhead line.
TRANSFORMER_KIND = "transformer"


@dataclass(frozen=True, kw_only=True)
class SitingParams:
    """Inputs of one source search; every threshold comes from the policy profile (R2.3; BS 4.1.4).

    Attributes
    ----------
    added_kva : float
        Apparent power the connection adds to the transformer's peak, kVA
        (``kw / power_factor × demand_factor``, computed by the caller).
    max_load_after_pct : float
        Highest projected load rate after connection, percent (80 in the seeds).
    radius_m : float
        Supply radius of the area type, straight-line metres (DOMAIN §1.1); ``math.inf`` for none.
    may_start_pct, must_start_pct : float
        Load rates (before connection) at which a reinforcement project may / must be started.
    area_precontrol_kva : float
        A grid area whose allowable connection capacity is below this is pre-controlled.
    top_k : int
        Number of nearest feasible transformers to evaluate and return.
    upgrade_reach_m : float
        Farthest a transformer may stand, straight-line metres, to be named the upgrade candidate when
        none is feasible; beyond it no upgrade of an existing transformer can serve the meter box over
        LV (the supply radius, or the profile's limit where the radius is computed case by case), and the
        result names none. ``math.inf``: any distance.
    """

    added_kva: float
    max_load_after_pct: float
    radius_m: float
    may_start_pct: float = 50.0
    must_start_pct: float = 70.0
    area_precontrol_kva: float = 160.0
    top_k: int = 5
    upgrade_reach_m: float = math.inf

    def __post_init__(self) -> None:
        checks = {
            "added_kva": math.isfinite(self.added_kva) and self.added_kva >= 0.0,
            "max_load_after_pct": math.isfinite(self.max_load_after_pct) and self.max_load_after_pct > 0.0,
            "radius_m": not math.isnan(self.radius_m) and self.radius_m >= 0.0,
            "may_start_pct": math.isfinite(self.may_start_pct),
            "must_start_pct": math.isfinite(self.must_start_pct),
            "area_precontrol_kva": math.isfinite(self.area_precontrol_kva),
            "top_k": self.top_k >= 1,
            "upgrade_reach_m": not math.isnan(self.upgrade_reach_m) and self.upgrade_reach_m >= 0.0,
        }
        for field, ok in checks.items():
            if not ok:
                raise InvalidInputError(
                    f"Siting parameter {field} is out of range.", field=field, value=str(getattr(self, field))
                )

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as plain JSON (an infinite radius becomes ``null``)."""
        return {
            "added_kva": self.added_kva,
            "max_load_after_pct": self.max_load_after_pct,
            "radius_m": _finite_or_none(self.radius_m),
            "may_start_pct": self.may_start_pct,
            "must_start_pct": self.must_start_pct,
            "area_precontrol_kva": self.area_precontrol_kva,
            "top_k": self.top_k,
            "upgrade_reach_m": _finite_or_none(self.upgrade_reach_m),
        }


@dataclass(frozen=True)
class AccessPointRef:
    """Where the new connection leaves the existing network.

    ``kind`` is ``'pole'``, ``'branch_box'``, ``'line_segment'`` (the nearest point of an LV
    overhead line; ``asset_id`` is the line's) or ``'transformer'`` (it feeds no access geometry).
    ``derived``: a branch box derived from the cable network's junctions and ends where the GIS has no
    branch boxes (``asset_id`` is ``<cable asset id>@start`` or ``@end``), to be confirmed on site (待核实).
    """

    asset_id: str
    kind: str
    x_m: float
    y_m: float
    derived: bool = False

    def to_dict(self, projector: Projector) -> dict[str, Any]:
        """Return plain JSON with a GeoJSON Point in WGS-84."""
        return {
            "asset_id": self.asset_id,
            "kind": self.kind,
            "derived": self.derived,
            "geometry": projector.geojson_point_wgs84(self.x_m, self.y_m),
        }


@dataclass(frozen=True)
class SourceCandidate:
    """One transformer evaluated as the source, with its access point, route and load flags.

    Attributes
    ----------
    transformer_asset_id : str
        Asset id of the transformer.
    transformer_pos : int
        Its position in the index snapshot.
    transformer_x_m, transformer_y_m : float
        Its location, local metres.
    access_point : AccessPointRef
        The nearest access geometry it feeds (or the transformer itself).
    straight_to_access_point_m, straight_to_transformer_m : float
        Straight-line distances from the meter box, metres.
    route : Route
        Route from the access point to the meter box.
    load_rate_before_pct, load_rate_after_pct : float
        ``peak / rated × 100`` and ``(peak + reserved + added) / rated × 100``.
    may_start_project, must_start_project, start_in_advance : bool
        Before ≥ ``may_start_pct``; before ≥ ``must_start_pct``; after > ``max_load_after_pct``.
    grid_area_code : str or None
        The transformer's grid area.
    area_precontrol : bool
        The grid area's allowable connection capacity is below ``area_precontrol_kva``.
    """

    transformer_asset_id: str
    transformer_pos: int
    transformer_x_m: float
    transformer_y_m: float
    access_point: AccessPointRef
    straight_to_access_point_m: float
    straight_to_transformer_m: float
    route: Route
    load_rate_before_pct: float
    load_rate_after_pct: float
    may_start_project: bool
    must_start_project: bool
    start_in_advance: bool
    grid_area_code: str | None
    area_precontrol: bool

    def to_dict(self, projector: Projector) -> dict[str, Any]:
        """Return plain JSON with GeoJSON geometries in WGS-84 lon/lat."""
        return {
            "transformer_asset_id": self.transformer_asset_id,
            "transformer_geometry": projector.geojson_point_wgs84(self.transformer_x_m, self.transformer_y_m),
            "access_point": self.access_point.to_dict(projector),
            "straight_to_access_point_m": self.straight_to_access_point_m,
            "straight_to_transformer_m": self.straight_to_transformer_m,
            "route": self.route.to_dict(projector),
            "load_rate_before_pct": self.load_rate_before_pct,
            "load_rate_after_pct": self.load_rate_after_pct,
            "may_start_project": self.may_start_project,
            "must_start_project": self.must_start_project,
            "start_in_advance": self.start_in_advance,
            "grid_area_code": self.grid_area_code,
            "area_precontrol": self.area_precontrol,
        }


@dataclass(frozen=True)
class SitingResult:
    """Outcome of :func:`site`.

    Attributes
    ----------
    pin : LocalPin
        The meter box.
    params : SitingParams
        The inputs used.
    feasible : bool
        Whether at least one transformer within the radius can take the load.
    candidates : tuple of SourceCandidate
        Feasible sources ranked by route length (best first); empty when not feasible.
    reason_code : str or None
        ``NO_FEASIBLE_SOURCE`` when not feasible.
    reason : str or None
        Human-readable explanation when not feasible.
    upgrade_candidate : SourceCandidate or None
        When not feasible: the nearest transformer whatever its load (to upgrade or to connect
        first and reinforce later); ``None`` if the index is empty.
    """

    pin: LocalPin
    params: SitingParams
    feasible: bool
    candidates: tuple[SourceCandidate, ...]
    reason_code: str | None = None
    reason: str | None = None
    upgrade_candidate: SourceCandidate | None = None

    @property
    def best(self) -> SourceCandidate | None:
        """The chosen source (first candidate), or ``None``."""
        return self.candidates[0] if self.candidates else None

    def to_dict(self, projector: Projector) -> dict[str, Any]:
        """Return plain JSON (GeoJSON geometries in WGS-84 lon/lat)."""
        return {
            "pin": {
                "lon_wgs84": self.pin.lon_wgs84,
                "lat_wgs84": self.pin.lat_wgs84,
                "x_m": self.pin.x_m,
                "y_m": self.pin.y_m,
                "geometry": projector.geojson_point_wgs84(self.pin.x_m, self.pin.y_m),
            },
            "params": self.params.to_dict(),
            "feasible": self.feasible,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "candidates": [c.to_dict(projector) for c in self.candidates],
            "upgrade_candidate": None if self.upgrade_candidate is None else self.upgrade_candidate.to_dict(projector),
        }


@lru_cache(maxsize=1)
def _no_roads() -> RoadNetwork:
    return RoadNetwork.build([], [])


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _access(pin: LocalPin, index: SourceIndex, found: Neighbour) -> tuple[AccessPointRef, float]:
    """The nearest access geometry the transformer feeds (or the transformer itself) and its distance, m."""
    t = index.transformers
    hit = index.nearest_access_point(pin.x_m, pin.y_m, found.pos)
    if hit is None:
        return AccessPointRef(str(t.asset_id[found.pos]), TRANSFORMER_KIND, float(t.x_m[found.pos]),
                              float(t.y_m[found.pos])), found.distance_m
    return AccessPointRef(hit.asset_id, hit.kind, hit.x_m, hit.y_m, hit.derived), hit.distance_m


def _candidates(
    pin: LocalPin, index: SourceIndex, network: RoadNetwork, params: SitingParams, found: Sequence[Neighbour]
) -> list[SourceCandidate]:
    t = index.transformers
    accesses = [_access(pin, index, n) for n in found]
    routes = network.route_many([(access.x_m, access.y_m) for access, _ in accesses], (pin.x_m, pin.y_m))
    candidates = []
    for n, (access, access_m), route in zip(found, accesses, routes, strict=True):
        pos = n.pos
        before_pct, after_pct = index.load_rates_pct(pos, params.added_kva)
        code = t.grid_area_code[pos]
        candidates.append(SourceCandidate(
            transformer_asset_id=str(t.asset_id[pos]),
            transformer_pos=pos,
            transformer_x_m=float(t.x_m[pos]),
            transformer_y_m=float(t.y_m[pos]),
            access_point=access,
            straight_to_access_point_m=access_m,
            straight_to_transformer_m=n.distance_m,
            route=route,
            load_rate_before_pct=before_pct,
            load_rate_after_pct=after_pct,
            may_start_project=before_pct >= params.may_start_pct,
            must_start_project=before_pct >= params.must_start_pct,
            start_in_advance=after_pct > params.max_load_after_pct,
            grid_area_code=None if code is None else str(code),
            area_precontrol=index.area_precontrol(code, params.max_load_after_pct, params.area_precontrol_kva),
        ))
    return candidates


def site(pin: LocalPin, index: SourceIndex, network: RoadNetwork | None, params: SitingParams) -> SitingResult:
    """Find the source for a meter box (R2.2–R2.4, R4.1; CQ-45 m4, BS 4.1.4).

    Takes the ``top_k`` nearest transformers within ``radius_m`` that stay at or below
    ``max_load_after_pct`` after connection; for each, the nearest access point it feeds (or the
    transformer itself) and the route from there to the meter box; ranks them by route length
    (then straight distance to the transformer, then asset id). When none qualifies, the result
    is not feasible and names the nearest transformer within ``upgrade_reach_m`` as the upgrade candidate
    (none when no transformer stands that close: the meter box needs a new transformer).

    Parameters
    ----------
    pin
        The meter box, from :func:`gis.crs.pin_to_local`.
    index
        The current :class:`~gis.index.SourceIndex`.
    network
        Roads and no-overhead zones; ``None`` routes straight with the default detour factor.
    params
        Load and policy thresholds.

    Returns
    -------
    SitingResult

    Examples
    --------
    >>> from gis.index import TransformerSnapshot
    >>> t = TransformerSnapshot.from_lists(
    ...     ["T-full", "T-ok"], [0.0, 120.0], [0.0, 0.0], [100.0, 400.0], [78.0, 100.0], [0.0, 0.0], ["G", "G"])
    >>> pin = LocalPin(lon_wgs84=0.0, lat_wgs84=0.0, x_m=10.0, y_m=0.0)
    >>> index = SourceIndex.build(t)
    >>> r = site(pin, index, None, SitingParams(added_kva=30.0, max_load_after_pct=80.0, radius_m=250.0))
    >>> r.feasible, r.best.transformer_asset_id, r.best.load_rate_after_pct, r.best.route.method
    (True, 'T-ok', 32.5, 'straight_fallback')
    >>> r = site(pin, index, None, SitingParams(added_kva=300.0, max_load_after_pct=80.0, radius_m=250.0))
    >>> r.feasible, r.reason_code, r.upgrade_candidate.transformer_asset_id, r.upgrade_candidate.start_in_advance
    (False, 'NO_FEASIBLE_SOURCE', 'T-full', True)
    """
    roads = network if network is not None else _no_roads()
    found = index.nearest_feasible(
        pin.x_m, pin.y_m, params.added_kva, params.max_load_after_pct, params.radius_m, params.top_k
    )
    if found:
        candidates = _candidates(pin, index, roads, params, found)
        candidates.sort(key=lambda c: (c.route.length_m, c.straight_to_transformer_m, c.transformer_asset_id))
        return SitingResult(pin=pin, params=params, feasible=True, candidates=tuple(candidates))
    nearest = index.nearest_any(pin.x_m, pin.y_m, radius_m=params.upgrade_reach_m)
    radius = "any distance" if math.isinf(params.radius_m) else f"{params.radius_m:g} m"
    if nearest is None:
        reason = ("No transformer is loaded in the source index." if len(index) == 0 else
                  f"No transformer stands within {params.upgrade_reach_m:g} m of the meter box, the farthest an "
                  "existing transformer can supply it over LV: a new transformer (新增配变) near the load is needed.")
        return SitingResult(
            pin=pin,
            params=params,
            feasible=False,
            candidates=(),
            reason_code=NO_FEASIBLE_SOURCE,
            reason=reason,
        )
    upgrade = _candidates(pin, index, roads, params, [nearest])[0]
    reason = (
        f"No transformer within {radius} stays at or below {params.max_load_after_pct:g} % after adding "
        f"{params.added_kva:g} kVA; the nearest, {upgrade.transformer_asset_id} at "
        f"{upgrade.straight_to_transformer_m:.0f} m, would reach {upgrade.load_rate_after_pct:.1f} %."
    )
    return SitingResult(
        pin=pin,
        params=params,
        feasible=False,
        candidates=(),
        reason_code=NO_FEASIBLE_SOURCE,
        reason=reason,
        upgrade_candidate=upgrade,
    )


@dataclass(frozen=True)
class NewTransformerSite:
    """Where a new distribution transformer by the load (新增配变/新建台区) would stand, and what feeds it.

    Attributes
    ----------
    x_m, y_m : float
        The unit: the nearest road point to the meter box (a crane truck reaches it; the LV run is short),
        or the meter box itself when no road lies within the LV reach.
    route : Route
        The new LV run from the unit to the meter box.
    on_road : bool
        Whether the unit stands on a road (``False``: at the meter box, no road within the LV reach).
    feeder_asset_id : str
        The nearest existing transformer to the unit: the stand-in for the 10 kV feeder the new unit taps.
    feeder_x_m, feeder_y_m, feeder_straight_m : float
        Its location and its straight distance to the unit, metres.
    """

    x_m: float
    y_m: float
    route: Route
    on_road: bool
    feeder_asset_id: str
    feeder_x_m: float
    feeder_y_m: float
    feeder_straight_m: float


def _nearest_road_point(network: RoadNetwork, x_m: float, y_m: float) -> tuple[float, float] | None:
    """The nearest point of any road centre line to ``(x_m, y_m)``, or ``None`` without roads."""
    if not network.has_roads:
        return None
    here = shapely.Point(x_m, y_m)
    lines = network._road_lines  # the road network's own geometry, read-only
    road = lines[int(network._road_tree.query_nearest(here)[0])]
    at = road.interpolate(road.project(here))
    return float(at.x), float(at.y)


def new_transformer_site(pin: LocalPin, index: SourceIndex, network: RoadNetwork | None,
                         max_lv_run_m: float = math.inf) -> NewTransformerSite | None:
    """The site of a new transformer by the load for ``pin`` (issue 20 item 1e), or ``None`` with no transformer.

    The unit stands at the nearest road point to the meter box when that lies within ``max_lv_run_m``
    (straight; the caller passes the LV supply reach of the area type), else at the meter box itself (no
    road near the load: the 10 kV line comes to it); its LV run is routed from there like any other; its
    10 kV supply is estimated from the nearest existing transformer to the unit (a stand-in for the MV
    feeder until an ``mv_lines`` layer is loaded).

    >>> from shapely.geometry import LineString
    >>> from gis.index import TransformerSnapshot
    >>> t = TransformerSnapshot.from_lists(["T-1"], [0.0], [0.0], [100.0], [90.0], [0.0], ["G"])
    >>> net = RoadNetwork.build([("R1", "村道", "lane", LineString([(600, -50), (600, 50)]))], [])
    >>> s = new_transformer_site(LocalPin(lon_wgs84=0, lat_wgs84=0, x_m=620.0, y_m=10.0), SourceIndex.build(t), net)
    >>> (s.x_m, s.y_m), s.route.length_m, s.feeder_asset_id, round(s.feeder_straight_m, 1)
    ((600.0, 10.0), 20.0, 'T-1', 600.1)
    >>> s = new_transformer_site(LocalPin(lon_wgs84=0, lat_wgs84=0, x_m=900.0, y_m=10.0), SourceIndex.build(t), net,
    ...                          max_lv_run_m=250.0)
    >>> (s.x_m, s.y_m), s.on_road, s.route.length_m
    ((900.0, 10.0), False, 0.0)
    """
    roads = network if network is not None else _no_roads()
    road_point = _nearest_road_point(roads, pin.x_m, pin.y_m)
    if road_point is not None and math.dist(road_point, (pin.x_m, pin.y_m)) > max_lv_run_m:
        road_point = None
    x_m, y_m = road_point if road_point is not None else (pin.x_m, pin.y_m)
    feeder = index.nearest_any(x_m, y_m)
    if feeder is None:
        return None
    t = index.transformers
    route = roads.route((x_m, y_m), (pin.x_m, pin.y_m))
    return NewTransformerSite(
        x_m=x_m, y_m=y_m, route=route, on_road=road_point is not None,
        feeder_asset_id=str(t.asset_id[feeder.pos]), feeder_x_m=float(t.x_m[feeder.pos]),
        feeder_y_m=float(t.y_m[feeder.pos]), feeder_straight_m=feeder.distance_m,
    )
