"""One request at a time per worker (``SANLING_REQUEST_CONCURRENCY=1`` under ``sanling serve``) never deadlocks
on the database: a request waiting for its turn holds no thread, so the request holding SQLite's write lock
always finds threads to validate its answer and close its session (issue 11 item 4). Before, with one
request thread, the next request took the only thread, waited for the write lock, and the holder waited
for the thread: 30 s (SQLite's busy timeout) per collision.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.app.test_serving import _free_port, _wait_up

SANLING = str(Path(sys.executable).parent / "sanling")
REPO = Path(__file__).resolve().parents[2]


def test_back_to_back_writers_on_one_request_thread_do_not_wait_for_the_busy_timeout(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATA_DIR": str(tmp_path), "SANLING_LOG_LEVEL": "WARNING", "SANLING_JOBS_ENABLED": "false",
                "SANLING_PASSWORD_HASH_PROFILE": "fast"})
    for command in (["db", "upgrade"], ["load-demo", "--with-users"]):
        subprocess.run([SANLING, *command], env=env, cwd=REPO, check=True, capture_output=True)
    server = subprocess.Popen([SANLING, "serve", "--port", str(port), "--workers", "1"], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    form = urllib.parse.urlencode({"username": "demo-planner", "password": "sanling-demo"}).encode()

    def sign_in(_: int) -> float:
        started = time.monotonic()
        with urllib.request.urlopen(base + "/api/v1/auth/token", data=form, timeout=60) as response:
            assert response.status == 200
        return time.monotonic() - started

    try:
        _wait_up(base + "/healthz", server)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            waits = list(pool.map(sign_in, range(24)))
        # before: a sign-in waited 30 s (SQLite's busy timeout) whenever it overtook the previous one's close
        assert time.monotonic() - started < 15.0, waits
        assert max(waits) < 10.0, waits
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
