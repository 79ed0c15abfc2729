"""A seeded synthetic city for benchmarks: a street grid with one transformer per block and its LV network.

Written as GeoPackage layer files (WGS-84) that the real importer loads, so a benchmark measures the
service on data that went through the same path as a customer's import.

Layout (local metres of the deployment CRS, centred on the demo district near lon 106.5, lat 29.5):
blocks of ``BLOCK_M`` on a side between street centre lines; every 5th street is an arterial; one
transformer per block near its centre, two poles on the block's edge towards the south street and an
overhead line transformer → pole → pole; 100 grid areas, urban.

``poles_per_transformer`` above 2 gives the density of a real LV network (issue 12: a thin city hid a
20-second stall that 20 poles per transformer show): the poles stand evenly along the block's four edges,
6 m inside the street centre lines, with one overhead LV segment per pair of consecutive poles and one from
the transformer to the first pole, and the streets are noded (one road segment per block side).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from gis.crs import Projector

BLOCK_M = 120.0
RATINGS_KVA = np.array([100.0, 200.0, 315.0, 400.0, 500.0, 630.0, 800.0])
CENTRE_WGS84 = (106.55, 29.45)


def _grid(n_transformers: int, projector: Projector) -> tuple[int, float, float]:
    """Blocks per side and the south-west corner (local metres) of the city."""
    side = math.ceil(math.sqrt(n_transformers))
    cx, cy = projector.project(*CENTRE_WGS84)
    return side, cx - side * BLOCK_M / 2, cy - side * BLOCK_M / 2


def city_layers(n_transformers: int, out_dir: Path, *, seed: int = 7, projector: Projector | None = None,
                poles_per_transformer: int = 2) -> list[tuple[str, Path]]:
    """Write the city's layers and return ``(layer, file)`` in import order."""
    if poles_per_transformer < 2:
        raise ValueError("poles_per_transformer must be at least 2")
    dense = poles_per_transformer > 2
    projector = projector or Projector("EPSG:4545")
    rng = np.random.default_rng(seed)
    side, x0, y0 = _grid(n_transformers, projector)
    out_dir.mkdir(parents=True, exist_ok=True)

    def wgs84(geometries: np.ndarray) -> np.ndarray:
        return shapely.transform(geometries, lambda xy: np.column_stack(projector.unproject_many(xy[:, 0], xy[:, 1])))

    def write(layer: str, frame: dict[str, object], geometries: np.ndarray) -> tuple[str, Path]:
        path = out_dir / f"{layer}.gpkg"
        gpd.GeoDataFrame(frame, geometry=wgs84(geometries), crs="EPSG:4326").to_file(path, engine="pyogrio")
        return layer, path

    files = []
    # grid areas: 10 x 10
    areas_per_side = 10
    step = side * BLOCK_M / areas_per_side
    area_codes, area_boxes = [], []
    for i in range(areas_per_side):
        for j in range(areas_per_side):
            area_codes.append(f"SC-{i:02d}{j:02d}")
            area_boxes.append(shapely.box(x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step))
    files.append(write("grid_areas", {"code": area_codes, "name": [f"网格 {c}" for c in area_codes],
                                      "area_type": ["urban"] * len(area_codes)},
                       np.array(area_boxes)))
    # roads: side+1 streets each way, city-long lines, or (dense) one segment per block side
    lines, ids, classes = [], [], []
    for k in range(side + 1):
        road_class = "arterial" if k % 5 == 0 else "branch"
        if dense:
            for m in range(side):
                lines.append(shapely.LineString([(x0 + k * BLOCK_M, y0 + m * BLOCK_M),
                                                  (x0 + k * BLOCK_M, y0 + (m + 1) * BLOCK_M)]))
                ids.append(f"R-NS-{k:04d}-{m:04d}")
                lines.append(shapely.LineString([(x0 + m * BLOCK_M, y0 + k * BLOCK_M),
                                                  (x0 + (m + 1) * BLOCK_M, y0 + k * BLOCK_M)]))
                ids.append(f"R-EW-{k:04d}-{m:04d}")
                classes += [road_class, road_class]
            continue
        lines.append(shapely.LineString([(x0 + k * BLOCK_M, y0), (x0 + k * BLOCK_M, y0 + side * BLOCK_M)]))
        ids.append(f"R-NS-{k:04d}")
        classes.append(road_class)
        lines.append(shapely.LineString([(x0, y0 + k * BLOCK_M), (x0 + side * BLOCK_M, y0 + k * BLOCK_M)]))
        ids.append(f"R-EW-{k:04d}")
        classes.append(road_class)
    files.append(write("roads", {"asset_id": ids, "name": ids, "road_class": classes,
                                 "width_m": [24.0 if c == "arterial" else 9.0 for c in classes]}, np.array(lines)))
    # transformers, one per block (the first n blocks)
    block = np.arange(n_transformers)
    bx, by = block % side, block // side
    tx = x0 + (bx + 0.5) * BLOCK_M + rng.uniform(-20, 20, n_transformers)
    ty = y0 + (by + 0.5) * BLOCK_M + rng.uniform(-20, 20, n_transformers)
    rated = rng.choice(RATINGS_KVA, n_transformers)
    load = np.clip(rng.beta(2.2, 3.0, n_transformers) * 1.05, 0.02, 0.98)
    t_ids = np.array([f"T-{i:06d}" for i in block])
    area_index = (np.floor((tx - x0) / step).clip(0, areas_per_side - 1) * areas_per_side
                  + np.floor((ty - y0) / step).clip(0, areas_per_side - 1)).astype(int)
    files.append(write("transformers", {
        "asset_id": t_ids, "name": [f"合成配变 {i}" for i in block], "rated_kva": rated,
        "peak_kva": np.round(rated * load, 1), "grid_area_code": np.array(area_codes)[area_index],
        "status": ["in_service"] * n_transformers}, shapely.points(tx, ty)))
    if dense:
        files += _dense_lv(out_dir, write, t_ids, tx, ty, x0 + bx * BLOCK_M, y0 + by * BLOCK_M, poles_per_transformer)
        return files
    # two poles on the south edge of the block, and an overhead line transformer → poles
    south = y0 + by * BLOCK_M + 6.0
    p1x, p2x = x0 + bx * BLOCK_M + 30.0, x0 + bx * BLOCK_M + 90.0
    pole_ids = np.concatenate([[f"P-{i:06d}-1" for i in block], [f"P-{i:06d}-2" for i in block]])
    files.append(write("access_points", {
        "asset_id": pole_ids, "transformer_asset_id": np.concatenate([t_ids, t_ids]),
        "kind": ["pole"] * (2 * n_transformers)},
        shapely.points(np.concatenate([p1x, p2x]), np.concatenate([south, south]))))
    coords = np.stack([np.column_stack([tx, ty]), np.column_stack([p1x, south]), np.column_stack([p2x, south])], axis=1)
    files.append(write("lv_lines", {
        "asset_id": [f"L-{i:06d}" for i in block], "transformer_asset_id": t_ids,
        "kind": ["overhead"] * n_transformers, "conductor_type": ["JKLYJ-1kV-120"] * n_transformers},
        shapely.linestrings(coords)))
    return files


