"""Load GIS layers into the asset tables: upsert by asset id in one transaction, bump the generation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from shapely.geometry import MultiPolygon, Polygon
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app import models
from gis.errors import SanlingError
from gis.layers import read_layer_file

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "fixtures" / "demo"


class LayerUnknownError(SanlingError):
    """The layer name is not one Sanling knows."""

    code = "LAYER_UNKNOWN"
    default_message = "Unknown layer."


class LayerRowError(SanlingError):
    """A row of a layer file is invalid."""

    code = "LAYER_ROW_INVALID"
    default_message = "A row of the layer file is invalid."


@dataclass(frozen=True)
class LayerSpec:
    """How one layer maps to its table: key column, geometry type and typed attribute columns."""

    table: type[models.Base]
    key: str
    geometry_type: str
    required: tuple[str, ...]
    optional: dict[str, Any]


LAYERS: dict[str, LayerSpec] = {
    "grid_areas": LayerSpec(models.GridArea, "code", "MultiPolygon", ("code", "name"),
                            {"area_type": "urban", "customer_manager": None, "project_manager": None}),
    "transformers": LayerSpec(models.Transformer, "asset_id", "Point", ("asset_id", "rated_kva"),
                              {"name": "", "peak_kva": 0.0, "peak_at": None, "reserved_kva": 0.0,
                               "grid_area_code": None, "status": "in_service"}),
    "lv_lines": LayerSpec(models.LvLine, "asset_id", "LineString", ("asset_id", "transformer_asset_id", "kind"),
                          {"conductor_type": None}),
    "access_points": LayerSpec(models.AccessPoint, "asset_id", "Point",
                               ("asset_id", "transformer_asset_id", "kind"), {}),
    "roads": LayerSpec(models.Road, "asset_id", "LineString", ("asset_id", "road_class"),
                       {"name": None, "width_m": None}),
    "no_overhead_zones": LayerSpec(models.NoOverheadZone, "asset_id", "MultiPolygon", ("asset_id",),
                                   {"name": None}),
}
# Load order that satisfies references (lines and access points name transformers).
DEMO_LAYER_ORDER = ("grid_areas", "roads", "no_overhead_zones", "transformers", "lv_lines", "access_points")


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _geometry_wkt(geometry: Any, geometry_type: str, row: int) -> str:
    if geometry is None or geometry.is_empty:
        raise LayerRowError(f"row {row}: empty geometry", row=row, field="geometry")
    if geometry_type == "MultiPolygon" and isinstance(geometry, Polygon):
        geometry = MultiPolygon([geometry])
    if geometry.geom_type != geometry_type:
        raise LayerRowError(f"row {row}: geometry is {geometry.geom_type}, expected {geometry_type}",
                            row=row, field="geometry")
    if not geometry.is_valid:
        raise LayerRowError(f"row {row}: invalid geometry ({shapely.is_valid_reason(geometry)})",
                            row=row, field="geometry")
    return "SRID=4326;" + geometry.wkt


def rows_from_frame(layer: str, frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Turn a WGS-84 GeoDataFrame into table rows, raising on the first invalid row."""
    spec = LAYERS[layer]
    rows: list[dict[str, Any]] = []
    for position, record in enumerate(frame.to_dict("records"), start=1):
        row: dict[str, Any] = {}
        for column in spec.required:
            value = _clean(record.get(column))
            if value is None or value == "":
                raise LayerRowError(f"row {position}: missing {column}", row=position, field=column)
            row[column] = value
        for column, default in spec.optional.items():
            value = _clean(record.get(column))
            row[column] = default if value is None else value
        if isinstance(row.get("peak_at"), str):
            row["peak_at"] = datetime.fromisoformat(row["peak_at"])
        row["geom"] = _geometry_wkt(record.get("geometry"), spec.geometry_type, position)
        rows.append(row)
    return rows


def bump_generation(conn: Connection) -> None:
    """Advance the asset generation so every worker rebuilds its index (same transaction)."""
    conn.execute(update(models.AssetGeneration).where(models.AssetGeneration.id == 1)
                 .values(generation=models.AssetGeneration.generation + 1))


def upsert_rows(conn: Connection, layer: str, rows: list[dict[str, Any]], *, replace: bool = False) -> int:
    """Insert or update ``rows`` by the layer's key; with ``replace`` delete rows not in the file."""
    spec = LAYERS[layer]
    table = spec.table.__table__
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    key_column = table.c[spec.key]
    if replace:
        keys = [row[spec.key] for row in rows]
        conn.execute(delete(table).where(key_column.not_in(keys)) if keys else delete(table))
    for start in range(0, len(rows), 1000):
        chunk = rows[start:start + 1000]
        statement = insert(table).values(chunk)
        statement = statement.on_conflict_do_update(
            index_elements=[key_column],
            set_={name: statement.excluded[name] for name in chunk[0] if name != spec.key},
        )
        conn.execute(statement)
    bump_generation(conn)
    return len(rows)


def import_layer_file(conn: Connection, layer: str, path: Path, *, source_crs: str | None = None,
                      replace: bool = False) -> int:
    """Read ``path`` and upsert it as ``layer`` inside the caller's transaction."""
    if layer not in LAYERS:
        raise LayerUnknownError(f"Unknown layer {layer!r}; known: {', '.join(LAYERS)}", layer=layer)
    frame = read_layer_file(path, source_crs=source_crs)
    return upsert_rows(conn, layer, rows_from_frame(layer, frame), replace=replace)


def load_demo(conn: Connection, demo_dir: Path = DEMO_DIR) -> dict[str, int]:
    """Load (or refresh) the demo district from ``fixtures/demo`` in one transaction."""
    return {layer: import_layer_file(conn, layer, demo_dir / f"{layer}.geojson", replace=True)
            for layer in DEMO_LAYER_ORDER}


def asset_counts(conn: Connection) -> dict[str, int]:
    """Return the number of rows of every asset table."""
    from sqlalchemy import func

    return {name: conn.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in models.ASSET_TABLES.items()}
