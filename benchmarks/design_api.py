"""Benchmark: full ``POST /api/v1/designs`` requests over HTTP on loopback against a running server.

Usage (one command; builds its own databases under a temp dir, starts and stops the server)::

    .venv/bin/python benchmarks/design_api.py                  # demo district and a 100k-transformer city
    .venv/bin/python benchmarks/design_api.py --scenario demo --requests 2000 --concurrency 8

For each scenario: a fresh SQLite + SpatiaLite database (the embedded default), migrated, the network
loaded through the real importer, a planner account; then ``sanling serve --workers 2`` as a subprocess,
a wait until every worker answers ``/healthz`` with its network loaded (workers load it before they listen),
a few warm-up requests, and ``--requests`` design requests
from ``--concurrency`` keep-alive connections (a small asyncio HTTP/1.1 client, so that the load generator
costs little CPU on the same 2-core machine). Every response is checked (201 and a job class).

With ``--rate R`` the load is an open loop instead: requests arrive at random at R per second whether or
not earlier ones are answered (a fleet of phones), each timed from when it was due; ``--rate 200`` gives the
latency at the target throughput, the default closed loop the throughput at saturation.

Targets (issue 4, 2-core machine): p50 ≤ 15 ms, p99 ≤ 50 ms, ≥ 200 requests/s. The last line printed
is one JSON object: the worse scenario's ``p50_ms``, ``p99_ms``, ``rps`` and every scenario's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic_city import city_layers, city_pins  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PASSWORD = "bench-password-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_env(data_dir: Path) -> tuple[str, dict[str, str]]:
    """The SQLite URL under ``data_dir`` and the environment a benchmark server and CLI run with."""
    url = f"sqlite:///{data_dir / 'sanling.sqlite'}"
    return url, {**os.environ, "SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(data_dir),
                 "SANLING_LOG_LEVEL": "WARNING", "SANLING_JOBS_ENABLED": "false"}


def create_planner(env: dict[str, str]) -> None:
    """The planner account the benchmark clients sign in as (``token``)."""
    subprocess.run([BIN / "sanling", "user", "create", "bench-planner", "--role", "planner", "--password-env",
                    "BENCH_PASSWORD"], env={**env, "BENCH_PASSWORD": PASSWORD}, check=True, stdout=subprocess.DEVNULL)


def prepare(scenario: str, n_transformers: int, data_dir: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Create and load the scenario's database; return the server environment and request bodies."""
    from sqlalchemy import text

    from app.network.loading import import_layer_file, load_demo
    from app.platform import migrate
    from app.platform.db import create_db_engine

    url, env = database_env(data_dir)
    migrate.upgrade(url)
    engine = create_db_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        if scenario == "demo":
            load_demo(conn)
        else:
            for layer, path in city_layers(n_transformers, data_dir / "layers"):
                import_layer_file(conn, layer, path)
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("transformers", "access_points", "lv_lines", "roads")}
    engine.dispose()
    print(f"[{scenario}] loaded in {time.perf_counter() - started:.1f} s: {counts}", flush=True)
    create_planner(env)
    if scenario == "demo":
        with (ROOT / "fixtures" / "sample_applications.csv").open() as f:
            bodies = [{"lon": float(r["lon"]), "lat": float(r["lat"]), "crs": r["crs"], "kw": float(r["kw"]),
                       "phases": int(r["phases"]), "category": r["category"]} for r in csv.DictReader(f)]
    else:
        bodies = [{"lon": lon, "lat": lat, "crs": "wgs84", "kw": kw, "phases": 3, "category": "small_enterprise"}
                  for (lon, lat), kw in zip(city_pins(n_transformers, 500), [10, 20, 30, 50, 80] * 100, strict=True)]
    return env, bodies


