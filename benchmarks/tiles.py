"""Benchmark MVT generation of the transformer layer: Sanling's encoder vs PostGIS ST_AsMVT on the same data.

Run from the repository root::

    .venv/bin/python benchmarks/tiles.py [--n 100000] [--tiles 100] [--repeat 6] [--zooms 12 13 14 15 16]

``--n`` synthetic transformers lie uniformly over lon 106.3–106.8, lat 29.4–29.8 with R10 ratings of
100–800 kVA and the same peak mix as benchmarks/siting.py. Each tile carries 8 attributes (asset id,
rating, peak, reserved, load rate, spare kVA, threshold class, grid area) and the row id as feature id,
extent 4096, buffer 64. ``--tiles`` tiles per zoom are drawn (seeded) from the tiles covering the box,
and every method encodes exactly that list.

* **Ours**: ``app.planning.mapdata.build_layer`` snapshot (points in EPSG:3857 sorted by x, attributes encoded
  once) → ``MapLayer.tile``: binary-search selection, quantisation, vectorised protobuf encoding.
* **PostGIS**: a throwaway PostgreSQL 15 + PostGIS 3 cluster (``tests.support.throwaway_pg``), a table with
  ``geometry(Point, 3857)`` and the same attributes stored as columns, a GiST index, and
  ``ST_AsMVT(ST_AsMVTGeom(geom, ST_TileEnvelope(z, x, y), 4096, 64, true))`` with
  ``geom && ST_TileEnvelope(z, x, y, margin => 64/4096)``, prepared, one loopback connection, bytes fetched.
* **mapbox-vector-tile** (PyPI encoder, pure Python): the same features from our selection, on the
  first ``--lib-tiles`` tiles per zoom only, because it is slow.

Each method encodes the whole list once as a warm-up, then ``--repeat`` timed passes, ours and PostGIS
taking turns pass by pass (so a drift of the shared machine's speed hits both); figures are medians
over the passes of the per-tile medians. The feature count of every tile is compared between ours and
PostGIS. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.planning.mapdata import MapLayer, build_layer
from design_rules.capacity import load_table
from design_rules.profiles import get_profile
from gis.tiles import DEFAULT_BUFFER_PX, DEFAULT_EXTENT, lonlat_to_mercator, select_points, tile_bounds, tiles_covering

BOX_WGS84 = (106.3, 29.4, 106.8, 29.8)
RATINGS_KVA = np.array([100, 125, 160, 200, 250, 315, 400, 500, 630, 800], dtype=np.float64)
TILE_KEYS = ("asset_id", "rated_kva", "peak_kva", "reserved_kva", "load_rate_pct", "spare_kva", "threshold_class",
             "grid_area_code")


def make_data(n: int, rng: np.random.Generator) -> dict[str, Any]:
    """Synthetic transformers with the load model applied (same peak mix as benchmarks/siting.py)."""
    lon = rng.uniform(BOX_WGS84[0], BOX_WGS84[2], n)
    lat = rng.uniform(BOX_WGS84[1], BOX_WGS84[3], n)
    rated = rng.choice(RATINGS_KVA, n)
    share = rng.random(n)
    rate = np.where(share < 0.7, rng.uniform(0.05, 0.5, n),
                    np.where(share < 0.9, rng.uniform(0.5, 0.8, n), rng.uniform(0.8, 1.1, n)))
    peak = np.round(rated * rate, 1)
    reserved = np.round(np.where(rng.random(n) < 0.1, rng.uniform(5, 60, n), 0.0), 1)
    table = load_table(rated, peak, reserved, get_profile("chongqing-2019").load_thresholds)
    labels = np.asarray(table.labels, dtype=object)
    cols = np.floor((lon - BOX_WGS84[0]) / 0.05).astype(int)
    rows = np.floor((lat - BOX_WGS84[1]) / 0.05).astype(int)
    return {
        "id": np.arange(1, n + 1, dtype=np.int64), "lon": lon, "lat": lat,
        "asset_id": np.array([f"T-{i:07d}" for i in range(n)], dtype=object), "rated_kva": rated, "peak_kva": peak,
        "reserved_kva": reserved, "load_rate_pct": np.round(table.load_rate_pct, 2),
        "spare_kva": np.round(table.spare_kva, 2), "threshold_class": labels[table.threshold_class],
        "grid_area_code": np.array([f"GA-{c:02d}{r:02d}" for c, r in zip(cols, rows, strict=True)], dtype=object),
    }


def our_layer(data: dict[str, Any]) -> MapLayer:
    """The in-memory snapshot the app builds once per asset generation."""
    import shapely

    points = shapely.points(data["lon"], data["lat"])
    properties = {key: data[key] for key in TILE_KEYS}
    return build_layer("transformers", data["asset_id"].tolist(), data["id"].tolist(), points, properties, TILE_KEYS)


class PostgisTiles:
    """The same rows in PostGIS, tiles by ST_AsMVT over one prepared statement."""

    SQL = (
        "SELECT ST_AsMVT(q, 'transformers', 4096, 'geom', 'id') FROM ("
        " SELECT id, asset_id, rated_kva, peak_kva, reserved_kva, load_rate_pct, spare_kva, threshold_class,"
        " grid_area_code, ST_AsMVTGeom(geom, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64, true) AS geom"
        " FROM bench_tx WHERE geom && ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => (64.0 / 4096))) q"
    )

    def __init__(self, url: str, data: dict[str, Any]) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        x_m, y_m = lonlat_to_mercator(data["lon"], data["lat"])
        with self.conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            cur.execute("DROP TABLE IF EXISTS bench_tx")
            cur.execute("CREATE TABLE bench_tx (id bigint PRIMARY KEY, asset_id text, rated_kva float8,"
                        " peak_kva float8, reserved_kva float8, load_rate_pct float8, spare_kva float8,"
                        " threshold_class text,"
                        " grid_area_code text, x float8, y float8)")
            buffer = io.StringIO()
            floats = {key: data[key].tolist() for key in ("rated_kva", "peak_kva", "reserved_kva", "load_rate_pct",
                                                          "spare_kva")}
            xs, ys = x_m.tolist(), y_m.tolist()
            for i in range(data["id"].shape[0]):
                buffer.write(f"{data['id'][i]}\t{data['asset_id'][i]}\t{floats['rated_kva'][i]!r}\t"
                             f"{floats['peak_kva'][i]!r}\t{floats['reserved_kva'][i]!r}\t"
                             f"{floats['load_rate_pct'][i]!r}\t{floats['spare_kva'][i]!r}\t"
                             f"{data['threshold_class'][i]}\t{data['grid_area_code'][i]}\t{xs[i]!r}\t{ys[i]!r}\n")
            started = time.perf_counter()
            with cur.copy("COPY bench_tx FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            cur.execute("ALTER TABLE bench_tx ADD COLUMN geom geometry(Point, 3857)")
            cur.execute("UPDATE bench_tx SET geom = ST_SetSRID(ST_MakePoint(x, y), 3857)")
            cur.execute("CREATE INDEX ON bench_tx USING gist (geom)")
            cur.execute("VACUUM ANALYZE bench_tx")
            self.load_s = time.perf_counter() - started
            self.version = cur.execute("SELECT postgis_lib_version()").fetchone()[0]  # type: ignore[index]

    def tile(self, z: int, x: int, y: int) -> bytes:
        row = self.conn.execute(self.SQL, {"z": z, "x": x, "y": y}, prepare=True).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    def close(self) -> None:
        self.conn.close()


def mapbox_vector_tile_encoder(layer: MapLayer, data: dict[str, Any]) -> Callable[[int, int, int], bytes]:
    """The PyPI encoder on the features our selection picks (same quantised coordinates)."""
    import mapbox_vector_tile

    x_m, y_m = lonlat_to_mercator(data["lon"], data["lat"])

    def encode(z: int, x: int, y: int) -> bytes:
        bounds = tile_bounds(z, x, y)
        hits = select_points(layer.x_sorted_m, layer.y_by_x_m, bounds.buffered(DEFAULT_BUFFER_PX))
        positions = layer.order_by_x[hits]
        features = [{"geometry": f"POINT({x_m[p]} {y_m[p]})", "id": int(data["id"][p]),
                     "properties": {key: data[key][p].item() if hasattr(data[key][p], "item") else data[key][p]
                                    for key in TILE_KEYS}} for p in positions.tolist()]
        return mapbox_vector_tile.encode(
            {"name": "transformers", "features": features},
            default_options={"quantize_bounds": (bounds.min_x_m, bounds.min_y_m, bounds.max_x_m, bounds.max_y_m),
                             "extents": DEFAULT_EXTENT, "y_coord_down": True})

    return encode


def time_tiles(encode: Callable[[int, int, int], bytes], tiles: list[tuple[int, int, int]]) -> list[float]:
    """Milliseconds per tile, one tile at a time."""
    times = []
    for z, x, y in tiles:
        started = time.perf_counter()
        encode(z, x, y)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def measure(encode: Callable[[int, int, int], bytes], tiles: list[tuple[int, int, int]],
            repeat: int) -> list[list[float]]:
    time_tiles(encode, tiles)  # warm-up: caches, prepared statement, page cache
    return [time_tiles(encode, tiles) for _ in range(repeat)]


def measure_interleaved(first: Callable[[int, int, int], bytes], second: Callable[[int, int, int], bytes],
                        tiles: list[tuple[int, int, int]], repeat: int) -> tuple[list[list[float]], list[list[float]]]:
    """Like :func:`measure` for two encoders, taking turns run by run (first/second, then second/first, …).

    On a shared machine whose speed drifts over minutes, both then see the same conditions; measuring one
    after the other moved the ratio by ±25 % between otherwise identical runs.
    """
    time_tiles(first, tiles)
    time_tiles(second, tiles)
    runs_first: list[list[float]] = []
    runs_second: list[list[float]] = []
    for r in range(repeat):
        if r % 2 == 0:
            runs_first.append(time_tiles(first, tiles))
            runs_second.append(time_tiles(second, tiles))
        else:
            runs_second.append(time_tiles(second, tiles))
            runs_first.append(time_tiles(first, tiles))
    return runs_first, runs_second


def median_of_runs(runs: list[list[float]], pick: list[int] | None = None) -> float:
    return statistics.median(statistics.median(run if pick is None else [run[i] for i in pick]) for run in runs)


def feature_count(tile: bytes) -> int:
    import mapbox_vector_tile

    return len(mapbox_vector_tile.decode(tile).get("transformers", {}).get("features", [])) if tile else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--tiles", type=int, default=100, help="tiles per zoom level")
    parser.add_argument("--lib-tiles", type=int, default=10, help="tiles per zoom for mapbox-vector-tile")
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--zooms", type=int, nargs="+", default=[12, 13, 14, 15, 16])
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    data = make_data(args.n, rng)
    started = time.perf_counter()
    layer = our_layer(data)
    build_s = time.perf_counter() - started
    tiles: list[tuple[int, int, int]] = []
    for z in args.zooms:
        covering = tiles_covering(z, *BOX_WGS84)
        chosen = rng.choice(len(covering), size=min(args.tiles, len(covering)), replace=False)
        tiles += [(z, *covering[i]) for i in sorted(chosen.tolist())]

    def ours(z: int, x: int, y: int) -> bytes:
        return layer.tile(tile_bounds(z, x, y))

    from tests.support.throwaway_pg import throwaway_postgis

    with throwaway_postgis() as url:
        postgis = PostgisTiles(url, data)
        try:
            mismatches = sum(feature_count(ours(*t)) != feature_count(postgis.tile(*t)) for t in tiles)
            ours_bytes = sum(len(ours(*t)) for t in tiles)
            postgis_bytes = sum(len(postgis.tile(*t)) for t in tiles)
            ours_runs, postgis_runs = measure_interleaved(ours, postgis.tile, tiles, args.repeat)
        finally:
            postgis.close()
    lib_tiles = [t for z in args.zooms for t in [t for t in tiles if t[0] == z][:args.lib_tiles]]
    lib_runs = measure(mapbox_vector_tile_encoder(layer, data), lib_tiles, 1)
    ours_lib_runs = measure(ours, lib_tiles, args.repeat)

    print(f"n={args.n:,} transformers, {len(tiles)} tiles ({args.tiles} per zoom), repeat {args.repeat}, "
          f"PostGIS {postgis.version}; snapshot build {build_s:.2f} s, PostGIS load+index {postgis.load_s:.2f} s")
    print(f"{'zoom':>4} {'features/tile':>14} {'ours ms':>9} {'PostGIS ms':>11} {'PostGIS/ours':>13}")
    per_zoom = {}
    for z in args.zooms:
        pick = [i for i, t in enumerate(tiles) if t[0] == z]
        mean_features = statistics.mean(feature_count(ours(*tiles[i])) for i in pick)
        o, p = median_of_runs(ours_runs, pick), median_of_runs(postgis_runs, pick)
        per_zoom[str(z)] = {"median_ms": round(o, 3), "postgis_median_ms": round(p, 3),
                            "ratio_vs_postgis": round(p / o, 2), "mean_features": round(mean_features, 1)}
        print(f"{z:>4} {mean_features:>14.1f} {o:>9.3f} {p:>11.3f} {p / o:>12.1f}x")
    median_ms, postgis_ms = median_of_runs(ours_runs), median_of_runs(postgis_runs)
    lib_ms, ours_lib_ms = median_of_runs(lib_runs), median_of_runs(ours_lib_runs)
    print(f" all {'':>14} {median_ms:>9.3f} {postgis_ms:>11.3f} {postgis_ms / median_ms:>12.1f}x")
    print(f"mapbox-vector-tile on {len(lib_tiles)} of the tiles: {lib_ms:.3f} ms vs ours {ours_lib_ms:.3f} ms "
          f"({lib_ms / ours_lib_ms:.1f}x slower); feature-count mismatches vs PostGIS: {mismatches}; "
          f"bytes ours {ours_bytes:,} vs PostGIS {postgis_bytes:,}")
    print(json.dumps({
        "n": args.n, "tiles": len(tiles), "zooms": args.zooms, "repeat": args.repeat,
        "median_ms": round(median_ms, 3), "postgis_median_ms": round(postgis_ms, 3),
        "ratio_vs_postgis": round(postgis_ms / median_ms, 2), "per_zoom": per_zoom,
        "mapbox_vector_tile_median_ms": round(lib_ms, 3), "ours_on_same_tiles_median_ms": round(ours_lib_ms, 3),
        "feature_count_mismatches": mismatches, "ours_bytes": ours_bytes, "postgis_bytes": postgis_bytes,
        "build_s": round(build_s, 3), "postgis_load_s": round(postgis.load_s, 3), "postgis_version": postgis.version,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
