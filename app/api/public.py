"""Public disclosure of available capacity near a location (R6.2): aggregated, no asset ids, no asset positions."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from app.planning.disclosure import CapacityClass, PublicDisclosure, disclosure_document
from app.planning.mapdata import MapSnapshotDep
from app.platform.deps import get_request_settings
from app.platform.params import SERVICE_AREA_LAT, SERVICE_AREA_LON, SERVICE_AREA_NOTE
from app.platform.ratelimit import public_rate_limit
from design_rules.profiles import get_profile
from gis.crs import CRS_NAMES

router = APIRouter(prefix="/api/v1/public", tags=["public"])
#: The public disclosure page (/public), outside the API prefix (app/static/public.html).
page_router = APIRouter(tags=["public"])
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

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


class PolicyDocument(BaseModel):
    """A policy document the profile is built from; sources below cite it by ``key``."""

    key: str
    title_zh: str
    number_zh: str | None


class ProfileSummary(BaseModel):
    """The active policy profile (``SANLING_PROFILE``)."""

    profile_id: str
    name_zh: str
    region_zh: str
    effective_from: date
    documents: list[PolicyDocument]


class ScheduleSummary(BaseModel):
    """How the time limits are counted."""

    day_kind: Literal["working", "calendar"]
    day_kind_zh: str
    count_from_zh: str
    source: str


class ProcessStep(BaseModel):
    """One step of the process (办理环节) and its share of the time limit."""

    step: str
    label_zh: str
    days: int = Field(description="Days of the step, in `schedule.day_kind`; 0: done within another step's days.")


class JobClassProcess(BaseModel):
    """The process and time limit (办理时限) of one job class."""

    job_class: str
    label_zh: str
    total_days: int = Field(description="Promised time from application to power-on, in `schedule.day_kind`.")
    source: str
    steps: list[ProcessStep]
    steps_source: str


class RequiredDocument(BaseModel):
    """One application document (申请资料)."""

    kind: str
    label_zh: str
    deferrable: bool = Field(description="May follow after the application (容缺受理).")


class RequiredDocuments(BaseModel):
    """What an applicant brings."""

    items: list[RequiredDocument]
    deferred_until_zh: str | None
    one_certificate: bool = Field(description="一证办电: the other documents are fetched from the government platform.")
    source: str


class PublicPhone(BaseModel):
    """A phone number published with the disclosure."""

    kind: Literal["regulator_hotline", "service_phone"]
    label_zh: str
    number: str
    source: str


class CapacityPublication(BaseModel):
    """How `/api/v1/public/capacity` publishes figures."""

    cap_kva: float
    rounding_kva: float
    cell_size_m: float
    source: str


class GridAreaLabel(BaseModel):
    """A grid area's public name and a point inside it (3 decimals) to centre a map on; no code, no outline."""

    name: str
    area_type: str
    lon_wgs84: float
    lat_wgs84: float


class PublicDisclosureItems(BaseModel):
    """What the public is told besides the capacity near a pin (R6.2; BS 四(五)1, SH 22)."""

    profile: ProfileSummary
    source: str
    schedule: ScheduleSummary
    job_classes: list[JobClassProcess]
    documents_required: RequiredDocuments
    phones: list[PublicPhone] = Field(description="The 12398 energy-regulator hotline and the service phone "
                                      "(`SANLING_SERVICE_PHONE`).")
    capacity_publication: CapacityPublication
    service_area_wgs84: list[float] = Field(min_length=4, max_length=4,
                                            description="min_lon, min_lat, max_lon, max_lat")
    grid_areas: list[GridAreaLabel] = Field(description="Grid areas by name, for a search by name.")


@router.get("/disclosure", response_model=PublicDisclosureItems, dependencies=[Depends(public_rate_limit)],
            responses={429: {"description": "`RATE_LIMITED`; the `Retry-After` header says when to retry"}})
def read_public_disclosure(request: Request, snapshot: MapSnapshotDep) -> PublicDisclosureItems:
    """The disclosure items of the active profile — no sign-in, rate-limited per client IP (issue 17 item 7).

    The process steps and time limits per job class, the documents to bring, the 12398 hotline and the
    service phone, each with the profile's source; the grid areas' names for a search by name.
    """
    settings = get_request_settings(request)
    return PublicDisclosureItems.model_validate(disclosure_document(get_profile(settings.profile), settings, snapshot))


@page_router.get("/public", response_class=FileResponse, operation_id="public-read_public_page",
                 responses={200: {"content": {"text/html": {}}, "description": "The public disclosure page"}})
def read_public_page() -> FileResponse:
    """The public disclosure page (供电能力公开, R6.2): no sign-in; tap the map or use the location for the
    capacity near a point, with the process, time limits, documents and the phone numbers."""
    return FileResponse(STATIC_DIR / "public.html", media_type="text/html; charset=utf-8")
