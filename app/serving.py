"""``sanling serve --workers N``: N uvicorn worker processes, each with its own SO_REUSEPORT socket.

uvicorn's own multi-worker mode shares one listening socket; whichever worker wakes first accepts
a burst of connections, so a few keep-alive clients (a phone fleet behind one NAT, a load balancer's
pool) can all land on one worker while the other idles. With one socket per worker bound with
``SO_REUSEPORT`` the Linux kernel spreads new connections over the workers by a hash of the
connection. The supervisor restarts a worker that dies, and stops all of them on SIGINT/SIGTERM.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from types import FrameType
from typing import TypeVar

from gis.errors import SanlingError

log = logging.getLogger("sanling.serve")
T = TypeVar("T")

#: A worker that dies within this many seconds of its start is not restarted (e.g. the port is taken).
STARTUP_GRACE_S = 10.0
BACKLOG = 2048


def reuseport_supported() -> bool:
    """Whether this platform can bind several sockets to one port (Linux, BSD)."""
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith(("linux", "freebsd"))


def _bound_socket(host: str, port: int) -> socket.socket:
    """The worker's SO_REUSEPORT socket, bound but not listening.

    uvicorn calls ``listen`` once the app's startup is done (the network preloaded); until then the kernel
    gives new connections only to the workers already listening, so none waits behind a worker's load.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int) -> None:
    import uvicorn

    sock = _bound_socket(host, port)
    config = uvicorn.Config("app.main:create_app", factory=True, log_config=None, access_log=False, backlog=BACKLOG)
    uvicorn.Server(config).run(sockets=[sock])


class PortInUseError(SanlingError):
    """Another program listens on the address (every worker would fail to bind)."""

    code = "PORT_IN_USE"
    default_message = "The address is in use by another program."


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUseError` if the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUseError(f"Cannot listen on {host}:{port}: {exc.strerror}.", host=host, port=port) from exc


def serve_workers(host: str, port: int, workers: int) -> int:
    """Run and supervise ``workers`` processes until SIGINT/SIGTERM; return the exit status."""
    check_port_free(host, port)
    context = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.process.BaseProcess] = []
    started: list[float] = []
    stopping = False

    def start(slot: int | None = None) -> None:
        process = context.Process(target=_worker, args=(host, port), name=f"sanling-worker-{len(processes)}")
        process.start()
        if slot is None:
            processes.append(process)
            started.append(time.monotonic())
        else:
            processes[slot], started[slot] = process, time.monotonic()

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                process.terminate()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(workers):
            start()
        while not stopping:
            time.sleep(0.5)
            for slot, process in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started[slot] < STARTUP_GRACE_S:
                    log.error("worker %s exited at start (code %s); stopping", process.name, process.exitcode)
                    stop(signal.SIGTERM, None)
                    break
                log.warning("worker %s died (code %s); restarting", process.name, process.exitcode)
                start(slot)
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
