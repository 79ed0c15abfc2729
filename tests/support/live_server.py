"""The app served by uvicorn on a free loopback port, for tests that drive it from a browser or a socket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.throwaway_pg import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
#: How long the server may take to answer its first ``/healthz``.
STARTUP_TIMEOUT_S = 60


@contextmanager
def served_uvicorn(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Run ``uvicorn app.main:create_app --factory`` with ``env`` added to this environment; yield its base URL.

    Waits for ``/healthz`` (failing with the server's log if it exits or does not come up), and stops the server
    on exit. Its output goes to ``log_path``.
    """
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                                    "--host", "127.0.0.1", "--port", str(port)], cwd=REPO_ROOT,
                                   env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=15)
