"""Map layers for GIS clients: one read-only snapshot per asset generation, queried by box and cut into vector tiles."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import shapely
from fastapi import Depends, Request
from shapely.geometry import mapping
from sqlalchemy import Connection, LargeBinary, func, select, type_coerce

from app.network.generations import network_version
from app.planning.capacity import CapacitySnapshot, SnapshotCache, read_capacity
from app.platform.db import READ_ONLY_OPTION, read_only_connection
from app.platform.deps import SessionDep, get_request_settings, get_session
from app.platform.models import AccessPoint, GridArea, LvLine, NoOverheadZone, Road
from design_rules.profiles import LoadThresholds, get_profile
from gis.mvt import AttributeColumn, AttributeTable, GeometryKind, encode_line_or_polygon_layer, encode_point_layer
from gis.tiles import (
    DEFAULT_BUFFER_PX,
    DEFAULT_EXTENT,
    TileBounds,
    lonlat_to_mercator,
    quantise_points,
    select_points,
    tile_geometries,
)

__all__ = ["LAYER_INFO", "MapLayer", "MapSnapshot", "MapSnapshotDep", "build_map_snapshot", "get_map_snapshot"]

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]
BBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """What a layer is, for the OGC collection document and the OpenAPI descriptions."""

    title: str
    description: str
    kind: GeometryKind


#: The published layers, in the order collections are listed (ids are the table names).
LAYER_INFO: Mapping[str, LayerInfo] = {
    "transformers": LayerInfo(
        "Transformers (配变)",
        "Distribution transformers with their load model: latest peak, reserved kVA, load rate, spare kVA to the "
        "80 % limit, threshold class (<50, 50-70, 70-80, >80) and projected class after queued connections.",
        "point"),
    "lv_lines": LayerInfo("LV lines and cables (低压线路)",
                          "Overhead LV lines and cables, with the feeding transformer.", "linestring"),
    "access_points": LayerInfo("Access points (接入点)",
                               "LV poles and cable branch boxes, with the feeding transformer.", "point"),
    "grid_areas": LayerInfo(
        "Grid areas (网格)",
        "Grid areas with their 1+1 team, total allowable connection capacity (kVA) and the pre-control flag "
        "(allowable < 160 kVA).", "polygon"),
    "roads": LayerInfo("Roads (道路)", "Road centre lines with class and width.", "linestring"),
    "no_overhead_zones": LayerInfo("No-overhead zones (禁止架空区)", "Zones where new LV works must be cable.",
                                   "polygon"),
}


@dataclass(frozen=True)
class MapLayer:
    """One layer's features as parallel arrays; ``properties`` keeps JSON-ready values per column."""

    name: str
    info: LayerInfo
    feature_ids: ObjectArray
    row_ids: IntArray
    properties: Mapping[str, list[Any]]
    geometries_wgs84: ObjectArray
    tree_wgs84: shapely.STRtree
    geometries_m: ObjectArray
    tree_m: shapely.STRtree
    order_by_x: IntArray
    x_sorted_m: npt.NDArray[np.float64]
    y_by_x_m: npt.NDArray[np.float64]
    tile_columns: AttributeTable
    positions: Mapping[str, int]

    def __len__(self) -> int:
        return int(self.feature_ids.shape[0])

    @property
    def extent_wgs84(self) -> BBox | None:
        """Bounding box of all features, or None for an empty layer."""
        if not len(self):
            return None
        bounds = shapely.total_bounds(self.geometries_wgs84)
        return float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3])

    def in_bbox(self, bbox_wgs84: BBox | None) -> IntArray:
        """Positions of the features intersecting a WGS-84 box (all when None), in feature-id order."""
        if bbox_wgs84 is None:
            return np.arange(len(self), dtype=np.int64)
        found = self.tree_wgs84.query(shapely.box(*bbox_wgs84), predicate="intersects")
        return np.sort(found).astype(np.int64)

    def feature(self, position: int) -> dict[str, Any]:
        """Return one feature as a GeoJSON (RFC 7946) Feature with its id and properties."""
        return {
            "type": "Feature",
            "id": str(self.feature_ids[position]),
            "geometry": mapping(self.geometries_wgs84[position]),
            "properties": {key: values[position] for key, values in self.properties.items()},
        }

    def tile(self, bounds: TileBounds, *, extent: int = DEFAULT_EXTENT, buffer_px: float = DEFAULT_BUFFER_PX) -> bytes:
        """Encode the layer's part of one tile as an MVT layer (``b""`` when no feature falls in it)."""
        box = bounds.buffered(buffer_px, extent)
        if self.info.kind == "point":
            # Keep what lands inside the buffer once rounded to tile units, as ST_AsMVTGeom does: select half a
            # unit wider, then test the integer coordinates.
            hits = select_points(self.x_sorted_m, self.y_by_x_m, bounds.buffered(buffer_px + 0.5, extent))
            px, py = quantise_points(self.x_sorted_m[hits], self.y_by_x_m[hits], bounds, extent)
            inside = (px >= -buffer_px) & (px <= extent + buffer_px) & (py >= -buffer_px) & (py <= extent + buffer_px)
            if not inside.all():
                hits, px, py = hits[inside], px[inside], py[inside]
            positions = self.order_by_x[hits]
            return encode_point_layer(self.name, px, py, self.tile_columns, positions,
                                      feature_ids=self.row_ids[positions], extent=extent)
        positions = np.sort(self.tree_m.query(shapely.box(*box))).astype(np.int64)
        geometries = tile_geometries(self.geometries_m[positions], bounds, extent=extent, buffer_px=buffer_px)
        return encode_line_or_polygon_layer(self.name, geometries, self.info.kind, self.tile_columns, positions,
                                            feature_ids=self.row_ids[positions], extent=extent)


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def build_layer(name: str, feature_ids: Sequence[str], row_ids: Sequence[int], geometries_wgs84: ObjectArray,
                properties: Mapping[str, Sequence[Any]], tile_keys: Sequence[str]) -> MapLayer:
    """Build a layer: WGS-84 and EPSG:3857 geometries, both trees, and the encoded tile attributes."""
    info = LAYER_INFO[name]
    geometries = np.asarray(geometries_wgs84, dtype=object)
    geometries_m = geometries
    if len(geometries):
        geometries_m = shapely.transform(geometries, lambda xy: np.column_stack(lonlat_to_mercator(xy[:, 0], xy[:, 1])))
    if info.kind == "point" and len(geometries):
        xy = shapely.get_coordinates(geometries_m)
        order = np.argsort(xy[:, 0], kind="stable").astype(np.int64)
        x_sorted, y_by_x = xy[order, 0].copy(), xy[order, 1].copy()
    else:
        order = np.empty(0, dtype=np.int64)
        x_sorted = y_by_x = np.empty(0, dtype=np.float64)
    json_properties = {key: [_json_value(v) for v in values] for key, values in properties.items()}
    columns = tuple(
        AttributeColumn.from_values(key, np.asarray(properties[key], dtype=np.float64)
                                    if np.asarray(properties[key]).dtype.kind == "f" else json_properties[key])
        for key in tile_keys)
    ids = np.asarray(list(feature_ids), dtype=object)
    return MapLayer(
        name=name, info=info, feature_ids=ids, row_ids=np.asarray(list(row_ids), dtype=np.int64),
        properties=json_properties, geometries_wgs84=geometries, tree_wgs84=shapely.STRtree(geometries),
        geometries_m=geometries_m, tree_m=shapely.STRtree(geometries_m), order_by_x=order, x_sorted_m=x_sorted,
        y_by_x_m=y_by_x, tile_columns=AttributeTable.from_columns(columns),
        positions={str(v): i for i, v in enumerate(ids.tolist())},
    )


