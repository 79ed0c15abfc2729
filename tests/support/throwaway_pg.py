"""A throwaway PostgreSQL 15 + PostGIS 3 cluster in a temporary folder, for tests and benchmarks.

It never touches a system cluster: ``initdb`` runs in a fresh temp dir, the server listens only on
127.0.0.1 on a free port, and everything is removed when the context exits. As root, the server
runs as the ``postgres`` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"),)
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
DB_NAME = "sanling"


class ThrowawayPostgisError(RuntimeError):
    """The throwaway cluster could not be created or started."""


def find_pg_bin() -> Path:
    """Return the folder holding PostgreSQL 15's ``initdb`` and ``pg_ctl``."""
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists():
            return candidate
    raise ThrowawayPostgisError(
        "PostgreSQL 15 server binaries not found in /usr/lib/postgresql/15/bin; "
        "install postgresql-15 and postgresql-15-postgis-3 (scripts/bootstrap.sh --with-postgis does)"
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(user: str | None, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


@contextlib.contextmanager
def throwaway_postgis(*, fsync: bool = False) -> Iterator[str]:
    """Start a private PostGIS cluster; yield its SQLAlchemy URL; stop and delete it on exit.

    Parameters
    ----------
    fsync
        Keep fsync on (benchmarks that compare durability-relevant writes may want it); tests
        turn it off because the data is thrown away.
    """
    if not POSTGIS_CONTROL.exists():
        raise ThrowawayPostgisError(f"PostGIS is not installed ({POSTGIS_CONTROL} missing)")
    pg_bin = find_pg_bin()
    run_user = "postgres" if os.geteuid() == 0 else None
    tmp = Path(tempfile.mkdtemp(prefix="sanling-pg-"))
    data_dir = tmp / "data"
    socket_dir = tmp / "sock"
    socket_dir.mkdir()
    if run_user:
        entry = pwd.getpwnam(run_user)
        for path in (tmp, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = free_port()
    started = False
    try:
        _run_as(run_user, [str(pg_bin / "initdb"), "-D", str(data_dir), "-U", "sanling",
                           "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={socket_dir} "
                   f"-c fsync={'on' if fsync else 'off'} -c synchronous_commit={'on' if fsync else 'off'} "
                   "-c full_page_writes=off -c max_connections=300 -c shared_buffers=256MB")
        _run_as(run_user, [str(pg_bin / "pg_ctl"), "-D", str(data_dir), "-l", str(tmp / "server.log"),
                           "-o", options, "-w", "-t", "60", "start"])
        started = True
        _run_as(None, ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "sanling", "-d", "postgres",
                       "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE DATABASE {DB_NAME}"])
        _run_as(None, ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "sanling", "-d", DB_NAME,
                       "-v", "ON_ERROR_STOP=1", "-qc", "CREATE EXTENSION postgis"])
        yield f"postgresql+psycopg://sanling@127.0.0.1:{port}/{DB_NAME}"
    except subprocess.CalledProcessError as exc:
        log = (tmp / "server.log").read_text(errors="replace")[-2000:] if (tmp / "server.log").exists() else ""
        raise ThrowawayPostgisError(f"{exc.cmd[0]} failed: {exc.stderr.strip()} {log}") from exc
    finally:
        if started:
            with contextlib.suppress(subprocess.CalledProcessError):
                _run_as(run_user, [str(pg_bin / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                shutil.rmtree(tmp)
                break
            except OSError:
                time.sleep(0.2)
