"""Benchmark the nearest-feasible-transformer search: gis.index vs shapely STRtree, rtree and PostGIS KNN.

Run from the repository root::

    .venv/bin/python benchmarks/siting.py [--n 100000 1000000] [--queries 10000] [--repeat 3]

Synthetic transformers lie uniformly over lon 106.3–106.8, lat 29.4–29.8 (Chongqing), projected to
EPSG:4545, with R10 ratings of 100–800 kVA and peak load rates mostly below 50 %. Each of the
``--queries`` random pins asks for the nearest transformer with ``rated_kva × 0.8 − peak_kva ≥
requested_kva``. All four methods answer the same pins in the same run; the figures are medians over
``--repeat`` repetitions of per-query medians and 99th percentiles (one query at a time, in process;
PostGIS over one loopback connection with a prepared statement). A throwaway PostGIS cluster is
started and removed by the script. The last line printed is one JSON object for the largest ``n``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gis.crs import Projector
from gis.index import SourceIndex, TransformerSnapshot

BOX_WGS84 = (106.3, 29.4, 106.8, 29.8)
PROJECTED_CRS = "EPSG:4545"
RATINGS_KVA = np.array([100, 125, 160, 200, 250, 315, 400, 500, 630, 800], dtype=np.float64)
MAX_LOAD_AFTER_PCT = 80.0
FloatArray = npt.NDArray[np.float64]


def rss_mb() -> float:
    """Resident set size of this process, MiB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


def make_network(n: int, rng: np.random.Generator, projector: Projector) -> dict[str, Any]:
    """Random transformers: 70 % below 50 % load, 20 % at 50–80 %, 10 % at 80–110 %."""
    lon = rng.uniform(BOX_WGS84[0], BOX_WGS84[2], n)
    lat = rng.uniform(BOX_WGS84[1], BOX_WGS84[3], n)
    x_m, y_m = projector.project_many(lon, lat)
    rated_kva = rng.choice(RATINGS_KVA, n)
    band = rng.random(n)
    load = np.where(
        band < 0.7, rng.uniform(0.05, 0.5, n), np.where(band < 0.9, rng.uniform(0.5, 0.8, n), rng.uniform(0.8, 1.1, n))
    )
    peak_kva = np.round(rated_kva * load, 1)
    return {"x_m": x_m, "y_m": y_m, "rated_kva": rated_kva, "peak_kva": peak_kva}


def make_pins(q: int, rng: np.random.Generator, projector: Projector) -> tuple[list[float], list[float], list[float]]:
    lon = rng.uniform(BOX_WGS84[0], BOX_WGS84[2], q)
    lat = rng.uniform(BOX_WGS84[1], BOX_WGS84[3], q)
    x_m, y_m = projector.project_many(lon, lat)
    requested_kva = np.round(rng.uniform(5.0, 160.0, q), 1)
    return x_m.tolist(), y_m.tolist(), requested_kva.tolist()


def time_queries(
    query: Callable[[float, float, float], int | None], pins: tuple[list[float], ...]
) -> tuple[list[float], list[int | None]]:
    """Time each query alone; return per-query microseconds and the answers."""
    clock = time.perf_counter_ns
    times_us: list[float] = []
    answers: list[int | None] = []
    for x_m, y_m, kva in zip(*pins, strict=True):
        t0 = clock()
        answer = query(x_m, y_m, kva)
        times_us.append((clock() - t0) / 1000.0)
        answers.append(answer)
    return times_us, answers


def summary(times_us: list[float]) -> tuple[float, float]:
    arr = np.asarray(times_us)
    return float(np.median(arr)), float(np.percentile(arr, 99))


