"""``sanling serve --workers N``: N uvicorn worker processes, each with its own SO_REUSEPORT socket.

uvicorn's own multi-worker mode shares one listening socket; whichever worker wakes first accepts
a burst of connections, so a few keep-alive clients (a phone fleet behind one NAT, a load balancer's
pool) can all land on one worker while the other idles. With one socket per worker bound with
``SO_REUSEPORT`` the Linux kernel spreads new connections over the workers by a hash of the
connection. The supervisor restarts a worker that dies, and stops all of them on SIGINT/SIGTERM.

A worker tells the supervisor when it listens (its app started). A worker that dies before it ever listened
at service start-up (the app cannot import, the port is taken) stops the service: the others would fail alike.
Any later death is restarted after a backoff (:class:`RestartBackoff`: 1 s, doubling up to 30 s per slot,
back to 1 s once a worker has served for a minute), so a crash loop costs one slot while the others serve.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from types import FrameType
from typing import TypeVar

from gis.errors import SanlingError

log = logging.getLogger("sanling.serve")
T = TypeVar("T")

BACKLOG = 2048
APP = "app.main:create_app"
#: How often the supervisor looks at its workers, seconds.
POLL_S = 0.2


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


def uvicorn_proxy_options(trusted_proxies: str) -> dict[str, object]:
    """uvicorn's proxy-header options for ``SANLING_TRUSTED_PROXIES`` (normalised: comma-separated networks).

    uvicorn's default (``--proxy-headers``, ``FORWARDED_ALLOW_IPS`` or 127.0.0.1) would make any client on the
    host, or behind a local proxy, whoever it names in X-Forwarded-For. Here only the configured proxies are
    believed (uvicorn then sets the client and scheme from their headers); with none, the client is the peer.

    >>> uvicorn_proxy_options("")
    {'proxy_headers': False}
    >>> uvicorn_proxy_options("10.0.0.0/8,127.0.0.1/32")
    {'proxy_headers': True, 'forwarded_allow_ips': ['10.0.0.0/8', '127.0.0.1/32']}
    """
    if not trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted_proxies.split(",")}


def _worker(host: str, port: int, ready: Event, app: str = APP, trusted_proxies: str = "") -> None:
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # the app's startup is done and the socket listens
                ready.set()

    sock = _bound_socket(host, port)
    config = uvicorn.Config(app, factory=True, log_config=None, access_log=False, backlog=BACKLOG,
                            **uvicorn_proxy_options(trusted_proxies))
    Server(config).run(sockets=[sock])


@dataclass
class RestartBackoff:
    """The delay before a slot's worker is restarted: doubling with each death in a row, capped.

    A death after the worker served for ``healthy_s`` starts a new count.

    >>> backoff = RestartBackoff(base_s=1.0, cap_s=5.0, healthy_s=60.0)
    >>> [backoff.after_exit(served_s=3.0) for _ in range(5)], backoff.after_exit(served_s=120.0)
    ([1.0, 2.0, 4.0, 5.0, 5.0], 1.0)
    """

    base_s: float = 1.0
    cap_s: float = 30.0
    healthy_s: float = 60.0
    deaths_in_a_row: int = 0

    def after_exit(self, served_s: float) -> float:
        """Count a death after the worker served ``served_s`` seconds (0: never listened); return the delay."""
        if served_s >= self.healthy_s:
            self.deaths_in_a_row = 0
        self.deaths_in_a_row += 1
        return min(self.cap_s, self.base_s * 2.0 ** (self.deaths_in_a_row - 1))


@dataclass
class _Slot:
    """One worker place: its current process, when that one listened, and its restart backoff."""

    name: str
    process: multiprocessing.process.BaseProcess
    ready: Event
    launches: int = 1
    ready_at: float | None = None
    restart_at: float | None = None  # set while the slot waits out its backoff
    backoff: RestartBackoff = field(default_factory=RestartBackoff)


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


def serve_workers(host: str, port: int, workers: int, app: str = APP, trusted_proxies: str = "") -> int:
    """Run and supervise ``workers`` processes until SIGINT/SIGTERM; return the exit status.

    1 when a worker never started at service start-up (the service then stops), else 0 once every worker
    stopped cleanly. ``app`` is the uvicorn factory the workers serve; ``trusted_proxies`` the normalised
    ``SANLING_TRUSTED_PROXIES`` (:func:`uvicorn_proxy_options`).
    """
    check_port_free(host, port)
    context = multiprocessing.get_context("spawn")
    slots: list[_Slot] = []
    stopping = False
    never_started = False

    def launch(index: int) -> tuple[multiprocessing.process.BaseProcess, Event]:
        ready = context.Event()
        process = context.Process(target=_worker, args=(host, port, ready, app, trusted_proxies),
                                  name=f"sanling-worker-{index}")
        process.start()
        return process, ready

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for slot in slots:
            if slot.process.is_alive() and slot.process.pid is not None:
                slot.process.terminate()

    def check(slot: _Slot, now: float) -> None:
        nonlocal never_started
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                slot.process, slot.ready = launch(slots.index(slot))
                slot.launches, slot.ready_at, slot.restart_at = slot.launches + 1, None, None
            return
        if slot.ready_at is None and slot.ready.is_set():
            slot.ready_at = now
        if slot.process.is_alive():
            return
        code = slot.process.exitcode
        if slot.ready_at is None and slot.launches == 1:
            log.error("worker %s never started (exit code %s); stopping", slot.name, code,
                      extra={"worker": slot.name, "exit_code": code})
            never_started = True
            stop(signal.SIGTERM, None)
            return
        served_s = now - slot.ready_at if slot.ready_at is not None else 0.0
        delay = slot.backoff.after_exit(served_s)
        slot.restart_at = now + delay
        log.warning("worker %s died (exit code %s) after serving %.1f s; restarting in %.1f s (%d deaths in a row)",
                    slot.name, code, served_s, delay, slot.backoff.deaths_in_a_row,
                    extra={"worker": slot.name, "exit_code": code, "served_s": round(served_s, 1),
                           "backoff_s": delay, "deaths_in_a_row": slot.backoff.deaths_in_a_row})

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index in range(workers):
            process, ready = launch(index)
            slots.append(_Slot(name=process.name, process=process, ready=ready))
        while not stopping:
            time.sleep(POLL_S)
            for slot in slots:
                if stopping:
                    break
                check(slot, time.monotonic())
        for slot in slots:
            slot.process.join(timeout=30)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
        # a slot waiting out its backoff holds the worker that died; it is not a failure of the shutdown
        failed = [slot.process.exitcode for slot in slots
                  if slot.restart_at is None and slot.process.exitcode not in (0, -signal.SIGTERM)]
        return 1 if never_started or failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