def _rounded(values: npt.NDArray[np.float64], digits: int = 2) -> npt.NDArray[np.float64]:
    return np.round(values, digits)


def _transformer_layer(capacity: CapacitySnapshot) -> MapLayer:
    loads, table = capacity.loads, capacity.table
    labels = np.asarray(table.labels, dtype=object)
    properties: dict[str, Sequence[Any]] = {
        "asset_id": loads.asset_id, "name": loads.name, "rated_kva": loads.rated_kva, "peak_kva": loads.peak_kva,
        "peak_at": loads.peak_at, "peak_source": loads.peak_source, "reserved_kva": loads.reserved_kva,
        "load_rate_pct": _rounded(table.load_rate_pct),
        "projected_load_rate_pct": _rounded(table.projected_load_rate_pct),
        "spare_kva": _rounded(table.spare_kva), "threshold_class": labels[table.threshold_class],
        "projected_class": labels[table.projected_class], "may_start_project": table.may_start_project.tolist(),
        "must_start_project": table.must_start_project.tolist(), "start_in_advance": table.start_in_advance.tolist(),
        "grid_area_code": loads.grid_area_code,
        "area_precontrol": [capacity.area_precontrol(code) for code in loads.grid_area_code.tolist()],
        "status": loads.status,
    }
    points = shapely.points(loads.lon_wgs84, loads.lat_wgs84) if len(loads) else np.empty(0, dtype=object)
    tile_keys = ("asset_id", "name", "rated_kva", "peak_kva", "reserved_kva", "load_rate_pct",
                 "projected_load_rate_pct", "spare_kva", "threshold_class", "projected_class", "grid_area_code",
                 "status")
    return build_layer("transformers", loads.asset_id.tolist(), loads.row_id.tolist(), points, properties, tile_keys)