def _dense_lv(out_dir: Path, write: Any, t_ids: np.ndarray, tx: np.ndarray, ty: np.ndarray, block_x0: np.ndarray,
              block_y0: np.ndarray, poles: int) -> list[tuple[str, Path]]:
    """``poles`` poles per block evenly round its edges (6 m inside the streets), chained by LV segments."""
    inset = 6.0
    edge = BLOCK_M - 2 * inset
    along = (np.arange(poles) + 0.5) * (4 * edge / poles)  # distance along the perimeter from the SW corner
    side_no, offset = np.divmod(along, edge)
    dx = np.select([side_no == 0, side_no == 1, side_no == 2], [offset, edge, edge - offset], 0.0)
    dy = np.select([side_no == 0, side_no == 1, side_no == 2], [0.0, offset, edge], edge - offset)
    px = (block_x0[:, None] + inset + dx[None, :]).ravel()
    py = (block_y0[:, None] + inset + dy[None, :]).ravel()
    n = len(t_ids)
    owner = np.repeat(t_ids, poles)
    pole_ids = np.array([f"P-{t}-{k:02d}" for t in t_ids for k in range(poles)])
    points = shapely.points(px, py)
    files = [write("access_points", {"asset_id": pole_ids, "transformer_asset_id": owner,
                                     "kind": ["pole"] * (n * poles)}, points)]
    xy = np.column_stack([px, py]).reshape(n, poles, 2)
    feeders = shapely.linestrings(np.stack([np.column_stack([tx, ty]), xy[:, 0, :]], axis=1))
    spans = shapely.linestrings(np.stack([xy[:, :-1, :], xy[:, 1:, :]], axis=2).reshape(-1, 2, 2))
    span_owner = np.repeat(t_ids, poles - 1)
    line_ids = np.concatenate([[f"L-{t}-00" for t in t_ids],
                               [f"L-{t}-{k:02d}" for t in t_ids for k in range(1, poles)]])
    files.append(write("lv_lines", {
        "asset_id": line_ids, "transformer_asset_id": np.concatenate([t_ids, span_owner]),
        "kind": ["overhead"] * len(line_ids), "conductor_type": ["JKLYJ-1kV-120"] * len(line_ids)},
        np.concatenate([feeders, spans])))
    return files


def city_pins(n_transformers: int, count: int, *, seed: int = 11,
              projector: Projector | None = None) -> list[tuple[float, float]]:
    """Random meter-box pins (WGS-84) inside the city's blocks, 8 m inside a street edge."""
    projector = projector or Projector("EPSG:4545")
    rng = np.random.default_rng(seed)
    side, x0, y0 = _grid(n_transformers, projector)
    rows = min(side, n_transformers // side)
    bx = rng.integers(1, side - 1, count)
    by = rng.integers(1, max(rows - 1, 2), count)
    x = x0 + bx * BLOCK_M + rng.uniform(10, BLOCK_M - 10, count)
    y = y0 + by * BLOCK_M + rng.choice([12.0, BLOCK_M - 12.0], count)
    lon, lat = projector.unproject_many(x, y)
    return list(zip(np.asarray(lon).tolist(), np.asarray(lat).tolist(), strict=True))