class StrtreeBaseline:
    """shapely STRtree over points; box query, numpy capacity filter, doubling box until provably nearest."""

    def __init__(self, x_m: FloatArray, y_m: FloatArray, spare_kva: FloatArray) -> None:
        self.x_m, self.y_m, self.spare_kva = x_m, y_m, spare_kva
        self.tree = shapely.STRtree(shapely.points(x_m, y_m))
        area_m2 = float((x_m.max() - x_m.min()) * (y_m.max() - y_m.min()))
        self.half_m = 2.0 * math.sqrt(area_m2 / len(x_m))

    def nearest(self, x_m: float, y_m: float, kva: float) -> int | None:
        half = self.half_m
        for _ in range(64):
            cand = self.tree.query(shapely.box(x_m - half, y_m - half, x_m + half, y_m + half))
            cand = cand[self.spare_kva[cand] >= kva]
            if cand.size:
                d2 = (self.x_m[cand] - x_m) ** 2 + (self.y_m[cand] - y_m) ** 2
                i = int(d2.argmin())
                if d2[i] <= half * half:
                    return int(cand[i])
            half *= 2.0
        return None


class RtreeBaseline:
    """The ``rtree`` package (libspatialindex R*-tree), bulk-loaded; nearest-k in distance order, k doubled
    until a transformer with enough spare capacity is among them (what an R-tree design would do)."""

    def __init__(self, x_m: FloatArray, y_m: FloatArray, spare_kva: FloatArray) -> None:
        from rtree import index as rtree_index

        self.spare_kva = spare_kva
        stream = ((i, (float(x), float(y), float(x), float(y)), None) for i, (x, y) in enumerate(zip(x_m, y_m,
                                                                                                    strict=True)))
        self.tree = rtree_index.Index(stream)

    def nearest(self, x_m: float, y_m: float, kva: float) -> int | None:
        k = 8
        while k <= 2 * len(self.spare_kva):
            for i in self.tree.nearest((x_m, y_m, x_m, y_m), num_results=k):
                if self.spare_kva[i] >= kva:
                    return int(i)
            k *= 4
        return None


class PostgisKnn:
    """PostGIS table in EPSG:4545 with a float8 spare column and a GiST index; prepared KNN query."""

    SQL = (
        "SELECT id FROM transformers_bench WHERE spare_kva >= %s "
        "ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4545) LIMIT 1"
    )

    def __init__(self, url: str, x_m: FloatArray, y_m: FloatArray, spare_kva: FloatArray) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        cur = self.conn.cursor()
        cur.execute("DROP TABLE IF EXISTS transformers_bench")
        cur.execute("CREATE UNLOGGED TABLE staging (id int, x float8, y float8, spare_kva float8)")
        buffer = io.StringIO()
        ids = np.arange(len(x_m))
        np.savetxt(buffer, np.column_stack([ids, x_m, y_m, spare_kva]), fmt=["%d", "%.17g", "%.17g", "%.17g"])
        t0 = time.perf_counter()
        with cur.copy("COPY staging FROM STDIN") as copy:
            copy.write(buffer.getvalue().replace(" ", "\t"))
        cur.execute(
            "CREATE TABLE transformers_bench AS SELECT id, "
            "ST_SetSRID(ST_MakePoint(x, y), 4545)::geometry(Point, 4545) AS geom, spare_kva FROM staging"
        )
        self.load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cur.execute("CREATE INDEX transformers_bench_geom ON transformers_bench USING gist (geom)")
        self.index_s = time.perf_counter() - t0
        cur.execute("DROP TABLE staging")
        cur.execute("VACUUM ANALYZE transformers_bench")
        self.cur = self.conn.cursor()
        for _ in range(20):  # warm up and let psycopg prepare the statement server-side
            self.nearest(float(x_m[0]), float(y_m[0]), 10.0)

    def nearest(self, x_m: float, y_m: float, kva: float) -> int | None:
        self.cur.execute(self.SQL, (kva, x_m, y_m), prepare=True)
        row = self.cur.fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        self.conn.close()