def _rows_with_geometry(conn: Connection, model: Any, columns: Sequence[str], key: str = "asset_id") -> tuple[
        list[Any], ObjectArray]:
    geom = type_coerce(func.ST_AsBinary(model.geom), LargeBinary)
    rows = conn.execute(select(model.id, *(getattr(model, c) for c in columns), geom)
                        .order_by(getattr(model, key))).all()
    geometries = shapely.from_wkb([bytes(row[-1]) for row in rows]) if rows else np.empty(0, dtype=object)
    return rows, geometries


def _simple_layer(conn: Connection, name: str, model: Any, columns: Sequence[str]) -> MapLayer:
    rows, geometries = _rows_with_geometry(conn, model, columns)
    properties = {c: [row[i + 1] for row in rows] for i, c in enumerate(columns)}
    for c in columns:
        if all(isinstance(v, float) or v is None for v in properties[c]) and any(v is not None for v in properties[c]):
            properties[c] = np.array([np.nan if v is None else v for v in properties[c]], dtype=np.float64)
    return build_layer(name, [row[1] for row in rows], [row[0] for row in rows], geometries, properties, columns)


def _grid_area_layer(conn: Connection, capacity: CapacitySnapshot) -> MapLayer:
    rows, geometries = _rows_with_geometry(conn, GridArea, ["code"], key="code")
    areas = [capacity.areas[row[1]] for row in rows]
    properties: dict[str, Sequence[Any]] = {
        "code": [a.code for a in areas], "name": [a.name for a in areas], "area_type": [a.area_type for a in areas],
        "customer_manager": [a.customer_manager for a in areas], "project_manager": [a.project_manager for a in areas],
        "allowable_kva": np.array([round(a.capacity.allowable_kva, 2) for a in areas], dtype=np.float64),
        "transformer_count": [a.capacity.transformer_count for a in areas],
        "precontrol": [a.capacity.precontrol for a in areas],
    }
    return build_layer("grid_areas", [a.code for a in areas], [row[0] for row in rows], geometries, properties,
                       ("code", "name", "area_type", "allowable_kva", "transformer_count", "precontrol"))


