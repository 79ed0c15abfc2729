"""Public disclosure of available capacity near a location (R6.2): aggregated, no asset ids, no asset positions."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from shapely.geometry import mapping

from app.identity.auth import get_request_settings
from app.planning.capacity import CapacitySnapshot
from app.planning.mapdata import MapSnapshot, MapSnapshotDep
from app.platform.ratelimit import public_rate_limit
from gis.crs import CoordinateSystem, Projector, pin_to_local
from gis.hexgrid import hex_cell, hex_cells, hex_polygon_m, hex_ring

router = APIRouter(prefix="/api/v1/public", tags=["public"])

#: Figures are floored to this step, so single transformers' exact loads cannot be read back.
ROUNDING_KVA = 10.0
#: Larger single-connection figures are shown as this value: it is the LV three-zeros limit (R1.3, CQ-32 §1).
DISCLOSURE_CAP_KVA = 160.0
CapacityClass = Literal["none", "limited", "ample"]


def _floor(value_kva: float) -> float:
    return max(0.0, math.floor(value_kva / ROUNDING_KVA) * ROUNDING_KVA)


def _capacity_class(largest_kva: float) -> CapacityClass:
    if largest_kva < ROUNDING_KVA:
        return "none"
    return "ample" if largest_kva >= DISCLOSURE_CAP_KVA else "limited"


@dataclass(frozen=True)
class CellFigures:
    """Aggregates of one hexagonal cell (in-service transformers only)."""

    available_kva: float
    largest_connection_kva: float


@dataclass(frozen=True)
class PublicIndex:
    """Per-cell aggregates of one capacity snapshot, for one cell size."""

    generation: int
    size_m: float
    cells: dict[tuple[int, int], CellFigures]


def build_public_index(capacity: CapacitySnapshot, projector: Projector, size_m: float) -> PublicIndex:
    """Sum positive spare capacity and take the largest spare per hexagonal cell (in-service transformers)."""
    keep = capacity.in_service
    spare = capacity.table.spare_kva[keep]
    cells: dict[tuple[int, int], CellFigures] = {}
    if spare.shape[0]:
        x_m, y_m = projector.project_many(capacity.loads.lon_wgs84[keep], capacity.loads.lat_wgs84[keep])
        q, r = hex_cells(x_m, y_m, size_m)
        keys, inverse = np.unique(np.column_stack((q, r)), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        available = np.bincount(inverse, weights=np.maximum(spare, 0.0), minlength=keys.shape[0])
        largest = np.full(keys.shape[0], -np.inf)
        np.maximum.at(largest, inverse, spare)
        cells = {(int(k[0]), int(k[1])): CellFigures(float(available[i]), float(largest[i]))
                 for i, k in enumerate(keys)}
    return PublicIndex(capacity.generation, size_m, cells)


@lru_cache(maxsize=4)
def _projector(projected_crs: str, service_area_wgs84: tuple[float, float, float, float]) -> Projector:
    return Projector(projected_crs, service_area_wgs84=service_area_wgs84)


_INDEX_LOCK = threading.Lock()


def _public_index(request: Request, snapshot: MapSnapshot, projector: Projector, size_m: float) -> PublicIndex:
    with _INDEX_LOCK:
        index: PublicIndex | None = getattr(request.app.state, "public_index", None)
        if index is None or index.generation != snapshot.generation or index.size_m != size_m:
            index = request.app.state.public_index = build_public_index(snapshot.capacity, projector, size_m)
        return index


class PinParams(BaseModel):
    """A location as picked on a phone map."""

    lon: float
    lat: float
    crs: str


def pin_params(
    lon: Annotated[float, Query(description="Longitude in degrees, in `crs`.", examples=[106.5])],
    lat: Annotated[float, Query(description="Latitude in degrees, in `crs`.", examples=[29.5])],
    crs: Annotated[str, Query(description="Coordinate system of the pin: "
                              + ", ".join(c.value for c in CoordinateSystem)
                              + " (GPS: wgs84; Amap/Tencent: gcj02; Baidu: bd09).", examples=["wgs84"])] = "wgs84",
) -> PinParams:
    """Read the pin parameters."""
    return PinParams(lon=lon, lat=lat, crs=crs)


class Cell(BaseModel):
    """A hexagonal cell and what can be connected in it."""

    is_location_cell: bool = Field(description="True for the cell holding the location; the others surround it.")
    capacity_class: CapacityClass = Field(description="`none`: nothing to connect to; `limited`: less than a "
                                          "160 kVA connection fits; `ample`: a 160 kVA connection fits.")
    available_kva: float = Field(description="Σ spare capacity in the cell, floored to 10 kVA.")
    largest_connection_kva: float = Field(description="Largest single connection that fits, floored to 10 kVA, "
                                          "at most 160.")
    geometry: dict[str, Any] = Field(description="The cell as a GeoJSON Polygon in WGS-84.")


class AreaSummary(BaseModel):
    """The grid area (网格) holding the location."""

    name: str
    area_type: str
    allowable_kva: float = Field(description="Total allowable connection capacity, floored to 10 kVA.")
    precontrol: bool = Field(description="New connections here are pre-controlled (预管控): expect longer lead times.")


class PublicCapacity(BaseModel):
    """Capacity available near a location, aggregated (R6.2)."""

    lon_wgs84: float
    lat_wgs84: float
    grid_area: AreaSummary | None = Field(description="None outside every grid area.")
    cell_size_m: float = Field(description="Circumradius of the cells.")
    cells: list[Cell]
    generation: int


@router.get("/capacity", response_model=PublicCapacity, dependencies=[Depends(public_rate_limit)],
            responses={422: {"description": "`COORDINATE_INVALID`, `CRS_UNSUPPORTED`, `OUT_OF_SERVICE_AREA`"},
                       429: {"description": "`RATE_LIMITED`; the `Retry-After` header says when to retry"}})
def read_public_capacity(request: Request, pin: Annotated[PinParams, Depends(pin_params)],
                         snapshot: MapSnapshotDep) -> PublicCapacity:
    """What a prospective customer can connect near a location — no sign-in, rate-limited per client IP.

    Figures are aggregated by grid area and by hexagonal cells (the cell of the location and its six
    neighbours); they are floored to 10 kVA and name no asset, nor any asset's position.
    """
    settings = get_request_settings(request)
    projector = _projector(settings.projected_crs, settings.service_area_wgs84)
    local = pin_to_local(pin.lon, pin.lat, pin.crs, projector)
    size_m = settings.public_hex_size_m
    index = _public_index(request, snapshot, projector, size_m)
    q0, r0 = hex_cell(local.x_m, local.y_m, size_m)
    cells = []
    for q, r in hex_ring(q0, r0):
        figures = index.cells.get((q, r), CellFigures(0.0, 0.0))
        largest = min(_floor(figures.largest_connection_kva), DISCLOSURE_CAP_KVA)
        cells.append(Cell(is_location_cell=(q, r) == (q0, r0), capacity_class=_capacity_class(largest),
                          available_kva=_floor(figures.available_kva), largest_connection_kva=largest,
                          geometry=mapping(projector.geometry_to_wgs84(hex_polygon_m(q, r, size_m)))))
    areas = snapshot.layers["grid_areas"]
    found = areas.tree_wgs84.query(shapely.Point(local.lon_wgs84, local.lat_wgs84), predicate="intersects")
    area = None
    if found.shape[0]:
        row = snapshot.capacity.areas[str(areas.feature_ids[int(np.min(found))])]
        area = AreaSummary(name=row.name, area_type=row.area_type, allowable_kva=_floor(row.capacity.allowable_kva),
                           precontrol=row.capacity.precontrol)
    return PublicCapacity(lon_wgs84=local.lon_wgs84, lat_wgs84=local.lat_wgs84, grid_area=area, cell_size_m=size_m,
                          cells=cells, generation=snapshot.generation)
