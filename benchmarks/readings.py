"""Benchmark: what a load-readings import costs the serving workers, against a network re-read (issue 12).

Usage (one command; builds its own SQLite + SpatiaLite database under a temp dir, starts and stops the server)::

    .venv/bin/python benchmarks/readings.py                       # 20k transformers, 20 poles each
    .venv/bin/python benchmarks/readings.py --transformers 2000   # a quick run

The city is ``benchmarks/synthetic_city.py`` at the density of a real LV network (issue 12's table: one
transformer per 120 m block, ``--poles`` poles per transformer round the block, one overhead segment between
consecutive poles, a noded street grid), imported through the real importer; ``sanling serve --workers 2``
loads it. A client keeps sending design requests (``POST /api/v1/designs``, one at a time, each timed) while:

1. **readings** — ``sanling import load_readings`` of ``--readings`` transformers' new peaks (a metering
   system's upload). They are logged in ``capacity_changes`` and each worker applies them to the network it
   holds (``NetworkSnapshot.with_changes``);
2. **peer: asset import** — ``sanling import transformers`` of one transformer with a new name, which changes
   the network itself: each worker re-reads and rebuilds it on its next request, which is what every readings
   import cost before.

For each it prints the first design answered after the import's commit, the slowest of the designs answered
after it and sent within 15 s, and their p99, and the ratio of the peer's slowest to the readings' (how much
less the readings stall the workers).
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.design_api import (  # noqa: E402
    BIN,
    create_planner,
    database_env,
    free_port,
    percentile,
    start_server,
    token,
    wait_for_workers,
)
from benchmarks.synthetic_city import city_layers, city_pins  # noqa: E402

#: How long after an import's commit the designs are watched.
WATCH_S = 15.0


def prepare(n_transformers: int, poles: int, data_dir: Path) -> dict[str, str]:
    """Create the dense city's database through the importer; return the server environment."""
    from sqlalchemy import text

    from app.network.loading import import_layer_file
    from app.platform import migrate
    from app.platform.db import create_db_engine

    url, env = database_env(data_dir)
    migrate.upgrade(url)
    engine = create_db_engine(url)
    started = time.perf_counter()
    layers = city_layers(n_transformers, data_dir / "layers", poles_per_transformer=poles)
    with engine.begin() as conn:
        for layer, path in layers:
            import_layer_file(conn, layer, path)
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("transformers", "access_points", "lv_lines", "roads")}
    engine.dispose()
    print(f"city loaded in {time.perf_counter() - started:.1f} s: {counts}", flush=True)
    create_planner(env)
    return env


