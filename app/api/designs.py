"""Designs (接入方案): create, read, adjust (new version), and export drawing and bill of materials (R3, R4)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from app.design.service import (
    DesignRequest,
    check_if_match,
    create_design,
    create_design_on_current_network,
    design_etag,
    design_json,
    load_design,
    stored_bom,
    stored_drawing,
)
from app.identity.auth import AuthenticatedUser, Role, require_grid_area, require_roles
from app.network.deps import SitingEngineDep
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep, SettingsDep
from app.platform.params import Id, Line
from design_rules.bom import bom_to_csv, bom_to_xlsx
from design_rules.drawing import render_dxf, render_geojson, render_svg

router = APIRouter(prefix="/api/v1/designs", tags=["designs"])

DesignerUser = Annotated[AuthenticatedUser, Depends(require_roles(
    Role.CUSTOMER_MANAGER, Role.PROJECT_MANAGER, Role.PLANNER))]


DesignId = Annotated[Line, Path(max_length=64, description="Design id (UUID).")]
VersionQuery = Annotated[Id | None, Query(description="A past version; default the latest.")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
    403: {"description": "Wrong role or grid area (`FORBIDDEN`)."},
    422: {"description": "`NOT_ELIGIBLE` (every failed rule in `details.reasons`), `DESIGN_NOT_FEASIBLE`, "
                         "`CANDIDATE_UNKNOWN`, `COORDINATE_INVALID`, `OUT_OF_SERVICE_AREA`, `CRS_UNSUPPORTED`, "
                         "`PROFILE_UNKNOWN` or `REQUEST_INVALID`."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "`DESIGN_NOT_FOUND`."}}


def _response(row: Any, status_code: int = 200) -> Response:
    # orjson: a design is ~16 kB of JSON, serialised ~10x faster than by the stdlib
    return Response(orjson.dumps(design_json(row)), status_code=status_code, media_type="application/json", headers={
        "ETag": design_etag(row), "Location": f"/api/v1/designs/{row.design_id}?version={row.version}"})


def _readable(user: AuthenticatedUser, row: Any) -> None:
    require_grid_area(user, row.result.get("grid_area_code"))


@router.post("", status_code=201, responses={**_ERRORS, 201: {"description": "The design, version 1."}})
def create(request: DesignRequest, user: DesignerUser, session: SessionDep, settings: SettingsDep,
           engine: SitingEngineDep) -> Response:
    """Design the connection of a meter-box pin: eligibility, source, job class, sizing, BOM, cost, schedule.

    The answer carries the job class with its reasons, the chosen transformer and access point with
    the route (GeoJSON, WGS-84), the sized conductor and meter, the priced bill of materials, every
    internal step's deadline with the promised power-on date, and links to the drawing and BOM
    exports. Stored as version 1; the `ETag` header names the version for later adjustments.
    """
    row = create_design_on_current_network(session, engine, settings, request)
    _readable(user, row)
    session.commit()
    return _response(row, 201)


@router.get("/{design_id}", responses={**_ERRORS, **_NOT_FOUND})
def read(design_id: DesignId, user: DesignerUser, session: SessionDep,
         version: VersionQuery = None,
         ) -> Response:
    """A stored design version (latest by default), with its `ETag`."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    row = load_design(session, design_id, version)
    _readable(user, row)
    return _response(row)


@router.post("/{design_id}/versions", status_code=201, responses={
    **_ERRORS, **_NOT_FOUND, 412: {"description": "`DESIGN_VERSION_CONFLICT`: If-Match is not the latest version."}})
def adjust(design_id: DesignId, request: DesignRequest, user: DesignerUser, session: SessionDep, settings: SettingsDep,
           engine: SitingEngineDep,
           if_match: Annotated[str | None, Header(description="ETag of the version this change starts from.")] = None,
           ) -> Response:
    """Survey adjustment: recompute with a moved meter box, marked no-overhead stretches or another candidate.

    Adds the next version (the earlier ones stay). With `If-Match`, refused with 412 unless it names the
    latest version, so two devices cannot overwrite each other silently: of concurrent adjustments with the
    same `If-Match` one adds the version and the others answer 412. Without it, each adds the next number.
    """
    latest = load_design(session, design_id)
    _readable(user, latest)
    check_if_match(latest, if_match, required=False)
    conditioned = bool(if_match and if_match.strip())
    row = create_design(session, engine, settings, request, design_id=design_id,
                        based_on_version=latest.version if conditioned else None)
    session.commit()
    return _response(row, 201)


def _export(session: SessionDep, user: AuthenticatedUser, design_id: str, version: int | None) -> Any:
    row = load_design(session, design_id, version)
    _readable(user, row)
    return row




@router.get("/{design_id}/drawing.svg", response_class=Response, responses={
    **_NOT_FOUND, 200: {"content": {"image/svg+xml": {}}, "description": "工程建设简图 (CQ-32 annex 3)."}})
def drawing_svg(design_id: DesignId, user: DesignerUser, session: SessionDep, version: VersionQuery = None) -> Response:
    """The construction sketch: existing equipment black, new works blue with lengths, title block."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    row = _export(session, user, design_id, version)
    return Response(render_svg(stored_drawing(row)), media_type="image/svg+xml")


@router.get("/{design_id}/drawing.dxf", response_class=Response, responses={
    **_NOT_FOUND, 200: {"content": {"image/vnd.dxf": {}}, "description": "The sketch as DXF (local metres)."}})
def drawing_dxf(design_id: DesignId, user: DesignerUser, session: SessionDep, version: VersionQuery = None) -> Response:
    """The construction sketch as DXF in the deployment's metric CRS, for CAD."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    row = _export(session, user, design_id, version)
    return Response(render_dxf(stored_drawing(row)), media_type="image/vnd.dxf", headers={
        "Content-Disposition": f'attachment; filename="{design_id}-v{row.version}.dxf"'})


@router.get("/{design_id}/drawing.geojson", responses={
    **_NOT_FOUND, 200: {"content": {"application/geo+json": {}}, "description": "Sketch features, WGS-84."}})
def drawing_geojson(design_id: DesignId, user: DesignerUser, session: SessionDep, engine: SitingEngineDep,
                    version: VersionQuery = None) -> JSONResponse:
    """The sketch's features as an RFC 7946 FeatureCollection (WGS-84 lon/lat), for the terminal's map."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    row = _export(session, user, design_id, version)
    return JSONResponse(render_geojson(stored_drawing(row), engine.projector.unproject),
                        media_type="application/geo+json")


@router.get("/{design_id}/bom.csv", response_class=Response, responses={
    **_NOT_FOUND, 200: {"content": {"text/csv": {}}, "description": "Bill of materials, UTF-8 CSV."}})
def bom_csv(design_id: DesignId, user: DesignerUser, session: SessionDep, version: VersionQuery = None) -> Response:
    """The bill of materials frozen with the design, one row per line."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    row = _export(session, user, design_id, version)
    return Response(bom_to_csv(stored_bom(row)), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{design_id}-v{row.version}-bom.csv"'})


@router.get("/{design_id}/bom.xlsx", response_class=Response, responses={
    **_NOT_FOUND, 200: {"content": {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}, "description": "BOM workbook."}})
def bom_xlsx(design_id: DesignId, user: DesignerUser, session: SessionDep, version: VersionQuery = None) -> Response:
    """The bill of materials as an Excel workbook (lines with total; subtotals by assembly)."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    row = _export(session, user, design_id, version)
    return Response(bom_to_xlsx(stored_bom(row)),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{design_id}-v{row.version}-bom.xlsx"'})
