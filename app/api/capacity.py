"""Planner capacity figures and the R2.3 worklists (立项 / 立项并出库 / 提前启动 / 预管控), as JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.identity.auth import AuthenticatedUser, Role, grid_area_scope, require_grid_area, require_roles
from app.planning.capacity import CapacitySnapshot, GridAreaRow
from app.planning.mapdata import MapSnapshotDep
from app.platform.params import Line

router = APIRouter(prefix="/api/v1/capacity", tags=["capacity"])

#: Planners see the whole network; project managers (项目经理) see their own grid areas; admins pass every check.
CapacityUser = Annotated[AuthenticatedUser, Depends(require_roles(Role.PLANNER, Role.PROJECT_MANAGER))]
OutputFormat = Literal["json", "csv"]
_CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
_CSV_RESPONSE = {200: {"content": {"text/csv": {}}, "description": "JSON by default; CSV with `format=csv` or "
                       "`Accept: text/csv` (UTF-8 with BOM, so Excel opens it)."},
                 401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
                 403: {"description": "Not a planner or project manager, or `grid_area_code` outside your grid "
                                      "areas (`FORBIDDEN`)."}}


class Thresholds(BaseModel):
    """The policy profile's load thresholds the lists were computed with (R2.3)."""

    profile_id: str = Field(examples=["chongqing-2019"])
    may_start_pct: float = Field(description="Measured load rate from which a project may be started (立项).")
    must_start_pct: float = Field(description="Measured load rate from which a project must be started and "
                                  "materials drawn (立项并出库).")
    max_load_after_pct: float = Field(description="Limit of the projected load rate; above it, start in advance.")
    area_precontrol_kva: float = Field(description="Grid areas with less allowable capacity are pre-controlled.")


class TransformerLoad(BaseModel):
    """One transformer's load model (R2.3, R6.1)."""

    asset_id: str
    name: str
    grid_area_code: str | None
    status: str = Field(description="`in_service`, `planned` or `retired`.")
    rated_kva: float
    peak_kva: float = Field(description="Latest measured peak load.")
    peak_at: datetime | None = Field(description="When the latest peak was measured (UTC).")
    peak_source: Literal["reading", "transformer"] = Field(
        description="`reading`: the newest load_readings row; `transformer`: the transformer's own columns.")
    reserved_kva: float = Field(description="Capacity reserved by accepted applications (queued connections).")
    load_rate_pct: float = Field(description="peak_kva / rated_kva × 100.")
    projected_load_rate_pct: float = Field(description="(peak_kva + reserved_kva) / rated_kva × 100.")
    spare_kva: float = Field(description="rated_kva × max_load_after_pct / 100 − peak_kva − reserved_kva.")
    threshold_class: str = Field(description="Class of the measured rate: `<50`, `50-70`, `70-80` or `>80`.")
    projected_class: str = Field(description="Class of the projected rate after queued connections.")
    may_start_project: bool
    must_start_project: bool
    start_in_advance: bool
    area_precontrol: bool = Field(description="The transformer's grid area is under pre-control.")
    lon_wgs84: float
    lat_wgs84: float


class GridAreaCapacity(BaseModel):
    """A grid area's total allowable connection capacity (网格可开放容量)."""

    code: str
    name: str
    area_type: str
    customer_manager: str | None
    project_manager: str | None
    allowable_kva: float = Field(description="Σ spare_kva over the area's in-service transformers.")
    transformer_count: int = Field(description="In-service transformers in the area.")
    precontrol: bool = Field(description="allowable_kva < area_precontrol_kva (预管控).")


class TransformerList(BaseModel):
    """Transformers of a list, most urgent first."""

    worklist: str = Field(examples=["must-start"])
    description: str
    generation: int = Field(description="Asset generation the figures were computed at.")
    thresholds: Thresholds
    count: int
    items: list[TransformerLoad]


class GridAreaList(BaseModel):
    """Grid areas of a list."""

    worklist: str = Field(examples=["pre-control"])
    description: str
    generation: int
    thresholds: Thresholds
    count: int
    items: list[GridAreaCapacity]


class CapacityFilter(BaseModel):
    """Query parameters shared by the lists."""

    grid_area_code: str | None = None
    format: OutputFormat | None = None


def capacity_filter(
    grid_area_code: Annotated[Line | None, Query(max_length=64, description="Only this grid area (网格).",
                                                 examples=["CQ-YB-01"])] = None,
    format: Annotated[OutputFormat | None, Query(description="`json` (default) or `csv`; `Accept: text/csv` "
                                                 "also selects CSV.")] = None,
) -> CapacityFilter:
    """Read the filter shared by every list."""
    return CapacityFilter(grid_area_code=grid_area_code, format=format)


