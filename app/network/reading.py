"""Read the network from the database into local-metre arrays and geometries for the siting engine.

Rows are streamed (server-side cursors on PostgreSQL) and projected in bulk with the deployment's
:class:`gis.crs.Projector`; nothing here holds an ORM object per asset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from gis.crs import Projector

STREAM_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class NetworkData:
    """The network in the local metric CRS: parallel arrays for points, geometries for lines/zones."""

    transformer_asset_id: np.ndarray
    transformer_name: np.ndarray
    transformer_x_m: np.ndarray
    transformer_y_m: np.ndarray
    rated_kva: np.ndarray
    peak_kva: np.ndarray
    reserved_kva: np.ndarray
    transformer_grid_area: np.ndarray
    access_asset_id: np.ndarray
    access_transformer_asset_id: np.ndarray
    access_kind: np.ndarray
    access_x_m: np.ndarray
    access_y_m: np.ndarray
    line_asset_id: np.ndarray
    line_transformer_asset_id: np.ndarray
    line_kind: np.ndarray
    line_local: list[BaseGeometry]
    road_asset_id: list[str]
    road_name: list[str]
    road_class: list[str]
    road_local: list[BaseGeometry]
    zone_local: list[BaseGeometry]
    grid_area_code: list[str]
    grid_area_type: list[str]
    grid_area_local: list[BaseGeometry]


def _stream(conn: Connection, sql: str) -> list[tuple]:
    # Options on the statement, not the connection: Connection.execution_options() would change the
    # caller's connection in place, and its later INSERTs would run through server-side cursors.
    result = conn.execute(text(sql).execution_options(stream_results=True, yield_per=STREAM_CHUNK_ROWS))
    rows: list[tuple] = []
    for partition in result.partitions():
        rows.extend(tuple(row) for row in partition)
    return rows


def _column(rows: list[tuple], index: int, dtype: object = object) -> np.ndarray:
    return np.array([row[index] for row in rows], dtype=dtype)


def _geometries_local(rows: list[tuple], index: int, projector: Projector) -> list[BaseGeometry]:
    if not rows:
        return []
    wgs84 = shapely.from_wkb([bytes(row[index]) for row in rows])
    local = shapely.transform(wgs84, lambda xy: np.column_stack(projector.project_many(xy[:, 0], xy[:, 1])))
    return list(local)


def read_network(conn: Connection, projector: Projector) -> NetworkData:
    """Read every in-service asset the siting engine needs, projected to local metres."""
    transformers = _stream(conn, "SELECT asset_id, name, ST_X(geom), ST_Y(geom), rated_kva, peak_kva, "
                                 "reserved_kva, grid_area_code FROM transformers WHERE status = 'in_service' "
                                 "ORDER BY asset_id")
    access = _stream(conn, "SELECT asset_id, transformer_asset_id, kind, ST_X(geom), ST_Y(geom) "
                           "FROM access_points ORDER BY asset_id")
    lines = _stream(conn, "SELECT asset_id, transformer_asset_id, kind, ST_AsBinary(geom) "
                          "FROM lv_lines ORDER BY asset_id")
    roads = _stream(conn, "SELECT asset_id, name, road_class, ST_AsBinary(geom) FROM roads ORDER BY asset_id")
    zones = _stream(conn, "SELECT ST_AsBinary(geom) FROM no_overhead_zones ORDER BY asset_id")
    areas = _stream(conn, "SELECT code, area_type, ST_AsBinary(geom) FROM grid_areas ORDER BY code")

    tx_x, tx_y = projector.project_many(_column(transformers, 2, float), _column(transformers, 3, float))
    ap_x, ap_y = projector.project_many(_column(access, 3, float), _column(access, 4, float))
    return NetworkData(
        transformer_asset_id=_column(transformers, 0),
        transformer_name=_column(transformers, 1),
        transformer_x_m=np.asarray(tx_x, dtype=float),
        transformer_y_m=np.asarray(tx_y, dtype=float),
        rated_kva=_column(transformers, 4, float),
        peak_kva=_column(transformers, 5, float),
        reserved_kva=_column(transformers, 6, float),
        transformer_grid_area=_column(transformers, 7),
        access_asset_id=_column(access, 0),
        access_transformer_asset_id=_column(access, 1),
        access_kind=_column(access, 2),
        access_x_m=np.asarray(ap_x, dtype=float),
        access_y_m=np.asarray(ap_y, dtype=float),
        line_asset_id=_column(lines, 0),
        line_transformer_asset_id=_column(lines, 1),
        line_kind=_column(lines, 2),
        line_local=_geometries_local(lines, 3, projector),
        road_asset_id=[row[0] for row in roads],
        road_name=[row[1] or "" for row in roads],
        road_class=[row[2] for row in roads],
        road_local=_geometries_local(roads, 3, projector),
        zone_local=_geometries_local(zones, 0, projector),
        grid_area_code=[row[0] for row in areas],
        grid_area_type=[row[1] for row in areas],
        grid_area_local=_geometries_local(areas, 2, projector),
    )