def bench_one(n: int, queries: int, repeat: int, seed: int, postgis_url: str | None) -> dict[str, Any]:
    projector = Projector(PROJECTED_CRS)
    rng = np.random.default_rng(seed)
    net = make_network(n, rng, projector)
    pins = make_pins(queries, rng, projector)
    spare_kva = net["rated_kva"] * MAX_LOAD_AFTER_PCT / 100.0 - net["peak_kva"]
    snapshot = TransformerSnapshot.from_lists(
        np.array([f"T{i:07d}" for i in range(n)], dtype=object),
        net["x_m"],
        net["y_m"],
        net["rated_kva"],
        net["peak_kva"],
        np.zeros(n),
        np.array([f"G{i % 997:03d}" for i in range(n)], dtype=object),
    )
    gc.collect()
    rss_before = rss_mb()
    t0 = time.perf_counter()
    index = SourceIndex.build(snapshot)
    index.nearest_feasible(pins[0][0], pins[1][0], 10.0, MAX_LOAD_AFTER_PCT)  # builds the 80 % limit cache
    build_s = time.perf_counter() - t0
    index_rss_mb = rss_mb() - rss_before

    def ours(x_m: float, y_m: float, kva: float) -> int | None:
        found = index.nearest_feasible(x_m, y_m, kva, MAX_LOAD_AFTER_PCT, math.inf, 1)
        return found[0].pos if found else None

    def ours_k5(x_m: float, y_m: float, kva: float) -> int | None:
        found = index.nearest_feasible(x_m, y_m, kva, MAX_LOAD_AFTER_PCT, 250.0, 5)
        return found[0].pos if found else None

    rss_before = rss_mb()
    t0 = time.perf_counter()
    strtree = StrtreeBaseline(net["x_m"], net["y_m"], spare_kva)
    strtree_build_s = time.perf_counter() - t0
    strtree_rss_mb = rss_mb() - rss_before

    rss_before = rss_mb()
    t0 = time.perf_counter()
    rtree = RtreeBaseline(net["x_m"], net["y_m"], spare_kva)
    rtree_build_s = time.perf_counter() - t0
    rtree_rss_mb = rss_mb() - rss_before

    postgis: PostgisKnn | None = None
    if postgis_url is not None:
        postgis = PostgisKnn(postgis_url, net["x_m"], net["y_m"], spare_kva)

    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "ours_k5_r250": [], "strtree": [], "rtree": [],
                                              "postgis": []}
    answers: dict[str, list[int | None]] = {}
    methods: dict[str, Callable[[float, float, float], int | None]] = {
        "ours": ours,
        "ours_k5_r250": ours_k5,
        "strtree": strtree.nearest,
        "rtree": rtree.nearest,
    }
    if postgis is not None:
        methods["postgis"] = postgis.nearest
    for _ in range(repeat):
        for name, method in methods.items():
            times_us, answers[name] = time_queries(method, pins)
            runs[name].append(summary(times_us))
    if postgis is not None:
        postgis.close()

    def med(name: str, which: int) -> float | None:
        values = [r[which] for r in runs[name]]
        return statistics.median(values) if values else None

    agree_strtree = sum(a == b for a, b in zip(answers["ours"], answers["strtree"], strict=True)) / queries
    agree_rtree = sum(a == b for a, b in zip(answers["ours"], answers["rtree"], strict=True)) / queries
    agree_postgis = (
        sum(a == b for a, b in zip(answers["ours"], answers["postgis"], strict=True)) / queries
        if "postgis" in answers
        else None
    )
    median_us = med("ours", 0)
    postgis_median_us = med("postgis", 0)
    return {
        "n": n,
        "queries": queries,
        "repeat": repeat,
        "median_us": median_us,
        "p99_us": med("ours", 1),
        "k5_r250_median_us": med("ours_k5_r250", 0),
        "k5_r250_p99_us": med("ours_k5_r250", 1),
        "build_s": build_s,
        "index_rss_mb": index_rss_mb,
        "strtree_median_us": med("strtree", 0),
        "strtree_p99_us": med("strtree", 1),
        "strtree_build_s": strtree_build_s,
        "strtree_rss_mb": strtree_rss_mb,
        "rtree_median_us": med("rtree", 0),
        "rtree_p99_us": med("rtree", 1),
        "rtree_build_s": rtree_build_s,
        "rtree_rss_mb": rtree_rss_mb,
        "ratio_vs_rtree": (med("rtree", 0) or math.nan) / median_us if median_us else None,
        "agree_rtree": agree_rtree,
        "postgis_median_us": postgis_median_us,
        "postgis_p99_us": med("postgis", 1),
        "postgis_load_s": None if postgis is None else postgis.load_s,
        "postgis_index_s": None if postgis is None else postgis.index_s,
        "ratio_vs_postgis": None if postgis_median_us is None or not median_us else postgis_median_us / median_us,
        "ratio_vs_strtree": (med("strtree", 0) or math.nan) / median_us if median_us else None,
        "agree_strtree": agree_strtree,
        "agree_postgis": agree_postgis,
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    r = result
    print(f"\nN = {r['n']:,}  ({r['queries']:,} pins, {r['repeat']} repetitions, medians of per-run figures)")
    print(f"{'method':48s} {'median µs':>10s} {'p99 µs':>10s} {'build s':>9s} {'RSS MiB':>9s}")
    rows = [
        ("gis.index SourceIndex (k=1, no radius)", r["median_us"], r["p99_us"], r["build_s"], r["index_rss_mb"]),
        ("gis.index SourceIndex (k=5, radius 250 m)", r["k5_r250_median_us"], r["k5_r250_p99_us"], None, None),
        (
            "shapely STRtree, doubling box + numpy filter",
            r["strtree_median_us"],
            r["strtree_p99_us"],
            r["strtree_build_s"],
            r["strtree_rss_mb"],
        ),
        (
            "rtree (libspatialindex R*-tree), nearest-k doubling",
            r["rtree_median_us"],
            r["rtree_p99_us"],
            r["rtree_build_s"],
            r["rtree_rss_mb"],
        ),
        (
            "PostGIS GiST KNN, prepared, loopback",
            r["postgis_median_us"],
            r["postgis_p99_us"],
            r["postgis_index_s"],
            None,
        ),
    ]
    for name, median_us, p99_us, build_s, mem_mb in rows:
        print(f"{name:48s} {fmt(median_us):>10s} {fmt(p99_us):>10s} {fmt(build_s, 2):>9s} {fmt(mem_mb, 0):>9s}")
    print(
        f"ours vs PostGIS: {fmt(r['ratio_vs_postgis'])}× faster; vs STRtree: {fmt(r['ratio_vs_strtree'])}×; "
        f"vs rtree: {fmt(r['ratio_vs_rtree'])}× (same answer {r['agree_rtree']:.2%}); "
        f"same answer as STRtree {r['agree_strtree']:.2%}"
        + ("" if r["agree_postgis"] is None else f", as PostGIS {r['agree_postgis']:.2%}")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000], help="numbers of transformers")
    parser.add_argument("--queries", type=int, default=10_000, help="random pins per repetition")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (medians are reported)")
    parser.add_argument("--seed", type=int, default=20191101)
    parser.add_argument("--no-postgis", action="store_true", help="skip the PostGIS comparison")
    args = parser.parse_args(argv)
    results = []
    if args.no_postgis:
        for n in sorted(args.n):
            results.append(bench_one(n, args.queries, args.repeat, args.seed, None))
            print_table(results[-1])
    else:
        from tests.support.throwaway_pg import throwaway_postgis

        with throwaway_postgis() as url:
            for n in sorted(args.n):
                results.append(bench_one(n, args.queries, args.repeat, args.seed, url))
                print_table(results[-1])
    last = dict(results[-1])
    last["smaller_n"] = results[:-1]
    print(json.dumps(last))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
