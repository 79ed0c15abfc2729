"""The planner capacity map page (/map) and its configuration; the page's data calls carry the planner's token."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from app.platform.deps import get_request_settings

router = APIRouter(tags=["map"])

#: Static files of the web page (served at /static): the page, its script and the vendored Leaflet.
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"


class MapConfig(BaseModel):
    """What the page needs from the deployment settings (nothing secret)."""

    basemap_tile_url: str = Field(description="XYZ raster tile URL template; empty: no base map.")
    basemap_attribution: str


@router.get("/map", response_class=FileResponse, operation_id="map-read_map_page",
            responses={200: {"content": {"text/html": {}}, "description": "The planner map page"}})
def read_map_page() -> FileResponse:
    """The planner capacity map (配变容量地图): sign in on the page, then transformers by threshold class,
    grid areas shaded by allowable capacity, details on click, class filters, coordinate search and worklists."""
    return FileResponse(STATIC_DIR / "map.html", media_type="text/html; charset=utf-8")


@router.get("/map/config.json", response_model=MapConfig, operation_id="map-read_map_config")
def read_map_config(request: Request) -> MapConfig:
    """Base map settings of the page (`SANLING_BASEMAP_TILE_URL`, `SANLING_BASEMAP_ATTRIBUTION`)."""
    settings = get_request_settings(request)
    return MapConfig(basemap_tile_url=settings.basemap_tile_url, basemap_attribution=settings.basemap_attribution)
