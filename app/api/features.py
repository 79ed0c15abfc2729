"""OGC API – Features (Part 1: Core) for GIS clients such as QGIS: landing, conformance, collections, GeoJSON items."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from app.identity.auth import AuthenticatedUser, Role, require_roles
from app.planning.mapdata import LAYER_INFO, MapLayer, MapSnapshot, MapSnapshotDep
from app.platform.params import Offset
from gis.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/api/v1/features", tags=["features"])

#: Planners read the network; GIS administrators maintain it; admins pass every check.
NetworkReader = Annotated[AuthenticatedUser, Depends(require_roles(Role.PLANNER, Role.GIS_ADMIN))]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
)
GEOJSON = "application/geo+json"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
# Unknown ids answer 404 (OGC API – Features), so the enum is declared, not validated as a 422.
CollectionId = Annotated[str, Path(description="Collection id: " + ", ".join(LAYER_INFO) + ".",
                                   examples=["transformers"], json_schema_extra={"enum": list(LAYER_INFO)})]
_LON = r"-?(?:180(?:\.0+)?|(?:1[0-7][0-9]|[1-9]?[0-9])(?:\.[0-9]+)?)"
_LAT = r"-?(?:90(?:\.0+)?|[1-8]?[0-9](?:\.[0-9]+)?)"
_HEIGHT = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
#: What ``bbox`` may be (declared and checked): empty, or 4 (or 6, with heights) decimal numbers in range.
BBOX_PATTERN = rf"^(?:|{_LON},{_LAT},{_LON},{_LAT}|{_LON},{_LAT},{_HEIGHT},{_LON},{_LAT},{_HEIGHT})$"
_BBOX = re.compile(BBOX_PATTERN)
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
    403: {"description": "Not a planner or GIS administrator (`FORBIDDEN`)."},
}
_NOT_FOUND = {"description": "`COLLECTION_NOT_FOUND`.", "content": {"application/json": {}}}
_ITEM_NOT_FOUND = {"description": "`COLLECTION_NOT_FOUND` or `FEATURE_NOT_FOUND`.",
                   "content": {"application/json": {}}}


class BBoxInvalidError(InvalidInputError):
    """``bbox`` is not 4 (or 6) comma-separated numbers with min ≤ max in WGS-84 degrees."""

    code = "BBOX_INVALID"
    default_message = "bbox must be min_lon,min_lat,max_lon,max_lat (or with min/max heights) in WGS-84 degrees."


class CollectionNotFoundError(NotFoundError):
    """No collection has this id."""

    code = "COLLECTION_NOT_FOUND"
    default_message = "No collection has this id."


class FeatureNotFoundError(NotFoundError):
    """The collection has no feature with this id."""

    code = "FEATURE_NOT_FOUND"
    default_message = "The collection has no feature with this id."


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    """Parse an OGC ``bbox`` (``minx,miny,maxx,maxy`` or ``minx,miny,minz,maxx,maxy,maxz``, CRS84).

    Raises
    ------
    BBoxInvalidError
        Not 4 or 6 decimal numbers (:data:`BBOX_PATTERN`), a minimum above its maximum, or outside ±180/±90
        degrees.

    >>> parse_bbox("106.48,29.48,106.52,29.52")
    (106.48, 29.48, 106.52, 29.52)
    >>> parse_bbox("1e2,0,0,0")
    Traceback (most recent call last):
    ...
    app.api.features.BBoxInvalidError: bbox must be min_lon,min_lat,max_lon,max_lat (or with min/max heights) in \
WGS-84 degrees.
    """
    if value is None or value == "":
        return None
    if not _BBOX.fullmatch(value):
        raise BBoxInvalidError(field="bbox", value=value[:200])
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError as exc:
        raise BBoxInvalidError(field="bbox", value=value) from exc
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise BBoxInvalidError(field="bbox", value=value)
    min_lon, min_lat, max_lon, max_lat = numbers
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise BBoxInvalidError(field="bbox", value=value)
    return min_lon, min_lat, max_lon, max_lat


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


def _layer(snapshot: MapSnapshot, collection_id: str) -> MapLayer:
    layer = snapshot.layers.get(collection_id)
    if layer is None:
        raise CollectionNotFoundError(collection_id=collection_id, known=list(snapshot.layers))
    return layer


def _collection(request: Request, layer: MapLayer) -> dict[str, Any]:
    url = f"{_base(request)}/collections/{layer.name}"
    extent = layer.extent_wgs84
    return {
        "id": layer.name,
        "title": layer.info.title,
        "description": layer.info.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": {"spatial": {"bbox": [list(extent)] if extent else [[-180.0, -90.0, 180.0, 90.0]], "crs": CRS84}},
        "links": [
            {"href": url, "rel": "self", "type": "application/json", "title": "This collection"},
            {"href": f"{url}/items", "rel": "items", "type": GEOJSON, "title": "Items as GeoJSON"},
        ],
    }


@router.get("", operation_id="features-read_landing_page")
def read_landing_page(request: Request) -> JSONResponse:
    """OGC API landing page (no sign-in needed; it lists links only). Collections and items need a token."""
    base = _base(request)
    root = str(request.base_url).rstrip("/")
    return JSONResponse({
        "title": "Sanling network (三零 配网)",
        "description": "LV network and transformer capacity of the service area, OGC API – Features Part 1.",
        "links": [
            {"href": base, "rel": "self", "type": "application/json", "title": "This document"},
            {"href": f"{root}/openapi.json", "rel": "service-desc",
             "type": "application/vnd.oai.openapi+json;version=3.0", "title": "The API definition"},
            {"href": f"{root}/docs", "rel": "service-doc", "type": "text/html", "title": "The API documentation"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json",
             "title": "Conformance classes"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json", "title": "Collections"},
        ],
    })


@router.get("/conformance", operation_id="features-read_conformance")
def read_conformance() -> JSONResponse:
    """The conformance classes implemented: Core, GeoJSON and OpenAPI 3.0."""
    return JSONResponse({"conformsTo": list(CONFORMANCE)})


@router.get("/collections", operation_id="features-list_collections", responses=_AUTH)
def list_collections(request: Request, snapshot: MapSnapshotDep, _user: NetworkReader) -> JSONResponse:
    """The published layers (planners, GIS administrators and admins)."""
    base = _base(request)
    return JSONResponse({
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json", "title": "Collections"}],
        "collections": [_collection(request, layer) for layer in snapshot.layers.values()],
    })


@router.get("/collections/{collection_id}", operation_id="features-read_collection",
            responses={**_AUTH, 404: _NOT_FOUND})
def read_collection(collection_id: CollectionId, request: Request, snapshot: MapSnapshotDep,
                    _user: NetworkReader) -> JSONResponse:
    """One collection's description and extent."""
    return JSONResponse(_collection(request, _layer(snapshot, collection_id)))


