"""Design service: site the meter box, compose the design, store it as a new version (R2–R4, R5.2).

Designs are stored one row per version in ``designs`` and never updated: a survey adjustment (move
the meter box, mark a no-overhead stretch, choose another candidate) adds a version. The stored
``result`` holds everything the exports need (drawing input, BOM lines, schedule), so an old version
renders the same drawing and BOM tomorrow even if prices or the network change.

A version number is taken by ``INSERT … ON CONFLICT (design_id, version) DO NOTHING``: of two concurrent
adjustments of one design starting from the same version (the same ``If-Match``), the second finds the
number taken (PostgreSQL waits at the unique index until the first commits) and answers 412
``DESIGN_VERSION_CONFLICT`` with nothing written, never a 500 ``UniqueViolation``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape
from pydantic import ConfigDict, Field, field_validator
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.network.generations import network_version
from app.network.siting import NetworkSnapshot, SitingEngine
from app.platform.db import read_only_connection
from app.platform.errors import ErrorStatuses
from app.platform.models import Design
from app.platform.params import (
    PIN_CRS_NOTE,
    SERVICE_AREA_LAT,
    SERVICE_AREA_LON,
    SERVICE_AREA_NOTE,
    IsoDate,
    Line,
    PinCrs,
    ProfileId,
    Stretch,
    check_geometry,
)
from app.settings import Settings
from design_rules.bom import Bom
from design_rules.calendar import WorkCalendar
from design_rules.design import NEW_TRANSFORMER_ID, ApplicationFacts, ConnectionDesign, compose_design
from design_rules.drawing import DrawingInput, ExistingAccessPoint, ExistingLine, ExistingTransformer
from design_rules.profiles import AreaType, UrbanRural, get_profile
from design_rules.siting_policy import effective_factors, resolve_area_type, siting_params
from gis.crs import pin_to_local
from gis.errors import NotFoundError, SanlingError
from gis.siting import new_transformer_site, site

#: Existing equipment within this distance of the meter box is drawn (工程建设简图 context); the frame grows to
#: hold the source transformer and its lines, which are drawn whole (issue 17 item 5).
DRAWING_CONTEXT_M = 150.0
#: Nearest feasible transformers routed and ranked per design: the chosen source and two alternatives for
#: the surveyor (``GET /api/v1/sources`` takes ``top_k`` up to 20 for a planner's wider look).
DESIGN_CANDIDATES = 3
#: Optimistic tries of :func:`create_design_on_current_network` before designing inside the write transaction.
OPTIMISTIC_DESIGN_ATTEMPTS = 2
#: Version numbers an unconditioned adjustment tries when concurrent ones take the next number first.
VERSION_NUMBER_ATTEMPTS = 20


class DesignNotFoundError(NotFoundError):
    """No design has this id (or this version)."""

    code = "DESIGN_NOT_FOUND"
    default_message = "No design has this id."


class DesignVersionConflictError(SanlingError):
    """If-Match named a version that is no longer the latest: another device changed the design (R5)."""

    code = "DESIGN_VERSION_CONFLICT"
    default_message = "The design was changed by someone else; reload it and apply your change again."


class IfMatchRequiredError(SanlingError):
    """Changing a design from a terminal needs ``If-Match`` with the design's ETag (HTTP 428)."""

    code = "IF_MATCH_REQUIRED"
    default_message = "Send If-Match with the ETag of the design version this change starts from."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = ((DesignVersionConflictError, 412), (IfMatchRequiredError, 428))


#: A supply-area class (A+ … E) can be urban or rural: sent with one, the request names ``urban_rural`` too
#: (``compose_design`` answers 422 ``INVALID_INPUT`` naming it). Declared so the OpenAPI says so; an area class
#: taken from the grid area (``area_type`` omitted) is the data's, which no schema knows.
AREA_CLASS_NEEDS_URBAN_RURAL = {
    "if": {"required": ["area_type"], "properties": {"area_type": {
        "enum": [a.value for a in AreaType if a not in (AreaType.URBAN, AreaType.RURAL)]}}},
    "then": {"required": ["urban_rural"], "properties": {"urban_rural": {"enum": [u.value for u in UrbanRural]}}},
}


