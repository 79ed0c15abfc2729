"""Mapbox Vector Tiles of the network layers at ``/tiles/{layer}/{z}/{x}/{y}.mvt``, cached per asset generation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from app.identity.auth import AuthenticatedUser, Role, require_roles
from app.planning.mapdata import LAYER_INFO, MapSnapshotDep
from app.planning.tiles import TileCacheDep
from gis.errors import NotFoundError
from gis.tiles import DEFAULT_BUFFER_PX, DEFAULT_EXTENT, MAX_ZOOM, tile_bounds

router = APIRouter(tags=["tiles"])

NetworkReader = Annotated[AuthenticatedUser, Depends(require_roles(Role.PLANNER, Role.GIS_ADMIN))]
MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
#: ``all`` puts every layer into one tile (one source for MapLibre); any other name is one layer.
ALL_LAYERS = "all"


class LayerNotFoundError(NotFoundError):
    """No tile layer has this name."""

    code = "LAYER_NOT_FOUND"
    default_message = "No tile layer has this name."


# Declared, not validated as 422s: an unknown layer answers 404 `LAYER_NOT_FOUND`, a tile outside its zoom's grid
# 404 `TILE_OUT_OF_RANGE`, a zoom outside 0…MAX_ZOOM 422 `TILE_ZOOM_INVALID` (gis.tiles.tile_bounds).
LayerName = Annotated[str, Path(description="A layer (" + ", ".join(LAYER_INFO) + ") or `all`.",
                                examples=["transformers"], json_schema_extra={"enum": [*LAYER_INFO, ALL_LAYERS]})]
MAX_TILE_INDEX = 2**MAX_ZOOM - 1
Zoom = Annotated[int, Path(description=f"Zoom level, 0 to {MAX_ZOOM}.", examples=[14],
                           json_schema_extra={"minimum": 0, "maximum": MAX_ZOOM})]
TileIndex = Annotated[int, Path(json_schema_extra={"minimum": 0, "maximum": MAX_TILE_INDEX})]


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.mvt", operation_id="tiles-read_tile", response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}, "description": "A Mapbox Vector Tile 2.1"},
               204: {"description": "No feature in this tile"}, 304: {"description": "Unchanged (ETag)"},
               401: {"description": "No or invalid credentials (`UNAUTHENTICATED`)."},
               403: {"description": "Not a planner or GIS administrator (`FORBIDDEN`)."},
               404: {"description": "`LAYER_NOT_FOUND` or `TILE_OUT_OF_RANGE`"},
               422: {"description": "`TILE_ZOOM_INVALID` or `REQUEST_INVALID`"}},
)
def read_tile(
    layer: LayerName,
    z: Zoom,
    x: Annotated[TileIndex, Path(description="Tile column, 0 to 2^z − 1 (west to east).", examples=[13038])],
    y: Annotated[TileIndex, Path(description="Tile row, 0 to 2^z − 1 (north to south, XYZ scheme).",
                                 examples=[6785])],
    request: Request, snapshot: MapSnapshotDep, cache: TileCacheDep, _user: NetworkReader,
) -> Response:
    """One vector tile in web mercator (EPSG:3857), extent 4096, 64-unit buffer, features clipped to it.

    Layers are named after the collections; transformers carry their load fields and `threshold_class`.
    The ETag changes with the asset generation, so a client revalidates after every import or load change.
    """
    if layer != ALL_LAYERS and layer not in LAYER_INFO:
        raise LayerNotFoundError(field="layer", value=layer, known=[*LAYER_INFO, ALL_LAYERS])
    bounds = tile_bounds(z, x, y)
    etag = f'W/"g{snapshot.generation}-{layer}-{z}-{x}-{y}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    key = (layer, z, x, y)
    tile = cache.get(snapshot.generation, key)
    if tile is None:
        names = list(LAYER_INFO) if layer == ALL_LAYERS else [layer]
        tile = b"".join(snapshot.layers[name].tile(bounds, extent=DEFAULT_EXTENT, buffer_px=DEFAULT_BUFFER_PX)
                        for name in names)
        cache.put(snapshot.generation, key, tile)
    if not tile:
        return Response(status_code=204, headers=headers)
    return Response(tile, media_type=MVT_MEDIA_TYPE, headers=headers)