def start_server(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([BIN / "sanling", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("server did not come up: " + (server.stderr.read().decode() if server.stderr else ""))


def wait_for_workers(port: int, workers: int, timeout_s: float = 600.0) -> None:
    """Wait until every worker answers ``/healthz`` with its network loaded.

    ``sanling serve`` workers load the network before they listen (SANLING_PRELOAD_NETWORK), so until then the
    kernel hands every new connection to the workers already up; measuring before all are up would
    measure fewer workers.
    """
    seen: set[int] = set()
    deadline = time.time() + timeout_s
    while len(seen) < workers:
        if time.time() > deadline:
            raise RuntimeError(f"only {len(seen)} of {workers} workers came up")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
            health = json.loads(response.read())
        if health.get("worker_network_generation") is not None:
            seen.add(int(health["worker_pid"]))
        else:
            time.sleep(0.1)


def token(port: int) -> str:
    data = urllib.parse.urlencode({"username": "bench-planner", "password": PASSWORD}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/auth/token", data=data, timeout=30) as response:
        return str(json.loads(response.read())["access_token"])


#: Reconnect a connection idle longer than this (uvicorn closes keep-alive connections idle for 5 s).
KEEP_ALIVE_IDLE_S = 4.0


class _Connection:
    """One keep-alive HTTP/1.1 connection to the server, opened anew after ``requests_per_connection`` requests.

    Reconnecting lets the kernel spread clients over the workers' SO_REUSEPORT sockets again, as a fleet
    of phones on mobile networks does; the TCP connect of a new connection counts in that request's time.
    """

    def __init__(self, port: int, requests_per_connection: int) -> None:
        self.port = port
        self.requests_per_connection = requests_per_connection
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.sent = 0
        self.last_used = 0.0

    async def request(self, payload: bytes) -> tuple[int, bytes, float | None]:
        """Send one request; return the status, the body and the server's own time (``Server-Timing``), ms."""
        idle_s = time.perf_counter() - self.last_used
        if self.writer is None or self.sent >= self.requests_per_connection or idle_s > KEEP_ALIVE_IDLE_S:
            self.close()
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.sent = 0
        assert self.reader is not None
        self.writer.write(payload)
        self.sent += 1
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        app_ms = None
        for line in head.split(b"\r\n"):
            lowered = line.lower()
            if lowered.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif lowered.startswith(b"server-timing:") and b"dur=" in lowered:
                app_ms = float(lowered.split(b"dur=", 1)[1].split(b",", 1)[0])
        body = await self.reader.readexactly(length)
        self.last_used = time.perf_counter()
        return status, body, app_ms

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _Tally:
    """Latencies (as the client sees them), the server's own times and failed answers."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.app_ms: list[float] = []
        self.errors: list[str] = []

    def add(self, since: float, status: int, body: bytes, app_ms: float | None) -> None:
        self.latencies_ms.append((time.perf_counter() - since) * 1000.0)
        if app_ms is not None:
            self.app_ms.append(app_ms)
        if status != 201 or b'"job_class"' not in body:
            self.errors.append(f"{status}: {body[:200]!r}")


async def _closed_client(port: int, jobs: asyncio.Queue[bytes], tally: _Tally, requests_per_connection: int) -> None:
    """One client of the closed loop: its next request as soon as the answer to the last one is in."""
    connection = _Connection(port, requests_per_connection)
    try:
        while True:
            try:
                payload = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            tally.add(started, *await connection.request(payload))
    finally:
        connection.close()


def _request_bytes(port: int, bearer: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (f"POST /api/v1/designs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {bearer}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload


async def run_load(port: int, bearer: str, bodies: list[dict[str, Any]], requests: int,
                   concurrency: int, requests_per_connection: int = 20,
                   ) -> tuple[list[float], list[float], list[str], float]:
    """Closed loop: ``concurrency`` clients, each sending its next request when the last is answered."""
    jobs: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(requests):
        jobs.put_nowait(_request_bytes(port, bearer, bodies[i % len(bodies)]))
    tally = _Tally()
    started = time.perf_counter()
    await asyncio.gather(*(_closed_client(port, jobs, tally, requests_per_connection) for _ in range(concurrency)))
    return tally.latencies_ms, tally.app_ms, tally.errors, time.perf_counter() - started


#: Open loop: at most this many connections at once (a stalled server must not make the client open thousands).
MAX_OPEN_CONNECTIONS = 256


async def run_open_load(port: int, bearer: str, bodies: list[dict[str, Any]], requests: int, rate_per_s: float,
                        requests_per_connection: int = 20, seed: int = 20261129,
                        ) -> tuple[list[float], list[float], list[str], float]:
    """Open loop: requests arrive at ``rate_per_s`` on average (Poisson), whether or not earlier ones are answered.

    This is how a fleet of phones loads the service, and it answers "what latency at this throughput". Each
    arrival takes an idle keep-alive connection chosen at random (or opens one); its latency counts from the
    moment it was due, so a request the client could only send late is charged its wait too (no
    coordinated omission).
    """
    rng = random.Random(seed)
    pick = random.Random(seed + 1)
    idle: list[_Connection] = []
    opened: list[_Connection] = []
    slots = asyncio.Semaphore(MAX_OPEN_CONNECTIONS)
    tally = _Tally()

    async def arrive(payload: bytes, due: float) -> None:
        async with slots:
            # any idle connection, as the next request of a fleet comes from any phone (reusing the most recent
            # one instead piles bursts onto a few connections, and so onto whichever worker they hash to)
            connection = idle.pop(pick.randrange(len(idle))) if idle else _Connection(port, requests_per_connection)
            if connection not in opened:
                opened.append(connection)
            tally.add(due, *await connection.request(payload))
            idle.append(connection)

    started = time.perf_counter()
    due = started
    arrivals = []
    for i in range(requests):
        due += rng.expovariate(rate_per_s)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        arrivals.append(asyncio.create_task(arrive(_request_bytes(port, bearer, bodies[i % len(bodies)]), due)))
    await asyncio.gather(*arrivals)
    wall_s = time.perf_counter() - started
    for connection in opened:
        connection.close()
    return tally.latencies_ms, tally.app_ms, tally.errors, wall_s


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(child) for child in children)
    return total


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100.0 * len(ordered)) - 1))]


def bench(scenario: str, n: int, requests: int, concurrency: int, workers: int,
          requests_per_connection: int, rate_per_s: float = 0.0) -> dict[str, Any]:
    """One scenario; closed loop of ``concurrency`` clients, or open loop at ``rate_per_s`` when that is > 0."""
    with tempfile.TemporaryDirectory(prefix=f"sanling-bench-{scenario}-") as tmp:
        env, bodies = prepare(scenario, n, Path(tmp))
        port = free_port()
        server = start_server(env, port, workers)
        try:
            warm_started = time.perf_counter()
            wait_for_workers(port, workers)
            bearer = token(port)
            # warm-up: a few requests per worker, each on a new connection so that all workers get some
            # (first-use caches: calendar, profiles, catalogues)
            _, _, errors, _ = asyncio.run(run_load(port, bearer, bodies, max(40, 20 * workers), 2 * workers,
                                                   requests_per_connection=1))
            if errors:
                raise RuntimeError(f"warm-up failed: {errors[:3]}")
            warm_s = time.perf_counter() - warm_started
            cpu_before_s = process_tree_cpu_s(server.pid)
            if rate_per_s > 0:
                load = run_open_load(port, bearer, bodies, requests, rate_per_s, requests_per_connection)
            else:
                load = run_load(port, bearer, bodies, requests, concurrency, requests_per_connection)
            latencies, app_ms, errors, wall_s = asyncio.run(load)
            server_cpu_s = process_tree_cpu_s(server.pid) - cpu_before_s
        finally:
            server.terminate()
            server.wait(timeout=30)
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:3]}")
    load_name = f"open loop at {rate_per_s:g} req/s" if rate_per_s > 0 else f"{concurrency} closed-loop clients"
    result = {"scenario": scenario, "transformers": 54 if scenario == "demo" else n, "requests": requests,
              "load": load_name, "concurrency": None if rate_per_s > 0 else concurrency,
              "offered_rps": rate_per_s or None, "workers": workers,
              "requests_per_connection": requests_per_connection, "warmup_s": round(warm_s, 2),
              "p50_ms": round(statistics.median(latencies), 2), "p90_ms": round(percentile(latencies, 90), 2),
              "p99_ms": round(percentile(latencies, 99), 2), "max_ms": round(max(latencies), 2),
              "rps": round(requests / wall_s, 1),
              "server_app_p50_ms": round(statistics.median(app_ms), 2) if app_ms else None,
              "server_app_p99_ms": round(percentile(app_ms, 99), 2) if app_ms else None,
              "server_cpu_ms_per_request": round(server_cpu_s * 1000 / requests, 2)}
    print(f"[{scenario}] {requests} requests, {load_name}, {workers} workers: "
          f"p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, "
          f"{result['rps']} req/s, server CPU {result['server_cpu_ms_per_request']} ms/request, "
          f"in the app p50 {result['server_app_p50_ms']} ms, p99 {result['server_app_p99_ms']} ms "
          f"(warm-up {result['warmup_s']} s)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["demo", "city", "all"], default="all")
    parser.add_argument("--transformers", type=int, default=100_000, help="size of the synthetic city")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4, help="closed loop: clients")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop instead: requests per second arriving at random (Poisson), each timed from "
                             "when it was due; e.g. --rate 200 measures the latency at the target throughput")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests-per-connection", type=int, default=20,
                        help="keep-alive requests before a client reconnects (mobile clients do not hold one "
                             "connection for ever; new connections are spread over the workers)")
    args = parser.parse_args(argv)
    scenarios = ["demo", "city"] if args.scenario == "all" else [args.scenario]
    results = [bench(s, args.transformers, args.requests, args.concurrency, args.workers,
                     args.requests_per_connection, args.rate) for s in scenarios]
    print(f"{'scenario':<8} {'transformers':>12} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}   targets: p50 ≤ 15, "
          "p99 ≤ 50, ≥ 200 req/s")
    for r in results:
        print(f"{r['scenario']:<8} {r['transformers']:>12} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['rps']:>8}")
    worst = {"p50_ms": max(r["p50_ms"] for r in results), "p99_ms": max(r["p99_ms"] for r in results),
             "rps": min(r["rps"] for r in results)}
    print(json.dumps({**worst, "targets": {"p50_ms": 15, "p99_ms": 50, "rps": 200}, "scenarios": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