class DesignRequest(ApplicationFacts):
    """A design request: the meter-box pin, the application, and survey adjustments if any."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "lon": 106.4883433, "lat": 29.499325, "crs": "wgs84", "kw": 10, "phases": 1,
        "category": "small_enterprise", "customer_name": "山城小面馆"}], **AREA_CLASS_NEEDS_URBAN_RURAL})

    lon: float = Field(description="Longitude of the meter box (表箱) in `crs`. " + SERVICE_AREA_NOTE,
                       json_schema_extra=SERVICE_AREA_LON)
    lat: float = Field(description="Latitude of the meter box in `crs`. " + SERVICE_AREA_NOTE,
                       json_schema_extra=SERVICE_AREA_LAT)
    crs: PinCrs = Field(default="wgs84", description=PIN_CRS_NOTE)
    customer_name: Line = Field(default="客户", min_length=1, max_length=200)
    wanted_power_on: IsoDate | None = Field(default=None, description="客户预计送电时间 (ISO 8601 date), if named.")
    area_type: AreaType | None = Field(
        default=None, description="Supply-radius class; default: the grid area's, else the deployment's.")
    profile: ProfileId | None = Field(default=None, description="Policy profile id; default: the deployment's.")
    transformer_asset_id: Line | None = Field(
        default=None, max_length=64, description="Survey adjustment: use this feasible candidate instead of the best.")
    no_overhead_stretches: list[Stretch] = Field(
        default_factory=list, max_length=50,
        description="Survey adjustment: GeoJSON geometries (WGS-84) of obstacles or stretches where no overhead "
                    "line may run; lines are widened to a 4 m corridor. A route touching one becomes cable.")

    @field_validator("no_overhead_stretches")
    @classmethod
    def _geometries(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for position, item in enumerate(value):
            check_geometry(position, item)  # GEOS's own exceptions (a one-point LineString) were 500s
        return value

    def facts(self) -> ApplicationFacts:
        """The application part of the request."""
        return ApplicationFacts(**{name: getattr(self, name) for name in ApplicationFacts.model_fields})


@lru_cache(maxsize=1)
def work_calendar() -> WorkCalendar:
    """The packaged working-day calendar with its overrides (built once per process)."""
    return WorkCalendar.default()


def _stretches_local(request: DesignRequest, engine: SitingEngine, half_width_m: float) -> list[BaseGeometry]:
    """The survey's no-overhead marks as local zones; a line is widened by ``half_width_m`` each side (profile)."""
    zones = []
    for item in request.no_overhead_stretches:
        local = engine.projector.geometry_to_local(shape(item))
        zones.append(local if local.geom_type in ("Polygon", "MultiPolygon") else local.buffer(half_width_m))
    return zones


def _surroundings(snapshot: NetworkSnapshot, x_m: float, y_m: float, transformer_asset_id: str) -> dict[str, Any]:
    """Existing transformers, access points and lines for the drawing (R4.4; issue 17 item 5).

    The source transformer's lines are drawn whole, to their real ends: they include the line that
    feeds the access point and its path back to the transformer. The frame is the box of
    ``DRAWING_CONTEXT_M`` around the meter box grown to hold the source transformer and its lines; the
    other transformers and access points in it are drawn, and other lines are clipped to it.
    """
    data = snapshot.data
    r = DRAWING_CONTEXT_M
    x0, y0, x1, y1 = x_m - r, y_m - r, x_m + r, y_m + r
    source_t = snapshot.transformer_position.get(transformer_asset_id)
    source_lines = snapshot.lines_of(transformer_asset_id) if source_t is not None else np.empty(0, dtype=np.intp)
    if source_t is not None:
        tx, ty = float(data.transformer_x_m[source_t]), float(data.transformer_y_m[source_t])
        x0, y0, x1, y1 = min(x0, tx), min(y0, ty), max(x1, tx), max(y1, ty)
    if len(source_lines):
        lx0, ly0, lx1, ly1 = shapely.total_bounds(snapshot.line_tree.geometries[source_lines]).tolist()
        x0, y0, x1, y1 = min(x0, lx0), min(y0, ly0), max(x1, lx1), max(y1, ly1)
    box = shapely.box(x0, y0, x1, y1)
    near_t = set(snapshot.transformer_tree.query(box, predicate="intersects").tolist())
    if source_t is not None:
        near_t.add(source_t)
    transformers = [ExistingTransformer(label=str(data.transformer_asset_id[i]), x_m=float(data.transformer_x_m[i]),
                                        y_m=float(data.transformer_y_m[i]), rated_kva=float(data.rated_kva[i]))
                    for i in sorted(near_t)]
    near_a = sorted(snapshot.access_tree.query(box, predicate="intersects").tolist())
    access_points = [ExistingAccessPoint(kind=str(data.access_kind[i]), x_m=float(data.access_x_m[i]),
                                         y_m=float(data.access_y_m[i]), label=str(data.access_asset_id[i]))
                     for i in near_a if data.access_kind[i] in ("pole", "branch_box")]
    # branch boxes derived from the source transformer's cables (issue 20 item 1a), marked to be confirmed
    derived = snapshot.derived_access
    # those within DRAWING_CONTEXT_M of the meter box, and the nearest one (the tap when it is derived): a
    # cable network has one at every house, and drawing them all would bury the sheet in guesses
    near_d = np.array([i for i in sorted(snapshot.derived_tree.query(box, predicate="intersects").tolist())
                       if source_t is not None and int(derived.transformer_pos[i]) == source_t], dtype=np.intp)
    if len(near_d):
        d_m = np.hypot(derived.x_m[near_d] - x_m, derived.y_m[near_d] - y_m)
        near_d = near_d[(d_m <= r) | (np.arange(len(near_d)) == int(np.argmin(d_m)))]
    access_points += [ExistingAccessPoint(kind="branch_box", x_m=float(derived.x_m[i]), y_m=float(derived.y_m[i]),
                                          label=str(derived.asset_id[i]), derived=True) for i in near_d.tolist()]
    # the source's lines whole, the others clipped to the frame in one vectorised call; then the parts'
    # vertices are split back per part
    hits = np.setdiff1d(snapshot.line_tree.query(box, predicate="intersects"), source_lines)
    clipped = shapely.intersection(snapshot.line_tree.geometries[hits], box)
    geometries = np.concatenate([snapshot.line_tree.geometries[source_lines], clipped])
    owners = np.concatenate([source_lines, hits])
    parts, part_line = shapely.get_parts(geometries, return_index=True)
    drawn = (shapely.get_type_id(parts) == shapely.GeometryType.LINESTRING) & (shapely.get_num_coordinates(parts) >= 2)
    parts, part_line = parts[drawn], owners[part_line[drawn]].tolist()
    vertices, vertex_part = shapely.get_coordinates(parts, return_index=True)
    points_by_part = np.split(vertices, np.flatnonzero(np.diff(vertex_part)) + 1) if len(parts) else []
    lines = [ExistingLine(kind=str(data.line_kind[i]), label=str(data.line_asset_id[i]),
                          points_m=tuple(map(tuple, points.tolist())))
             for i, points in zip(part_line, points_by_part, strict=True)]
    return {"transformers": transformers, "access_points": access_points, "existing_lines": lines}