FilterDep = Annotated[CapacityFilter, Depends(capacity_filter)]


def _wants_csv(request: Request, selected: CapacityFilter) -> bool:
    if selected.format is not None:
        return selected.format == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _allowed_areas(user: AuthenticatedUser, selected: CapacityFilter) -> frozenset[str] | None:
    """The grid areas to list: the requested one (checked against the user's scope) or the user's scope."""
    if selected.grid_area_code is not None:
        require_grid_area(user, selected.grid_area_code)
        return frozenset({selected.grid_area_code})
    return grid_area_scope(user)


def _thresholds(snapshot: CapacitySnapshot) -> Thresholds:
    t = snapshot.thresholds
    return Thresholds(profile_id=snapshot.profile_id, may_start_pct=t.may_start_pct, must_start_pct=t.must_start_pct,
                      max_load_after_pct=t.max_load_after_pct, area_precontrol_kva=t.area_precontrol_kva)


def _transformer(snapshot: CapacitySnapshot, i: int) -> TransformerLoad:
    loads, table = snapshot.loads, snapshot.table
    return TransformerLoad(
        asset_id=loads.asset_id[i], name=loads.name[i], grid_area_code=loads.grid_area_code[i], status=loads.status[i],
        rated_kva=float(loads.rated_kva[i]), peak_kva=float(loads.peak_kva[i]), peak_at=loads.peak_at[i],
        peak_source=loads.peak_source[i], reserved_kva=float(loads.reserved_kva[i]),
        load_rate_pct=round(float(table.load_rate_pct[i]), 2),
        projected_load_rate_pct=round(float(table.projected_load_rate_pct[i]), 2),
        spare_kva=round(float(table.spare_kva[i]), 2), threshold_class=table.class_label(i),
        projected_class=table.projected_label(i), may_start_project=bool(table.may_start_project[i]),
        must_start_project=bool(table.must_start_project[i]), start_in_advance=bool(table.start_in_advance[i]),
        area_precontrol=snapshot.area_precontrol(loads.grid_area_code[i]),
        lon_wgs84=float(loads.lon_wgs84[i]), lat_wgs84=float(loads.lat_wgs84[i]),
    )


def _area(row: GridAreaRow) -> GridAreaCapacity:
    return GridAreaCapacity(code=row.code, name=row.name, area_type=row.area_type,
                            customer_manager=row.customer_manager, project_manager=row.project_manager,
                            allowable_kva=round(row.capacity.allowable_kva, 2),
                            transformer_count=row.capacity.transformer_count, precontrol=row.capacity.precontrol)


def _csv(rows: Sequence[BaseModel], model: type[BaseModel], filename: str) -> Response:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # Excel (zh-CN) reads UTF-8 only with a BOM
    writer = csv.writer(buffer, lineterminator="\r\n")
    columns = list(model.model_fields)
    writer.writerow(columns)
    for row in rows:
        values = row.model_dump(mode="json")
        writer.writerow(["" if values[c] is None else values[c] for c in columns])
    return Response(buffer.getvalue(), media_type=_CSV_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})


def _transformer_list(request: Request, snapshot: CapacitySnapshot, user: AuthenticatedUser, selected: CapacityFilter,
                      name: str, description: str, mask: np.ndarray,
                      sort_key: Callable[[TransformerLoad], tuple[float, str]]) -> TransformerList | Response:
    areas = _allowed_areas(user, selected)
    codes = snapshot.loads.grid_area_code
    positions = np.flatnonzero(mask).tolist()
    items = sorted((_transformer(snapshot, i) for i in positions if areas is None or codes[i] in areas), key=sort_key)
    if _wants_csv(request, selected):
        return _csv(items, TransformerLoad, f"worklist-{name}")
    return TransformerList(worklist=name, description=description, generation=snapshot.generation,
                           thresholds=_thresholds(snapshot), count=len(items), items=items)


def _by_load_rate(item: TransformerLoad) -> tuple[float, str]:
    return -item.load_rate_pct, item.asset_id


def _by_projected_rate(item: TransformerLoad) -> tuple[float, str]:
    return -item.projected_load_rate_pct, item.asset_id