class Designer(threading.Thread):
    """Sends design requests one after another and records ``(sent_at, seconds, status)``."""

    def __init__(self, port: int, bearer: str, bodies: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/api/v1/designs"
        self.headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
        self.bodies = bodies
        self.samples: list[tuple[float, float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += 1
            sent = time.monotonic()
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    status = response.status
                    response.read()
            except urllib.error.HTTPError as exc:
                status = exc.code
            self.samples.append((sent, time.monotonic() - sent, status))


def worker_memory_mb(server_pid: int) -> list[dict[str, float]]:
    """RSS and PSS (proportional set size: shared pages split between the processes that map them) of each
    worker process under the supervisor, from ``/proc/<pid>/smaps_rollup``."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    figures = []
    for pid in children:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
        figures.append({"pid": int(pid), "rss_mb": round(int(fields["Rss"].split()[0]) / 1024, 1),
                        "pss_mb": round(int(fields["Pss"].split()[0]) / 1024, 1)})
    return figures


def run_import(env: dict[str, str], layer: str, path: Path) -> float:
    """``sanling import`` in a child process; return the moment it exited (after its commit)."""
    done = subprocess.run([BIN / "sanling", "import", layer, str(path), "--no-progress"], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"sanling import {layer} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return time.monotonic()


def watch(designer: Designer, env: dict[str, str], layer: str, path: Path) -> dict[str, Any]:
    """Import while designs run; figures of the designs answered after the commit and sent in :data:`WATCH_S`."""
    time.sleep(2.0)  # a steady state first
    committed = run_import(env, layer, path)
    deadline = time.monotonic() + WATCH_S + 600
    while not any(sent >= committed + WATCH_S for sent, _, _ in designer.samples):  # the window is answered
        if time.monotonic() > deadline:
            raise RuntimeError("no design answered after the window")
        time.sleep(0.2)
    window = [(sent, seconds, status) for sent, seconds, status in designer.samples
              if sent + seconds >= committed and sent < committed + WATCH_S]
    latencies_ms = [seconds * 1000 for _, seconds, _ in window]
    return {"first_design_ms": round(latencies_ms[0], 1), "max_design_ms": round(max(latencies_ms), 1),
            "p99_design_ms": round(percentile(latencies_ms, 99), 1), "designs": len(window),
            "errors": sum(status != 201 for _, _, status in window)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transformers", type=int, default=20_000)
    parser.add_argument("--poles", type=int, default=20, help="poles per transformer")
    parser.add_argument("--readings", type=int, default=1_000, help="transformers in the readings file")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="sanling-readings-") as tmp:
        data_dir = Path(tmp)
        env = prepare(args.transformers, args.poles, data_dir)
        readings = data_dir / "readings.csv"
        chosen = rng.sample(range(args.transformers), min(args.readings, args.transformers))
        with readings.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["transformer_asset_id", "read_at", "peak_kva"])
            writer.writerows([f"T-{i:06d}", "2026-12-01 20:00", round(rng.uniform(10, 300), 1)] for i in chosen)
        renamed = data_dir / "one_transformer.geojson"
        renamed.write_text(json.dumps(_one_transformer(data_dir / "layers" / "transformers.gpkg")))
        port = free_port()
        started = time.monotonic()
        server = start_server(env, port, args.workers)
        try:
            wait_for_workers(port, args.workers)
            ready_s = round(time.monotonic() - started, 1)
            memory = worker_memory_mb(server.pid)
            bodies = [json.dumps({"lon": lon, "lat": lat, "crs": "wgs84", "kw": 20, "phases": 3,
                                  "category": "small_enterprise"}).encode()
                      for lon, lat in city_pins(args.transformers, 200)]
            designer = Designer(port, token(port), bodies)
            designer.start()
            ours = watch(designer, env, "load_readings", readings)
            peer = watch(designer, env, "transformers", renamed)
            designer.stop.set()
            designer.join(timeout=120)
        finally:
            server.terminate()
            server.wait(timeout=60)
    ratio = round(peer["max_design_ms"] / ours["max_design_ms"], 1)
    print(f"{'after the import of':<34}{'first design ms':>16}{'slowest ms':>12}{'p99 ms':>9}{'designs':>9}"
          f"{'errors':>8}")
    for name, figures in (("readings (in place)", ours), ("peer: one asset (network re-read)", peer)):
        print(f"{name:<34}{figures['first_design_ms']:>16}{figures['max_design_ms']:>12}"
              f"{figures['p99_design_ms']:>9}{figures['designs']:>9}{figures['errors']:>8}")
    print(f"slowest design: the network re-read is {ratio}x the readings' in-place update")
    print(f"workers ready {ready_s} s after the start; per worker " + ", ".join(
        f"RSS {m['rss_mb']:.0f} MB / PSS {m['pss_mb']:.0f} MB" for m in memory))
    print(json.dumps({"n_transformers": args.transformers, "poles_per_transformer": args.poles,
                      "readings": args.readings, "workers": args.workers, "ready_s": ready_s,
                      "pss_mb_total": round(sum(m["pss_mb"] for m in memory), 1), "worker_memory": memory,
                      "readings_import": ours,
                      "peer_asset_import": peer, "slowest_ratio_peer_vs_readings": ratio}))
    return 0 if not ours["errors"] and not peer["errors"] else 1


def _one_transformer(path: Path) -> dict[str, Any]:
    """The first transformer of the city with a new name, as a GeoJSON FeatureCollection (WGS-84)."""
    import geopandas as gpd

    frame = gpd.read_file(path, rows=1)
    frame["name"] = "合成配变 改名"
    return json.loads(frame.to_json())


if __name__ == "__main__":
    raise SystemExit(main())