def compute_design(session: Session, engine: SitingEngine, settings: Settings, request: DesignRequest,
                   *, design_id: str, accepted_at: datetime,
                   snapshot: NetworkSnapshot | None = None) -> tuple[ConnectionDesign, dict[str, Any]]:
    """Site the pin on the network and compose the design; return it with its JSON.

    ``snapshot`` is the network to use; by default the database's current one (read in ``session``).
    """
    profile = get_profile(request.profile or settings.profile)
    snapshot = snapshot or engine.snapshot(session.connection())
    pin = pin_to_local(request.lon, request.lat, request.crs, engine.projector)
    area = snapshot.grid_area_at(pin.x_m, pin.y_m)
    area_type, area_source = resolve_area_type(request.area_type, area.area_type if area else None,
                                               settings.default_area_type)
    params = siting_params(request.kw, area_type, profile, top_k=DESIGN_CANDIDATES,
                           overrides=settings.factor_overrides)
    siting = site(pin, snapshot.index, snapshot.roads, params)
    power_factor, demand_factor = effective_factors(profile, settings.factor_overrides)
    chosen = request.transformer_asset_id
    best = siting.best if siting.feasible else siting.upgrade_candidate
    # no feasible source: the transformer-upgrade rungs, the new transformer by the load among them (issue 20 1e)
    wants_new = not siting.feasible and chosen in (None, NEW_TRANSFORMER_ID)
    new_site = None if not wants_new else new_transformer_site(
        pin, snapshot.index, snapshot.roads, max_lv_run_m=params.upgrade_reach_m)
    if chosen is not None and chosen != NEW_TRANSFORMER_ID:
        around_id = chosen
    elif best is not None:  # the transformer to uprate: also the new unit's feeder, when it is the nearest
        around_id = best.transformer_asset_id
    else:
        around_id = new_site.feeder_asset_id if new_site is not None else ""
    design = compose_design(
        job_ref=design_id, facts=request.facts(), siting=siting, area_type=area_type, profile=profile,
        power_factor=power_factor, accepted_at=accepted_at, calendar=work_calendar(),
        chosen_transformer_asset_id=chosen,
        extra_no_overhead_local=_stretches_local(request, engine, profile.survey.stretch_half_width_m),
        surroundings=_surroundings(snapshot, pin.x_m, pin.y_m, around_id),
        new_transformer_site=new_site,
    )
    result = design.to_dict(engine.projector)
    result.update({
        "pin": {"lon_wgs84": pin.lon_wgs84, "lat_wgs84": pin.lat_wgs84, "x_m": pin.x_m, "y_m": pin.y_m},
        "grid_area_code": None if area is None else area.code,
        "area_type_source": area_source,
        "power_factor": power_factor,
        "demand_factor": demand_factor,
        "siting_params": params.to_dict(),
        # other feasible sources; for a transformer upgrade, the rung that lost (dearer) or failed at its source,
        # in the candidates' shape with job class, cost, promised power-on, upgrade_kind and why (issue 20 1e)
        "alternatives": [*(c.to_dict(engine.projector) for c in siting.candidates
                           if c.transformer_asset_id != design.source.transformer_asset_id),
                         *(o.to_dict(engine.projector) for o in design.options
                           if o.status != "chosen" and o.candidate is not None)],
        "upgrade_options": [o.to_dict(engine.projector) for o in design.options],
        "network_generation": snapshot.generation,
        "projected_crs": engine.projector.projected_crs,
    })
    return design, result


