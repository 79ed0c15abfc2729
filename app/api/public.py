"""Public disclosure of available capacity near a location (R6.2): aggregated, no asset ids, no asset positions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from app.planning.disclosure import CapacityClass, PublicDisclosure
from app.planning.mapdata import MapSnapshotDep
from app.platform.params import SERVICE_AREA_LAT, SERVICE_AREA_LON, SERVICE_AREA_NOTE
from app.platform.ratelimit import public_rate_limit
from gis.crs import CRS_NAMES

router = APIRouter(prefix="/api/v1/public", tags=["public"])

class PinParams(BaseModel):
    """A location as picked on a phone map."""

    lon: float
    lat: float
    crs: str


def pin_params(
    lon: Annotated[float, Query(description="Longitude in degrees, in `crs`. " + SERVICE_AREA_NOTE, examples=[106.5],
                                json_schema_extra=SERVICE_AREA_LON)],
    lat: Annotated[float, Query(description="Latitude in degrees, in `crs`. " + SERVICE_AREA_NOTE, examples=[29.5],
                                json_schema_extra=SERVICE_AREA_LAT)],
    # declared, not validated here: gis.crs answers an unknown system with 422 `CRS_UNSUPPORTED`
    crs: Annotated[str, Query(description="Coordinate system of the pin: "
                              + ", ".join(CRS_NAMES)
                              + " (GPS: wgs84; Amap/Tencent: gcj02; Baidu: bd09; any case).", examples=["wgs84"],
                              json_schema_extra={"enum": list(CRS_NAMES)})] = "wgs84",
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


@router.get("/capacity", response_model=PublicCapacity, dependencies=[Depends(public_rate_limit)],
            responses={422: {"description": "`COORDINATE_INVALID`, `CRS_UNSUPPORTED`, `OUT_OF_SERVICE_AREA`"},
                       429: {"description": "`RATE_LIMITED`; the `Retry-After` header says when to retry"}})
def read_public_capacity(request: Request, pin: Annotated[PinParams, Depends(pin_params)],
                         snapshot: MapSnapshotDep) -> PublicCapacity:
    """What a prospective customer can connect near a location — no sign-in, rate-limited per client IP.

    Figures are aggregated by grid area and by hexagonal cells (the cell of the location and its six
    neighbours); they are floored to 10 kVA and name no asset, nor any asset's position.
    """
    disclosure: PublicDisclosure = request.app.state.public_disclosure
    return PublicCapacity.model_validate(disclosure.near(snapshot, pin.lon, pin.lat, pin.crs))
