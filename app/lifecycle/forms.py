"""What customers and project managers send: the application form, a GPS fix, a survey adjustment (R1.1, R5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.design.service import DesignRequest
from app.platform.params import (
    JSON_INTEGER,
    PIN_CRS_NOTE,
    SERVICE_AREA_LAT,
    SERVICE_AREA_LON,
    SERVICE_AREA_NOTE,
    IsoDate,
    Line,
    PinCrs,
    Stretch,
    check_geometry,
)
from design_rules.profiles import Category
from gis.errors import InvalidInputError


class ApplicationForm(BaseModel):
    """The application (用电申请) as the customer's app submits it (R1.1), with the contract acceptance (R1.4)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "applicant_name": "山城小面馆", "identity_kind": "business_licence", "identity_number": "91500000MA5U000000",
        "contact_phone": "13800000000", "address": "重庆市渝北区金山大道 88 号", "lon": 106.4883433,
        "lat": 29.499325, "crs": "wgs84", "kw": 10, "phases": 1, "category": "small_enterprise",
        "industry": "餐饮", "area_type": "urban", "contract_version": "lv-demo-2019.1",
        "contract_sha256": "<sha256 of the contract text shown>"}]})

    applicant_name: Line = Field(min_length=1, max_length=200, description="Customer (person or enterprise) name.")
    identity_kind: Literal["id_card", "business_licence"] = Field(description="身份证 or 营业执照.")
    identity_number: Line = Field(min_length=4, max_length=64)
    contact_phone: Line | None = Field(default=None, max_length=32)
    address: Line = Field(min_length=2, max_length=500, description="用电地址.")
    lon: float = Field(strict=True, description="Meter-box longitude in `crs`, as picked on the phone map. "
                       + SERVICE_AREA_NOTE, json_schema_extra=SERVICE_AREA_LON)
    lat: float = Field(strict=True, description="Meter-box latitude in `crs`. " + SERVICE_AREA_NOTE,
                       json_schema_extra=SERVICE_AREA_LAT)
    crs: PinCrs = Field(default="wgs84", description=PIN_CRS_NOTE)
    kw: float = Field(strict=True, gt=0, le=10_000, description="Requested capacity, kW.")
    phases: Annotated[Literal[1, 3], JSON_INTEGER] = 3
    category: Category = Category.SMALL_ENTERPRISE
    industry: Line | None = Field(default=None, max_length=100, description="行业类别.")
    area_type: Literal["urban", "rural"] | None = Field(
        default=None, description="城乡类别; default: the grid area's.")
    wanted_power_on: IsoDate | None = Field(default=None, description="客户预计送电时间 (BS 4.1.3), `YYYY-MM-DD`.")
    channel: Literal["app", "government_platform", "counter"] = Field(
        default="app", description="申请方式 (annex 2 #7): the customer's app, a government service platform, or the "
        "counter (营业厅).")
    business_type: Literal["new", "capacity_increase"] = Field(
        default="new", description="业务类型 (annex 2 #12): 新装 (`new`) or 增容 (`capacity_increase`).")
    contract_version: Line = Field(max_length=32, description="The contract version shown (GET .../contract).")
    contract_sha256: str = Field(pattern=r"^[0-9A-Fa-f]{64}$",
                                 description="SHA-256 of the contract text shown (64 hex digits).")

    def design_request(self) -> DesignRequest:
        """The design input of this application."""
        return DesignRequest(lon=self.lon, lat=self.lat, crs=self.crs, kw=self.kw, phases=self.phases,
                             category=self.category, customer_name=self.applicant_name,
                             wanted_power_on=self.wanted_power_on, area_type=self.area_type)


class GpsFix(BaseModel):
    """The device's GPS fix at the time of a report (WGS-84). Numbers are JSON numbers (``strict``: ``"5"`` and
    ``true`` are not 5 and 1, as the OpenAPI's ``number`` says); an integer is a number."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lon_wgs84: float = Field(strict=True, ge=-180, le=180)
    lat_wgs84: float = Field(strict=True, ge=-90, le=90)
    accuracy_m: float = Field(strict=True, gt=0, le=10_000)


class MeterBoxPin(BaseModel):
    """Where the meter box really is, as picked on the terminal's map."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lon: float = Field(strict=True, description="Longitude in `crs`. " + SERVICE_AREA_NOTE,
                       json_schema_extra=SERVICE_AREA_LON)
    lat: float = Field(strict=True, description="Latitude in `crs`. " + SERVICE_AREA_NOTE,
                       json_schema_extra=SERVICE_AREA_LAT)
    crs: PinCrs = Field(default="wgs84", description=PIN_CRS_NOTE)


class SurveyAdjustment(BaseModel):
    """What the project manager changes on site (R5): any combination of the three adjustments."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "meter_box": {"lon": 106.48836, "lat": 29.49934, "crs": "wgs84"},
        "no_overhead_stretches": [{"type": "LineString", "coordinates": [[106.4881, 29.4991], [106.4885, 29.4993]]}],
        "transformer_asset_id": None}]})

    meter_box: MeterBoxPin | None = Field(
        default=None, description="Moved meter box: `{lon, lat, crs}` (crs default wgs84).")
    no_overhead_stretches: list[Stretch] | None = Field(
        default=None, max_length=50, description="Obstacles / no-overhead stretches (GeoJSON, WGS-84); replaces "
        "the design's list. A route touching one becomes cable.")
    transformer_asset_id: Line | None = Field(default=None, max_length=64,
                                              description="Choose another feasible candidate.")

    @field_validator("no_overhead_stretches")
    @classmethod
    def _geometries(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        # Checked here as declared (GEOMETRY_SCHEMA), so a bad stretch is the request's 422: GEOS refuses e.g. a
        # one-point LineString with an exception of its own, which DesignRequest's check let through as a 500.
        for position, item in enumerate(value or []):
            check_geometry(position, item)
        return value

    def apply(self, request: dict[str, Any]) -> DesignRequest:
        """The design request after this adjustment (validated by :class:`DesignRequest`).

        Raises
        ------
        InvalidInputError
            The adjusted request is not a valid design request (e.g. a stretch that is no GeoJSON geometry):
            422 naming the field, never pydantic's ``ValidationError`` (a 500).
        """
        changed = dict(request)
        if self.meter_box is not None:
            changed.update(lon=self.meter_box.lon, lat=self.meter_box.lat, crs=self.meter_box.crs)
        if self.no_overhead_stretches is not None:
            changed["no_overhead_stretches"] = self.no_overhead_stretches
        if self.transformer_asset_id is not None:
            changed["transformer_asset_id"] = self.transformer_asset_id
        elif self.meter_box is not None:
            changed["transformer_asset_id"] = None  # a moved box is sited afresh unless a candidate is named
        try:
            return DesignRequest.model_validate(changed)
        except ValidationError as exc:
            errors = [{"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
                      for error in exc.errors()]
            first = errors[0]
            raise InvalidInputError(f"{first['field']}: {first['message']}", field=first["field"],
                                    errors=errors) from None
