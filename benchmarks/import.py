"""Benchmark the GIS batch importer against ``ogr2ogr -f PostgreSQL`` on the same GeoPackage, in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/import.py [--rows 1000000] [--repeat 3] [--no-spatialite]

A seeded GeoPackage of ``--rows`` transformers (lon 106.3–106.8, lat 29.4–29.8, Chinese names, seven
attributes) is written to a temp folder. A throwaway PostGIS cluster is started and removed by the script.
Each repetition times, as separate processes measured from spawn to exit (wall time, peak RSS from
the child's ``VmHWM``):

- ``ogr2ogr -f PostgreSQL`` (Debian gdal-bin, COPY mode, spatial index) into a fresh table;
- ``sanling import transformers FILE`` into the migrated, emptied ``transformers`` table, with the full
  validation (types, ranges, choices, geometry, service area, duplicate ids, grid-area references), the
  unique and grid-area indexes and the GiST index, in one transaction.

Then, once each: a re-import of the same file (every row unchanged), an update of every row (the rebuild
strategy), and an import into SpatiaLite. Figures are medians over the repetitions. The last line printed
is one JSON object.

``--serve`` measures instead what the other requests see while one import runs (issue 13 item 4)::

    .venv/bin/python benchmarks/import.py --serve [--rows 600000] [--poll-interval 0.1]

A fresh SpatiaLite database (migrated, the 50 grid areas, a GIS administrator), ``sanling serve --workers 2``
as a child process, then one ``POST /api/v1/imports`` of the GeoPackage while two (three) threads poll, each on a
new connection per request (so the kernel spreads them over both workers): ``/healthz``, a network read
(``GET /api/v1/features/collections/grid_areas/items?limit=10``) and, with ``--poll-job``, the job itself
(``GET /api/v1/imports/{id}``), each sending its next request when the previous one is answered (closed loop).
Latencies of the requests in flight at any moment between the job's ``started_at`` and ``finished_at`` are
reported per endpoint (p50, p99, max, statuses); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyogrio
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from app.platform import migrate  # noqa: E402
from tests.support.throwaway_pg import throwaway_postgis  # noqa: E402

BOX_WGS84 = (106.3, 29.4, 106.8, 29.8)
SERVICE_AREA_WGS84 = (105.28, 28.16, 110.20, 32.21)
RATINGS_KVA = np.array([100, 125, 160, 200, 250, 315, 400, 500, 630, 800], dtype=np.float64)
GRID_AREAS = 50


def make_geopackage(path: Path, rows: int, *, seed: int = 7, rated_scale: float = 1.0) -> None:
    """Write ``rows`` random transformers to ``path`` (one layer ``transformers``, EPSG:4326)."""
    rng = np.random.default_rng(seed)
    numbers = np.arange(rows).astype(str)
    rated_kva = rng.choice(RATINGS_KVA, rows) * rated_scale
    geometry = shapely.to_wkb(shapely.points(rng.uniform(BOX_WGS84[0], BOX_WGS84[2], rows),
                                             rng.uniform(BOX_WGS84[1], BOX_WGS84[3], rows)))
    table = pa.table({
        "asset_id": pa.array(np.char.add("T", numbers)),
        "name": pa.array(np.char.add("配变", numbers)),
        "rated_kva": pa.array(rated_kva),
        "peak_kva": pa.array(np.round(rated_kva * rng.uniform(0.1, 0.9, rows), 1)),
        "reserved_kva": pa.array(np.zeros(rows)),
        "grid_area_code": pa.array(np.char.add("GA-", (np.arange(rows) % GRID_AREAS).astype(str))),
        "status": pa.array(np.full(rows, "in_service")),
        "geometry": pa.array(geometry, pa.binary()),
    })
    pyogrio.write_arrow(table, path, layer="transformers", driver="GPKG", geometry_name="geometry",
                        geometry_type="Point", crs="EPSG:4326")


def _hwm_mb(pid: int) -> float | None:
    """The process's peak resident set (``VmHWM``) in MiB, or ``None`` once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run_rss(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``argv`` to its end; return wall seconds, its peak RSS in MiB and its stdout.

    The peak is the child's ``VmHWM``, sampled every 20 ms until it exits (``ru_maxrss`` of a child
    would include this parent's RSS at fork time).
    """
    started = time.perf_counter()
    peak_mb = 0.0
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        child = subprocess.Popen(argv, stdout=out_file, stderr=err_file, env=env, cwd=REPO_ROOT)
        while child.poll() is None:
            peak_mb = max(peak_mb, _hwm_mb(child.pid) or 0.0)
            time.sleep(0.02)
        wall_s = time.perf_counter() - started
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read().decode(), err_file.read().decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({child.returncode}): {err[-2000:]}")
    return wall_s, peak_mb, out


def create_database(server_url: str, name: str) -> str:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = server_url.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()
    return url


def execute(url: str, *statements: str) -> Any:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    result = None
    with engine.connect() as conn:
        for statement in statements:
            result = conn.execute(text(statement))
            result = result.scalar() if result.returns_rows else None
    engine.dispose()
    return result


def seed_grid_areas(url: str) -> None:
    """Insert the grid areas the transformers name, so the reference check finds them."""
    execute(url, "INSERT INTO grid_areas (code, name, area_type, geom) SELECT 'GA-' || g, '网格' || g, 'urban', "
                 "ST_Multi(ST_MakeEnvelope(106.3, 29.4, 106.8, 29.8, 4326)) FROM generate_series(0, "
                 f"{GRID_AREAS - 1}) AS g")


def seed_grid_areas_sqlite(url: str) -> None:
    """The same grid areas in SpatiaLite."""
    from app.platform.db import create_db_engine

    engine = create_db_engine(url)
    with engine.begin() as conn:
        for number in range(GRID_AREAS):
            conn.execute(text("INSERT INTO grid_areas (code, name, area_type, geom) VALUES (:code, :name, 'urban', "
                              "CastToMulti(BuildMbr(106.3, 29.4, 106.8, 29.8, 4326)))"),
                         {"code": f"GA-{number}", "name": f"网格{number}"})
    engine.dispose()


def sanling_import(url: str, path: Path, work: Path, tag: str) -> dict[str, Any]:
    """Run ``sanling import`` in a child process; return wall time, peak RSS and the import report."""
    env = {**os.environ, "SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(work),
           "SANLING_SERVICE_AREA_WGS84": json.dumps(SERVICE_AREA_WGS84), "PYTHONPATH": str(REPO_ROOT)}
    report_prefix = work / f"report-{tag}"
    wall_s, rss_mb, _out = run_rss([sys.executable, "-m", "app.cli", "import", "transformers", str(path),
                                    "--no-progress", "--report", str(report_prefix)], env)
    report = json.loads(report_prefix.with_suffix(".json").read_text(encoding="utf-8"))
    if report["rows_rejected"]:
        raise RuntimeError(f"rows rejected: {report['issue_counts']}")
    return {"wall_s": wall_s, "peak_rss_mb": rss_mb, "import_s": report["duration_s"], "report": report}


def ogr2ogr_import(server_url: str, path: Path) -> dict[str, Any]:
    """Run Debian's ``ogr2ogr -f PostgreSQL`` (COPY, GiST index) into a fresh table."""
    url = make_url(server_url)
    pg = f"PG:host={url.host} port={url.port} user={url.username} dbname={url.database}"
    wall_s, rss_mb, _out = run_rss(["ogr2ogr", "-f", "PostgreSQL", pg, str(path), "transformers",
                                    "-nln", "ogr_transformers", "-overwrite", "-lco", "GEOMETRY_NAME=geom",
                                    "--config", "PG_USE_COPY", "YES"])
    return {"wall_s": wall_s, "peak_rss_mb": rss_mb}


