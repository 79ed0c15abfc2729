"""The README's two quick-start commands, exercised by CI itself (issue 2).

Command 2 is what CI runs (`.ci/run` must call exactly it). Command 1 is run here twice against a
temporary data directory on a free port: it must serve the demo district both times.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the quick start has one sh code block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == [commands[1]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exercise_demo(port: int) -> dict[str, object]:
    """Health, then a demo account's token, a source search and a design through the served API."""
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        health = dict(json.loads(response.read()))
    form = urllib.parse.urlencode({"username": "demo-planner", "password": "sanling-demo"}).encode()
    with urllib.request.urlopen(f"{base}/api/v1/auth/token", data=form, timeout=30) as response:
        token = json.loads(response.read())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    search = urllib.request.Request(f"{base}/api/v1/sources?lon=106.4883433&lat=29.499325&kw=10", headers=headers)
    with urllib.request.urlopen(search, timeout=30) as response:
        assert json.loads(response.read())["feasible"] is True
    design = urllib.request.Request(f"{base}/api/v1/designs", method="POST", headers={
        **headers, "Content-Type": "application/json"}, data=json.dumps(
        {"lon": 106.4883433, "lat": 29.499325, "kw": 10, "phases": 1}).encode())
    with urllib.request.urlopen(design, timeout=30) as response:
        assert response.status == 201 and json.loads(response.read())["job_class"] == "direct_meter"
    for page in ("/map", "/static/map.js"):  # pages and static files, served by sanling serve
        with urllib.request.urlopen(f"{base}{page}", timeout=30) as response:
            assert response.status == 200 and len(response.read()) > 100
    return health


def _serve_once(command: str, data_dir: Path) -> dict[str, object]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATA_DIR": str(data_dir), "SANLING_PORT": str(port), "SANLING_LOG_LEVEL": "WARNING"})
    process = subprocess.Popen(command, shell=True, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else "exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    pass
            except OSError:
                time.sleep(0.5)
                continue
            return _exercise_demo(port)
        raise AssertionError("command 1 did not serve /healthz within 300 s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_command_one_serves_the_demo_district_and_can_run_twice(tmp_path: Path) -> None:
    """Issue 2: command 1 serves the demo (twice, on the same data dir) and its demo accounts work."""
    command = _quick_start_commands()[0]
    for _ in range(2):
        health = _serve_once(command, tmp_path)
        assert health["status"] == "ok"
        assert health["database"] == "sqlite"
        counts = health["asset_counts"]
        assert isinstance(counts, dict) and counts["transformers"] >= 40 and counts["grid_areas"] >= 4