def _latest_version(session: Session, design_id: str) -> int | None:
    latest = session.execute(select(func.max(Design.version)).where(Design.design_id == design_id)).scalar()
    return None if latest is None else int(latest)


def create_design(session: Session, engine: SitingEngine, settings: Settings, request: DesignRequest,
                  *, design_id: str | None = None, now: datetime | None = None,
                  snapshot: NetworkSnapshot | None = None, accepted_at: datetime | None = None,
                  based_on_version: int | None = None) -> Design:
    """Compute and store a design: version 1 of a new id, or the next version of ``design_id``.

    ``now`` is the server clock (R5.3), stored as the version's ``created_at``; ``accepted_at`` is day 0
    of the schedule (default ``now``; a survey redesign passes the application's acceptance time so the
    deadlines keep counting from it); ``snapshot`` as for :func:`compute_design`; the caller commits.
    ``based_on_version`` is the version the change starts from (the one ``If-Match`` named): the new version
    must be the one after it. Without it an adjustment takes the next free number, also when concurrent ones
    take numbers meanwhile. The returned row is not in the session (delete it with a DELETE statement, not
    ``session.delete``).

    Raises
    ------
    DesignNotFoundError
        No design has ``design_id``.
    DesignVersionConflictError
        ``based_on_version`` is no longer the latest: another adjustment stored a version first (412); nothing
        was written.
    """
    now = now or datetime.now(UTC)
    accepted_at = accepted_at or now
    if design_id is None:
        design_id = str(uuid.uuid4())
        design, result = compute_design(session, engine, settings, request, design_id=design_id,
                                        accepted_at=accepted_at, snapshot=snapshot)
        return _store(session, request, design, result, design_id=design_id, version=1, now=now)
    latest = _latest_version(session, design_id)
    if latest is None:
        raise DesignNotFoundError(design_id=design_id)
    if based_on_version is not None and latest != based_on_version:
        raise DesignVersionConflictError(latest_etag=_etag(design_id, latest),
                                         if_match=_etag(design_id, based_on_version))
    design, result = compute_design(session, engine, settings, request, design_id=design_id,
                                    accepted_at=accepted_at, snapshot=snapshot)
    for _ in range(VERSION_NUMBER_ATTEMPTS):
        row = _store_if_free(session, request, design, result, design_id=design_id, version=latest + 1, now=now)
        if row is not None:
            return row
        # the number was taken by a concurrent adjustment, which has committed (PostgreSQL waited for it)
        latest = _latest_version(session, design_id) or latest + 1
        if based_on_version is not None:
            break
    raise DesignVersionConflictError(latest_etag=_etag(design_id, latest),
                                     if_match=None if based_on_version is None else _etag(design_id, based_on_version))


def create_design_on_current_network(session: Session, engine: SitingEngine, settings: Settings,
                                     request: DesignRequest) -> Design:
    """Version 1 of a new design, computed outside any transaction on the worker's snapshot (optimistic).

    The INSERT's transaction (IMMEDIATE on SQLite: it holds the write lock) first reads the network
    version; if the network moved on since the snapshot (an import, another worker's booking), the
    design is made again on the new state. One transaction per design instead of a read before and a
    write after. After :data:`OPTIMISTIC_DESIGN_ATTEMPTS` the design is computed inside the write
    transaction, which always succeeds. The caller commits.
    """
    snapshot = engine.cached_snapshot
    for _ in range(OPTIMISTIC_DESIGN_ATTEMPTS):
        if snapshot is None:
            snapshot = engine.snapshot(read_only_connection(session))
            session.commit()  # end the read: the design is computed outside any transaction
        now = datetime.now(UTC)
        design_id = str(uuid.uuid4())
        design, result = compute_design(session, engine, settings, request, design_id=design_id,
                                        accepted_at=now, snapshot=snapshot)
        if network_version(session.connection()).generation == snapshot.generation:
            return _store(session, request, design, result, design_id=design_id, version=1, now=now)
        session.rollback()
        snapshot = None
    return create_design(session, engine, settings, request)