@dataclass(frozen=True)
class MapSnapshot:
    """Every published layer and the capacity snapshot they were built from (one asset generation).

    ``network_generation`` is the network's (assets and loads); a generation that moved by bookings only
    keeps it, and with it the layers that do not show capacity (see :func:`build_map_snapshot`).
    """

    capacity: CapacitySnapshot
    layers: Mapping[str, MapLayer]
    network_generation: int = -1

    @property
    def generation(self) -> int:
        """The asset generation the snapshot was read at."""
        return self.capacity.generation


#: Layers that show no capacity figure: kept across generations that moved by capacity bookings only.
_NETWORK_ONLY_LAYERS = ("lv_lines", "access_points", "roads", "no_overhead_zones")


def build_map_snapshot(conn: Connection, generation: int, *, profile_id: str, thresholds: LoadThresholds,
                       previous: MapSnapshot | None = None) -> MapSnapshot:
    """Read every layer from the database at ``generation`` and build the map snapshot.

    When ``previous`` was built on the same network (only capacity bookings since: ``network_generation``
    unchanged), its lines, access points, roads and zones are kept and only the capacity, transformer and
    grid-area layers are read again: a booking then costs a worker one capacity read, not the whole map.
    """
    network_generation = network_version(conn).network_generation
    capacity = read_capacity(conn, profile_id=profile_id, thresholds=thresholds, generation=generation)
    layers = {"transformers": _transformer_layer(capacity), "grid_areas": _grid_area_layer(conn, capacity)}
    if previous is not None and previous.network_generation == network_generation:
        layers |= {name: previous.layers[name] for name in _NETWORK_ONLY_LAYERS}
    else:
        layers |= {
            "lv_lines": _simple_layer(conn, "lv_lines", LvLine, ["asset_id", "transformer_asset_id", "kind",
                                                                  "conductor_type"]),
            "access_points": _simple_layer(conn, "access_points", AccessPoint,
                                           ["asset_id", "transformer_asset_id", "kind"]),
            "roads": _simple_layer(conn, "roads", Road, ["asset_id", "name", "road_class", "width_m"]),
            "no_overhead_zones": _simple_layer(conn, "no_overhead_zones", NoOverheadZone, ["asset_id", "name"]),
        }
    return MapSnapshot(capacity, {name: layers[name] for name in LAYER_INFO}, network_generation)


def get_map_snapshot(request: Request, session: SessionDep) -> MapSnapshot:
    """FastAPI dependency: the map snapshot of the current asset generation (built once per generation per worker).

    The thresholds come from the profile selected by ``SANLING_PROFILE``. A rebuild after a change runs in the
    background; a request waits for it at most ``app.planning.capacity.REBUILD_WAIT_S`` and is otherwise answered
    from the previous generation's snapshot (``SnapshotCache``), which every answer names.
    """
    settings = get_request_settings(request)
    profile = get_profile(settings.profile)

    def build(conn: Connection, generation: int, previous: MapSnapshot | None) -> MapSnapshot:
        return build_map_snapshot(conn, generation, profile_id=profile.profile_id, thresholds=profile.load_thresholds,
                                  previous=previous)

    engine = getattr(request.app.state, "engine", None)

    @contextmanager
    def connect() -> Iterator[Connection]:  # a rebuild's own connection (the request's ends with the request)
        with engine.connect() as conn:
            yield conn.execution_options(**{READ_ONLY_OPTION: True})

    # A background rebuild reads through the app's own engine; where the requests' sessions come from elsewhere
    # (``app.dependency_overrides``: one outer transaction in tests) it would not see what they see, so there
    # the rebuild stays in the request.
    background = engine is not None and get_session not in request.app.dependency_overrides
    # a map read only reads: DEFERRED on SQLite, so it never takes or waits for the write lock (app/platform/db.py)
    cache: SnapshotCache[MapSnapshot] = request.app.state.map_snapshots  # one per worker, made by create_app
    return cache.get(read_only_connection(session), build, connect=connect if background else None)


MapSnapshotDep = Annotated[MapSnapshot, Depends(get_map_snapshot)]
