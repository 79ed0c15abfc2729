"""The README's shell blocks, run as written (issue 2; issue 17 item 1).

Command 2 is what CI runs (`.ci/run` must call exactly it). Command 1 is run here twice against a
temporary data directory on a free port: it must serve the demo district both times.

Issue 17 item 1: every other shell block of the README (the CLI examples, the mobile flow from the application
to power-on, the staff API) runs verbatim, in README order, each in its own `bash -euo pipefail` from the project
folder, against command 1 serving a fresh demo database. The blocks see only what a fresh Debian 12 has after
command 1: coreutils, grep, sed, curl and the project's `.venv` (so `jq`, `uuidgen` or a `sanling` not put on
PATH by the block itself fail the test), and only `SANLING_DATA_DIR`/`SANLING_PORT` of the test's server. A
block is not run only when the line before its fence is `<!-- readme-test: not run as a block: <why> -->`;
that list is pinned below.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
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


@contextlib.contextmanager
def _serving(command: str, data_dir: Path, **settings: str) -> Iterator[int]:
    """Run ``command`` (command 1) on ``data_dir`` and a free port; yield the port once /healthz answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATA_DIR": str(data_dir), "SANLING_PORT": str(port), "SANLING_LOG_LEVEL": "WARNING",
                **settings})
    process = subprocess.Popen(command, shell=True, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while True:
            assert time.time() < deadline, "command 1 did not serve /healthz within 300 s"
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else "exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def _serve_once(command: str, data_dir: Path) -> dict[str, object]:
    with _serving(command, data_dir) as port:
        return _exercise_demo(port)


def test_command_one_serves_the_demo_district_and_can_run_twice(tmp_path: Path) -> None:
    """Issue 2: command 1 serves the demo (twice, on the same data dir) and its demo accounts work."""
    command = _quick_start_commands()[0]
    for _ in range(2):
        health = _serve_once(command, tmp_path)
        assert health["status"] == "ok"
        assert health["database"] == "sqlite"
        counts = health["asset_counts"]
        assert isinstance(counts, dict) and counts["transformers"] >= 40 and counts["grid_areas"] >= 4


# --- issue 17 item 1: every shell block runs verbatim ------------------------------------------------------------

NOT_RUN = re.compile(r"<!-- readme-test: not run as a block: (?P<why>[^>]+?) -->")
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```$", re.S | re.M)
SHELLS = {"", "sh", "bash", "shell", "console"}
#: What a fresh Debian 12 has after command 1 that the blocks may call (Essential packages, and curl).
FRESH_DEBIAN_TOOLS = ("bash", "sh", "cat", "cut", "tr", "tail", "head", "ls", "mktemp", "env", "sleep", "grep",
                      "sed", "curl")


@dataclass(frozen=True)
class Block:
    section: str
    line: int
    body: str
    not_run: str | None


def _shell_blocks() -> list[Block]:
    """The README's shell code blocks in order, with the section they are in and their not-run reason."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = []
    for fence in FENCE.finditer(readme):
        if fence.group("lang").strip() not in SHELLS:
            continue
        before = readme[:fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.fullmatch(before.strip())
        section = re.findall(r"^## (.+)$", readme[:fence.start()], re.M)[-1]
        blocks.append(Block(section, readme.count("\n", 0, fence.start()) + 1, fence.group("body"),
                            marker.group("why") if marker else None))
    return blocks


def test_only_the_quick_start_is_not_run_and_it_says_why() -> None:
    """Issue 17 item 1: the list of README blocks the test does not run is small, pinned and justified."""
    blocks = _shell_blocks()
    assert [(b.section, bool(b.not_run)) for b in blocks if b.not_run] == [
        ("Quick start (fresh Debian 12 / Ubuntu, root or sudo)", True)]
    assert {b.section for b in blocks if not b.not_run} >= {
        "CLI", "Mobile flow (customer app and project manager terminal)", "Core API (staff)"}


def _fresh_debian_path(folder: Path) -> str:
    """A PATH of only the tools a fresh Debian 12 has after command 1 (no jq, uuidgen, system python3 or sanling)."""
    folder.mkdir()
    for tool in FRESH_DEBIAN_TOOLS:
        found = shutil.which(tool, path="/usr/local/bin:/usr/bin:/bin")
        assert found, f"{tool} is missing on this machine"
        (folder / tool).symlink_to(found)
    return str(folder)


def _run_block(block: Block, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.body], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
    assert result.returncode == 0, (f"README.md line {block.line} ({block.section}) exited {result.returncode}:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def test_every_readme_block_runs_verbatim_against_command_one(tmp_path: Path) -> None:
    """Issue 17 item 1: the CLI examples, the mobile flow to power-on and the staff API run as written.

    Each block runs unmodified through `bash -euo pipefail` (a failing `curl -fsS` fails the block) against
    command 1 serving a fresh demo database; then the database shows what the blocks claim: the application is
    powered on by the pin's project manager `demo-pm-02` (with its 户号 and start of construction), every
    mutating call carried an `Idempotency-Key`, the deed came through the `document` field and the photos were
    stored.
    """
    blocks = [b for b in _shell_blocks() if not b.not_run]
    command_one = _quick_start_commands()[0]
    data_dir = tmp_path / "data"
    fast = {"SANLING_PASSWORD_HASH_PROFILE": "fast"}  # the suite's argon2 cost (13 demo accounts, 2 sign-ins, 2 keys)
    with _serving(command_one, data_dir, **fast) as port:
        env = {"HOME": str(tmp_path), "LANG": "C.UTF-8", "PATH": _fresh_debian_path(tmp_path / "bin"),
               "SANLING_DATA_DIR": str(data_dir), "SANLING_PORT": str(port), **fast}
        outputs = {block.section: _run_block(block, env).stdout for block in blocks}

    assert "demo-pm-05" in outputs["CLI"]  # the user the CLI block created is in its `user list`
    flow = outputs["Mobile flow (customer app and project manager terminal)"]
    assert "meter_and_energise\npowered_on\n" in flow
    staff = outputs["Core API (staff)"]
    assert '"feasible":true' in staff and " 1 direct_meter\n" in staff
    assert all(re.search(rf" [1-9][0-9]* [A-Z][a-z]{{2}} .* {name}$", staff, re.M) for name in (
        "drawing.svg", "drawing.dxf", "bom.csv", "bom.xlsx"))  # `ls -l`: none of the four files is empty
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'sanling.sqlite'}?mode=ro", uri=True)) as db:
        application = db.execute(
            "SELECT a.status, u.username, a.documents_complete, a.account_number, "
            "a.construction_started_at IS NOT NULL FROM applications a "
            "JOIN users u ON u.id = a.project_manager_user_id").fetchall()
        assert application == [("powered_on", "demo-pm-02", 1, "5001234567", 1)]
        assert [kind for (kind,) in db.execute("SELECT kind FROM application_documents ORDER BY id")] == [
            "identity", "property_proof"]
        photos = dict(db.execute("SELECT step_code, json_array_length(photos) FROM application_steps"))
        assert photos == {"accept_and_sign": 0, "site_survey": 1, "design_and_bom": 0, "construction_prep": 1,
                          "construction": 1, "meter_and_energise": 1}
        keyed = sorted(re.sub(r"/\d+", "/{id}", path) for (path,) in db.execute(
            "SELECT path FROM idempotency_keys WHERE method = 'POST'"))
        assert keyed == sorted([
            "/api/v1/applications", "/api/v1/applications/{id}/documents", "/api/v1/terminal/jobs/{id}/adjustments",
            "/api/v1/terminal/jobs/{id}/confirm", "/api/v1/terminal/jobs/{id}/construction-start",
            *["/api/v1/terminal/jobs/{id}/steps/" + step for step in (
                "site_survey", "construction_prep", "construction", "meter_and_energise")]])


def test_every_demo_account_the_readme_names_is_in_the_demo_loader() -> None:
    """Issue 17 item 1: the README named accounts (`shop.owner`, `pm.jinshan`) that `load-demo` never made.

    Every `demo-…` name in the README (`demo-cm-01…04` counted as its four) is in `fixtures/demo_users.toml`,
    which `sanling load-demo --with-users` (command 1) loads, unless a README block creates it.
    """
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\bdemo-[a-z]+(?:-\d+)?\b", readme))
    for prefix, first, last in re.findall(r"\b(demo-[a-z]+-)(\d+)…(\d+)\b", readme):
        named |= {f"{prefix}{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)}
    created = set(re.findall(r"sanling user create (demo-[a-z0-9-]+)", readme))
    with (ROOT / "fixtures" / "demo_users.toml").open("rb") as demo_users:
        loaded = {user["username"] for user in tomllib.load(demo_users)["users"]}
    assert {"demo-customer", "demo-pm-02", "demo-cm-02", "demo-cm-04"} <= named
    assert named - created <= loaded, sorted(named - created - loaded)