def _store(session: Session, request: DesignRequest, design: ConnectionDesign, result: dict[str, Any], *,
           design_id: str, version: int, now: datetime) -> Design:
    """Store version ``version`` of a design whose number nobody else can take (version 1 of a new id)."""
    row = _store_if_free(session, request, design, result, design_id=design_id, version=version, now=now)
    if row is None:  # a UUID taken twice
        raise DesignVersionConflictError(latest_etag=_etag(design_id, version))
    return row


def _store_if_free(session: Session, request: DesignRequest, design: ConnectionDesign, result: dict[str, Any], *,
                   design_id: str, version: int, now: datetime) -> Design | None:
    """Insert the version, or return None when ``(design_id, version)`` is taken (nothing written)."""
    pin = result["pin"]
    values = {
        "design_id": design_id, "version": version, "profile_id": design.profile_id,
        "job_class": str(design.job_class), "transformer_asset_id": design.source.transformer_asset_id,
        "total_cost_cny": float(design.bom.total_cny), "request": request.model_dump(mode="json"),
        "result": result, "created_at": now,
        "meter_box": from_shape(shapely.Point(pin["lon_wgs84"], pin["lat_wgs84"]), srid=4326),
    }
    # One INSERT through Core (rows are never updated, so the ORM's unit of work has nothing to track:
    # ~0.25 ms less per design); the returned row is detached, for reading. No row back: the number is taken.
    conn = session.connection()
    row_id = conn.execute(_INSERT_DESIGN[conn.dialect.name], values).scalar_one_or_none()
    return None if row_id is None else Design(id=row_id, **values)


def _insert_design(dialect: Any) -> Insert:
    table = Design.__table__
    return (dialect.insert(table).on_conflict_do_nothing(index_elements=[table.c.design_id, table.c.version])
            .returning(table.c.id))


#: The INSERT of a version per dialect (both say ``ON CONFLICT (design_id, version) DO NOTHING``).
_INSERT_DESIGN: dict[str, Insert] = {"postgresql": _insert_design(postgresql), "sqlite": _insert_design(sqlite)}


def load_design(session: Session, design_id: str, version: int | None = None) -> Design:
    """The stored design (latest version unless ``version`` is given)."""
    query = select(Design).where(Design.design_id == design_id)
    query = query.where(Design.version == version) if version is not None else query.order_by(Design.version.desc())
    row = session.execute(query.limit(1)).scalar_one_or_none()
    if row is None:
        raise DesignNotFoundError(design_id=design_id, version=version)
    return row


def _etag(design_id: str, version: int) -> str:
    return f'"{design_id}.v{version}"'


def design_etag(row: Design) -> str:
    """Strong ETag of one stored design version (for If-Match on adjustments)."""
    return _etag(row.design_id, row.version)


def design_json(row: Design) -> dict[str, Any]:
    """The API representation of a stored design version."""
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return {"design_id": row.design_id, "version": row.version, "created_at": created.isoformat(),
            "request": row.request, **row.result}


def stored_drawing(row: Design) -> DrawingInput:
    """The drawing input frozen with the design."""
    return DrawingInput.model_validate(row.result["drawing_input"])


def stored_bom(row: Design) -> Bom:
    """The bill of materials frozen with the design, as a :class:`Bom` for the CSV/XLSX writers."""
    return Bom.from_dict(row.result["bom"])


def check_if_match(latest: Design, if_match: str | None, *, required: bool) -> None:
    """Check ``If-Match`` against the latest version of the design (R5: no change overwrites another silently).

    A value naming another version raises :class:`DesignVersionConflictError` (412); a missing one raises
    :class:`IfMatchRequiredError` (428) when ``required`` (changes to an application's design), and passes
    otherwise (a planner's adjustment without a condition).
    """
    if if_match is None or not if_match.strip():
        if required:
            raise IfMatchRequiredError(latest_etag=design_etag(latest))
        return
    if if_match.strip() != design_etag(latest):
        raise DesignVersionConflictError(latest_etag=design_etag(latest), if_match=if_match)