@router.get("/transformers", response_model=TransformerList, responses=_CSV_RESPONSE)
def list_transformer_loads(request: Request, snapshot: MapSnapshotDep, user: CapacityUser, selected: FilterDep,
                           status: Annotated[Line | None, Query(
                               max_length=32, description="Only this status (`in_service`, `planned`, `retired`); "
                               "empty for all.", examples=["in_service"])] = "in_service",
                           ) -> TransformerList | Response:
    """Every transformer's load model (load rate, spare kVA, threshold and projected class), highest rate first."""
    capacity = snapshot.capacity
    mask = np.ones(len(capacity.loads), dtype=bool) if not status else capacity.loads.status == status
    return _transformer_list(request, capacity, user, selected, "transformers",
                             "Transformer load rates and spare capacity (R6.1).", mask, _by_load_rate)


@router.get("/worklists/may-start", response_model=TransformerList, responses=_CSV_RESPONSE)
def list_may_start(request: Request, snapshot: MapSnapshotDep, user: CapacityUser,
                   selected: FilterDep) -> TransformerList | Response:
    """In-service transformers whose measured peak load rate is ≥ 50 %: a reinforcement project may be started (立项).

    Includes those also ≥ 70 % (see `must-start`); each row carries its class. R2.3; BS 4.1.4.
    """
    capacity = snapshot.capacity
    return _transformer_list(request, capacity, user, selected, "may-start",
                             "Measured peak load rate ≥ may_start_pct: a project may be started (立项).",
                             capacity.in_service & capacity.table.may_start_project, _by_load_rate)


@router.get("/worklists/must-start", response_model=TransformerList, responses=_CSV_RESPONSE)
def list_must_start(request: Request, snapshot: MapSnapshotDep, user: CapacityUser,
                    selected: FilterDep) -> TransformerList | Response:
    """In-service transformers ≥ 70 %: a project must be started and materials drawn (立项并出库). R2.3; BS 4.1.4."""
    capacity = snapshot.capacity
    return _transformer_list(request, capacity, user, selected, "must-start",
                             "Measured peak load rate ≥ must_start_pct: start a project, draw materials (立项并出库).",
                             capacity.in_service & capacity.table.must_start_project, _by_load_rate)


@router.get("/worklists/start-in-advance", response_model=TransformerList, responses=_CSV_RESPONSE)
def list_start_in_advance(request: Request, snapshot: MapSnapshotDep, user: CapacityUser,
                          selected: FilterDep) -> TransformerList | Response:
    """In-service transformers whose projected load after queued connections is > 80 % (提前启动). R2.3; SH 8."""
    capacity = snapshot.capacity
    return _transformer_list(request, capacity, user, selected, "start-in-advance",
                             "Projected load rate after queued connections > max_load_after_pct: start in advance.",
                             capacity.in_service & capacity.table.start_in_advance, _by_projected_rate)


def _area_list(request: Request, snapshot: CapacitySnapshot, user: AuthenticatedUser, selected: CapacityFilter,
               name: str, description: str, keep: Callable[[GridAreaRow], bool]) -> GridAreaList | Response:
    areas = _allowed_areas(user, selected)
    rows = [row for row in snapshot.areas.values() if keep(row) and (areas is None or row.code in areas)]
    items = sorted((_area(row) for row in rows), key=lambda a: (a.allowable_kva, a.code))
    if _wants_csv(request, selected):
        return _csv(items, GridAreaCapacity, f"worklist-{name}")
    return GridAreaList(worklist=name, description=description, generation=snapshot.generation,
                        thresholds=_thresholds(snapshot), count=len(items), items=items)


@router.get("/grid-areas", response_model=GridAreaList, responses=_CSV_RESPONSE)
def list_grid_area_capacity(request: Request, snapshot: MapSnapshotDep, user: CapacityUser,
                            selected: FilterDep) -> GridAreaList | Response:
    """Every grid area's total allowable connection capacity, smallest first (R6.1)."""
    return _area_list(request, snapshot.capacity, user, selected, "grid-areas",
                      "Total allowable connection capacity per grid area.", lambda _row: True)


@router.get("/worklists/pre-control", response_model=GridAreaList, responses=_CSV_RESPONSE)
def list_pre_control(request: Request, snapshot: MapSnapshotDep, user: CapacityUser,
                     selected: FilterDep) -> GridAreaList | Response:
    """Grid areas whose total allowable connection capacity is < 160 kVA: pre-control (预管控). R2.3; BS 4.1.4."""
    return _area_list(request, snapshot.capacity, user, selected, "pre-control",
                      "Grid areas with allowable capacity < area_precontrol_kva (预管控).",
                      lambda row: row.capacity.precontrol)