# --- --serve: what other requests see while an import runs (issue 13 item 4) ---------------------------------

BENCH_USER, BENCH_PASSWORD = "bench-gis", "bench-password-0123456789"
READ_PATH = "/api/v1/features/collections/grid_areas/items?limit=10"
REQUEST_TIMEOUT_S = 120.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
          timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection; returns status, headers and body (error statuses too)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _multipart(fields: dict[str, str], file_field: str, path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{path.name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class _Poller(threading.Thread):
    """Sends ``GET path`` every ``interval_s`` (each on a new connection) until stopped; records every answer."""

    def __init__(self, base: str, path: str, headers: dict[str, str], interval_s: float) -> None:
        super().__init__(daemon=True, name=f"poll {path}")
        self.url, self.headers, self.interval_s = base + path, headers, interval_s
        self.samples: list[tuple[float, float, int, str]] = []  # (sent at, epoch s; ms; status; code or pid)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            sent = time.time()
            started = time.perf_counter()
            try:
                status, headers, body = _http("GET", self.url, headers=self.headers)
            except OSError as exc:
                status, headers, body = 0, {}, str(exc).encode()
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            note = ""
            if status != 200:
                try:
                    note = str(json.loads(body).get("code", ""))
                except ValueError:
                    note = body[:80].decode(errors="replace")
                if "Retry-After" in headers:
                    note += f" Retry-After={headers['Retry-After']}"
            self.samples.append((sent, elapsed_ms, status, note))
            self.stopping.wait(max(0.0, self.interval_s - elapsed_ms / 1000.0))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(samples: list[tuple[float, float, int, str]], since: float, until: float,
             origin: float | None = None) -> dict[str, Any]:
    """Latencies of the requests in flight at some moment between ``since`` and ``until`` (epoch seconds).

    ``slowest`` gives the three slowest with the second they were sent at, counted from ``origin`` (default
    ``since``: the job's start).
    """
    origin = since if origin is None else origin
    during = [s for s in samples if s[0] <= until and s[0] + s[1] / 1000.0 >= since]
    latencies = [s[1] for s in during]
    statuses: dict[str, int] = {}
    for _sent, _ms, status, note in during:
        key = str(status) + (f" {note}" if note else "")
        statuses[key] = statuses.get(key, 0) + 1
    if not latencies:
        return {"requests": 0}
    slowest = sorted(during, key=lambda s: -s[1])[:3]
    return {"requests": len(during), "p50_ms": round(_quantile(latencies, 0.5), 1),
            "p99_ms": round(_quantile(latencies, 0.99), 1), "max_ms": round(max(latencies), 1), "statuses": statuses,
            "slowest": [{"sent_s": round(sent - origin, 2), "ms": round(ms, 1)} for sent, ms, _st, _note in slowest]}


def _epoch_s(moment: str) -> float:
    parsed = datetime.fromisoformat(moment)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()  # the API's times are UTC


def _job_row(db_path: Path, job_id: str) -> tuple[Any, ...]:
    """``(status, started_at, finished_at, report)`` of an import job, read through a read-only connection."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as db:
        found = db.execute("SELECT status, started_at, finished_at, report FROM import_jobs WHERE id = ?",
                           (job_id,)).fetchone()
    return tuple(found) if found else ()


def serve_benchmark(rows: int, interval_s: float, workers: int = 2, *, poll_job: bool = False) -> dict[str, Any]:
    """Import ``rows`` transformers through the API of ``sanling serve`` on SpatiaLite while polling reads."""
    work = Path(tempfile.mkdtemp(prefix="sanling-bench-serve-"))
    server: subprocess.Popen[bytes] | None = None
    pollers: list[_Poller] = []
    try:
        path = work / "transformers.gpkg"
        make_geopackage(path, rows)
        url = f"sqlite:///{work / 'sanling.sqlite'}"
        migrate.upgrade(url)
        seed_grid_areas_sqlite(url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
        env.update({"SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(work), "SANLING_LOG_LEVEL": "WARNING",
                    "SANLING_JOBS_ENABLED": "false", "SANLING_SERVICE_AREA_WGS84": json.dumps(SERVICE_AREA_WGS84),
                    "BENCH_PASSWORD": BENCH_PASSWORD})
        sanling = str(Path(sys.executable).with_name("sanling"))
        subprocess.run([sanling, "user", "create", BENCH_USER, "--role", "gis_admin", "--password-env",
                        "BENCH_PASSWORD"], env=env, check=True, stdout=subprocess.DEVNULL)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server_log = (work / "server.log").open("wb")
        server = subprocess.Popen([sanling, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                                   str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=server_log)
        pids: set[int] = set()
        deadline = time.monotonic() + 120
        while len(pids) < workers:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not come up with every worker")
            try:
                status, _headers, body = _http("GET", base + "/healthz", timeout=5)
                if status == 200:
                    pids.add(int(json.loads(body)["worker_pid"]))
            except OSError:
                time.sleep(0.2)
        form = urllib.parse.urlencode({"username": BENCH_USER, "password": BENCH_PASSWORD}).encode()
        status, _headers, body = _http("POST", base + "/api/v1/auth/token", body=form,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        auth = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
        pollers = [_Poller(base, "/healthz", {}, interval_s), _Poller(base, READ_PATH, auth, interval_s)]
        for poller in pollers:
            poller.start()
        time.sleep(2.0)  # a baseline before the import
        payload, content_type = _multipart({"layer": "transformers"}, "file", path)
        status, _headers, body = _http("POST", base + "/api/v1/imports", body=payload,
                                       headers={**auth, "Content-Type": content_type})
        if status != 202:
            raise RuntimeError(f"POST /api/v1/imports answered {status}: {body[:300]!r}")
        job_id = json.loads(body)["id"]
        if poll_job:
            pollers.append(_Poller(base, f"/api/v1/imports/{job_id}", auth, max(interval_s, 0.5)))
            pollers[-1].start()
        # The job's end is read from its row, read-only (WAL), so that waiting for it adds no request.
        deadline = time.monotonic() + 1800
        job: tuple[Any, ...] = ()
        while time.monotonic() < deadline:
            job = _job_row(work / "sanling.sqlite", job_id)
            if job[0] in ("succeeded", "rejected", "failed"):
                break
            time.sleep(0.5)
        time.sleep(1.0)
        for poller in pollers:
            poller.stopping.set()
        for poller in pollers:
            poller.join(timeout=REQUEST_TIMEOUT_S)
        if not job or job[0] not in ("succeeded", "failed") or not job[2]:
            raise RuntimeError(f"the import did not finish: {job}")
        if job[0] != "succeeded":  # still measured: what the other requests saw until the job gave up
            print(f"the import job {job[0]}; server log (tail):\n"
                  + (work / "server.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        since, until = _epoch_s(job[1]), _epoch_s(job[2])
        summaries = [_summary(poller.samples, since, until) for poller in pollers]
        return {"rows": rows, "workers": workers, "poll_interval_s": interval_s, "job": job[0],
                "import_s": round(until - since, 2), "strategy": json.loads(job[3])["strategy"] if job[3] else None,
                "healthz": summaries[0], "read": {"path": READ_PATH, **summaries[1]},
                **({"job_status": {"path": "/api/v1/imports/{id}", **summaries[2]}} if poll_job else {}),
                "baseline_healthz": _summary([s for s in pollers[0].samples if s[0] + s[1] / 1000.0 < since],
                                             0.0, since, origin=since)}
    except BaseException:
        if (work / "server.log").exists():
            print("server log (tail):\n" + (work / "server.log").read_text(errors="replace")[-5000:], file=sys.stderr)
        raise
    finally:
        for poller in pollers:
            poller.stopping.set()
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    """Run the benchmark and print a table and a final JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-spatialite", action="store_true")
    parser.add_argument("--serve", action="store_true",
                        help="measure /healthz and reads during one import through sanling serve on SpatiaLite")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="--serve: seconds between polls")
    parser.add_argument("--workers", type=int, default=2, help="--serve: workers of sanling serve")
    parser.add_argument("--poll-job", action="store_true", help="--serve: also poll GET /api/v1/imports/{id}")
    args = parser.parse_args()
    if args.serve:
        print(json.dumps(serve_benchmark(args.rows, args.poll_interval, args.workers, poll_job=args.poll_job),
                         ensure_ascii=False))
        return
    if shutil.which("ogr2ogr") is None:
        sys.exit("ogr2ogr not found: install Debian's gdal-bin (scripts/bootstrap.sh --with-test)")
    work = Path(tempfile.mkdtemp(prefix="sanling-bench-import-"))
    try:
        path = work / "transformers.gpkg"
        started = time.perf_counter()
        make_geopackage(path, args.rows)
        changed = work / "transformers_changed.gpkg"
        make_geopackage(changed, args.rows, rated_scale=1.25)
        print(f"GeoPackages of {args.rows:,} transformers written in {time.perf_counter() - started:.1f} s "
              f"({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
        with throwaway_postgis() as server_url:
            ogr_url = create_database(server_url, "bench_ogr")
            ours_url = create_database(server_url, "bench_sanling")
            migrate.upgrade(ours_url)
            seed_grid_areas(ours_url)
            ogr_runs, our_runs = [], []
            for repetition in range(args.repeat):
                ogr_runs.append(ogr2ogr_import(ogr_url, path))
                execute(ours_url, "TRUNCATE transformers")
                our_runs.append(sanling_import(ours_url, path, work, f"pg-{repetition}"))
                print(f"run {repetition + 1}: ogr2ogr {ogr_runs[-1]['wall_s']:.2f} s, "
                      f"sanling {our_runs[-1]['wall_s']:.2f} s "
                      f"({our_runs[-1]['report']['strategy']}, import {our_runs[-1]['import_s']:.2f} s)", flush=True)
            assert execute(ogr_url, "SELECT count(*) FROM ogr_transformers") == args.rows
            assert execute(ours_url, "SELECT count(*) FROM transformers") == args.rows
            unchanged = sanling_import(ours_url, path, work, "pg-unchanged")
            updated = sanling_import(ours_url, changed, work, "pg-updated")
            assert updated["report"]["updated"] == args.rows, updated["report"]
        spatialite: dict[str, Any] | None = None
        if not args.no_spatialite:
            sqlite_url = f"sqlite:///{work / 'bench.sqlite'}"
            migrate.upgrade(sqlite_url)
            seed_grid_areas_sqlite(sqlite_url)
            spatialite = sanling_import(sqlite_url, path, work, "spatialite")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    rows = args.rows
    ours_s, ogr_s = median(our_runs, "wall_s"), median(ogr_runs, "wall_s")
    result = {
        "rows": rows,
        "repeat": args.repeat,
        "rows_per_s": round(rows / ours_s),
        "ogr2ogr_rows_per_s": round(rows / ogr_s),
        "ratio_vs_ogr2ogr": round(ogr_s / ours_s, 3),
        "wall_s": round(ours_s, 2),
        "ogr2ogr_wall_s": round(ogr_s, 2),
        "import_s": round(median(our_runs, "import_s"), 2),
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in our_runs), 1),
        "ogr2ogr_peak_rss_mb": round(max(run["peak_rss_mb"] for run in ogr_runs), 1),
        "strategy": our_runs[0]["report"]["strategy"],
        "reimport_unchanged_rows_per_s": round(rows / unchanged["wall_s"]),
        "update_all_rows_per_s": round(rows / updated["wall_s"]),
        "update_strategy": updated["report"]["strategy"],
        "spatialite_rows_per_s": round(rows / spatialite["wall_s"]) if spatialite else None,
        "spatialite_peak_rss_mb": round(spatialite["peak_rss_mb"], 1) if spatialite else None,
    }
    print(f"\n{'method':<44} {'wall s':>8} {'rows/s':>10} {'peak RSS MiB':>13}")
    print(f"{'ogr2ogr -f PostgreSQL (COPY, GiST)':<44} {ogr_s:>8.2f} {rows / ogr_s:>10,.0f} "
          f"{result['ogr2ogr_peak_rss_mb']:>13.0f}")
    print(f"{'sanling import → PostGIS (' + result['strategy'] + ')':<44} {ours_s:>8.2f} {rows / ours_s:>10,.0f} "
          f"{result['peak_rss_mb']:>13.0f}")
    print(f"{'sanling re-import, all unchanged':<44} {unchanged['wall_s']:>8.2f} {rows / unchanged['wall_s']:>10,.0f} "
          f"{unchanged['peak_rss_mb']:>13.0f}")
    print(f"{'sanling update of every row (' + updated['report']['strategy'] + ')':<44} {updated['wall_s']:>8.2f} "
          f"{rows / updated['wall_s']:>10,.0f} {updated['peak_rss_mb']:>13.0f}")
    if spatialite:
        print(f"{'sanling import → SpatiaLite':<44} {spatialite['wall_s']:>8.2f} "
              f"{rows / spatialite['wall_s']:>10,.0f} {spatialite['peak_rss_mb']:>13.0f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
