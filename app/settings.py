"""Deployment settings, read from ``SANLING_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pyproj
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SUPPORTED_SCHEMES = ("sqlite", "postgresql")


class Settings(BaseSettings):
    """Everything a deployment may change. See README "Settings" for the table of variables."""

    model_config = SettingsConfigDict(env_prefix="SANLING_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for the embedded database, uploaded documents and job files.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty: SQLite + SpatiaLite at DATA_DIR/sanling.sqlite. "
        "PostgreSQL + PostGIS: postgresql://user:pass@host:port/db.",
    )
    projected_crs: str = Field(
        default="EPSG:4545",
        description="Metric CRS for distances and routing: the CGCS2000 3-degree Gauss-Krüger zone "
        "(EPSG:4513-4533 with zone number, 4534-4554 with central meridian) covering the service area.",
    )
    service_area_wgs84: tuple[float, float, float, float] = Field(
        default=(105.28, 28.16, 110.20, 32.21),
        description="Bounding box min_lon, min_lat, max_lon, max_lat of the service area (default: Chongqing).",
    )
    profile: str = Field(default="chongqing-2019", description="Default policy profile id.")
    power_factor: float | None = Field(
        default=None, gt=0.5, le=1.0, description="Overrides the profile's power factor (cos φ)."
    )
    demand_factor: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Overrides the profile's demand factor (同时率)."
    )
    host: str = Field(default="127.0.0.1", description="Address `sanling serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `sanling serve` binds to.")
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes for `sanling serve`.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_json: bool = Field(default=True, description="Emit one JSON object per log line.")

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _SUPPORTED_SCHEMES:
            raise ValueError(f"unsupported database scheme {scheme!r}; use sqlite:/// or postgresql://")
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("projected_crs")
    @classmethod
    def _check_projected_crs(cls, value: str) -> str:
        try:
            crs = pyproj.CRS.from_user_input(value)
        except pyproj.exceptions.CRSError as exc:
            raise ValueError(f"unknown CRS {value!r}: {exc}") from exc
        if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
            raise ValueError(f"{value!r} is not a projected CRS in metres")
        return value

    @model_validator(mode="after")
    def _check_service_area(self) -> Settings:
        min_lon, min_lat, max_lon, max_lat = self.service_area_wgs84
        if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
            raise ValueError("service_area_wgs84 must be min_lon, min_lat, max_lon, max_lat in degrees")
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to the embedded SpatiaLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sanling.sqlite').resolve()}"

    @property
    def is_postgres(self) -> bool:
        """Whether the database is PostgreSQL + PostGIS."""
        return self.effective_database_url.startswith("postgresql")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