@router.get("/collections/{collection_id}/items", operation_id="features-list_items",
            responses={200: {"content": {GEOJSON: {}}, "description": "A GeoJSON FeatureCollection (RFC 7946)."},
                       **_AUTH, 404: _NOT_FOUND, 422: {"description": "`BBOX_INVALID` or `REQUEST_INVALID`."}})
def list_items(
    collection_id: CollectionId, request: Request, snapshot: MapSnapshotDep, _user: NetworkReader,
    bbox: Annotated[str | None, Query(
        description="min_lon,min_lat,max_lon,max_lat in WGS-84 (CRS84) decimal degrees (or "
        "min_lon,min_lat,min_height,max_lon,max_lat,max_height); features intersecting it. A minimum above its "
        "maximum answers 422 `BBOX_INVALID`.", examples=["106.48,29.48,106.52,29.52"],
        json_schema_extra={"pattern": BBOX_PATTERN})] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = DEFAULT_LIMIT,
    offset: Annotated[Offset, Query(description="Features to skip (follow the `next` link to page).")] = 0,
) -> JSONResponse:
    """Features of a collection as GeoJSON, filtered by ``bbox`` and paged by ``limit``/``offset``.

    The answer carries ``numberMatched``, ``numberReturned`` and ``next``/``prev`` links. Features are in
    id order (asset id; grid area code), so pages are stable within one asset generation.
    """
    layer = _layer(snapshot, collection_id)
    box = parse_bbox(bbox)
    matched = layer.in_bbox(box)
    page = matched[offset:offset + limit]
    url = f"{_base(request)}/collections/{layer.name}/items"

    def link(rel: str, page_offset: int) -> dict[str, str]:
        query = {"limit": limit, "offset": page_offset, **({"bbox": bbox} if bbox else {})}
        return {"href": f"{url}?{urlencode(query)}", "rel": rel, "type": GEOJSON}

    links = [link("self", offset),
             {"href": f"{_base(request)}/collections/{layer.name}", "rel": "collection", "type": "application/json"}]
    if offset + limit < matched.shape[0]:
        links.append(link("next", offset + limit))
    if offset > 0:
        links.append(link("prev", max(0, offset - limit)))
    body = {
        "type": "FeatureCollection",
        "features": [layer.feature(int(position)) for position in page],
        "numberMatched": int(matched.shape[0]),
        "numberReturned": int(page.shape[0]),
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": links,
    }
    return JSONResponse(body, media_type=GEOJSON, headers={"X-Asset-Generation": str(snapshot.generation)})


@router.get("/collections/{collection_id}/items/{feature_id}", operation_id="features-read_item",
            responses={200: {"content": {GEOJSON: {}}, "description": "A GeoJSON Feature (RFC 7946)."},
                       **_AUTH, 404: _ITEM_NOT_FOUND})
def read_item(collection_id: CollectionId, feature_id: str, request: Request, snapshot: MapSnapshotDep,
              _user: NetworkReader) -> JSONResponse:
    """One feature by id (asset id; for grid areas the code)."""
    layer = _layer(snapshot, collection_id)
    position = layer.positions.get(feature_id)
    if position is None:
        raise FeatureNotFoundError(collection_id=collection_id, feature_id=feature_id)
    url = f"{_base(request)}/collections/{layer.name}"
    feature = layer.feature(position)
    feature["links"] = [{"href": f"{url}/items/{feature_id}", "rel": "self", "type": GEOJSON},
                        {"href": url, "rel": "collection", "type": "application/json"}]
    return JSONResponse(feature, media_type=GEOJSON)
