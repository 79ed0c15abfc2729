"""Forwarding headers are believed only from SANLING_TRUSTED_PROXIES (issue 13 item 8).

Before, ``sanling serve`` ran uvicorn with its default ``--proxy-headers`` trusting 127.0.0.1, so a client on
the host (or anything behind a local proxy) rotated X-Forwarded-For and 60 of 60 public requests passed.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.network.loading import load_demo
from app.platform import migrate
from app.platform.db import create_db_engine
from app.platform.ratelimit import client_address
from app.serving import reuseport_supported
from app.settings import Settings, parse_trusted_proxies, settings_error

SANLING = str(Path(sys.executable).parent / "sanling")
PATH = "/api/v1/public/capacity?lon=106.5&lat=29.5"
BURST = 3
PROXY = "127.0.0.2"  # a trusted reverse proxy on the same host: loopback source addresses other than 127.0.0.1


def _nets(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return parse_trusted_proxies(value)


# ---- the client-address function --------------------------------------------------------------------------------

def test_no_trusted_proxy_means_the_peer_whatever_the_headers_say() -> None:
    headers = [("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.2")]
    assert client_address("127.0.0.1", headers, ()) == "127.0.0.1"
    assert client_address("203.0.113.5", headers, _nets("10.0.0.0/8")) == "203.0.113.5"  # peer not a proxy


def test_from_a_trusted_proxy_the_right_most_untrusted_address_of_x_forwarded_for() -> None:
    trusted = _nets("10.0.0.0/8, 127.0.0.1")
    # the client prepended a spoofed address; the proxies appended the real one and then themselves
    headers = [("x-forwarded-for", "1.2.3.4, 198.51.100.7"), ("x-forwarded-for", "10.1.2.3")]
    assert client_address("127.0.0.1", headers, trusted) == "198.51.100.7"
    assert client_address("10.9.9.9", [("x-forwarded-for", "198.51.100.7:5123")], trusted) == "198.51.100.7"
    assert client_address("10.9.9.9", [("x-forwarded-for", "[2001:db8::1]:443")], trusted) == "2001:db8::1"
    assert client_address("10.9.9.9", [("x-forwarded-for", "10.0.0.1, 10.0.0.2")], trusted) == "10.0.0.1"  # all ours
    assert client_address("10.9.9.9", [], trusted) == "10.9.9.9"  # no header: the proxy itself
    assert client_address("::ffff:10.9.9.9", [("x-forwarded-for", "198.51.100.8")], trusted) == "198.51.100.8"


def test_the_forwarded_header_when_there_is_no_x_forwarded_for() -> None:
    trusted = _nets("10.0.0.0/8")
    headers = [("forwarded", 'for=1.2.3.4;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.1')]
    assert client_address("10.0.0.1", headers, trusted) == "2001:db8:cafe::17"
    assert client_address("10.0.0.1", [("forwarded", "For=192.0.2.60;proto=http")], trusted) == "192.0.2.60"
    both = [("forwarded", "for=192.0.2.60"), ("x-forwarded-for", "198.51.100.9")]
    assert client_address("10.0.0.1", both, trusted) == "198.51.100.9"  # X-Forwarded-For first, as uvicorn


def test_the_setting_is_checked_at_start_naming_it(tmp_path: Path) -> None:
    assert Settings(trusted_proxies=" 10.0.0.0/8 ,127.0.0.1,::1 ").trusted_proxies == "10.0.0.0/8,127.0.0.1/32,::1/128"
    assert Settings().trusted_proxies == "" and Settings().trusted_proxy_networks == ()
    for bad in ("localhost", "10.0.0.0/33", "10.0.0.1/8", "*"):
        with pytest.raises(ValidationError) as caught:
            Settings(trusted_proxies=bad)
        error = settings_error(caught.value)
        assert "SANLING_TRUSTED_PROXIES" in error.message and bad in error.message
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATA_DIR": str(tmp_path), "SANLING_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"})
    result = subprocess.run([SANLING, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SETTINGS_INVALID" in result.stderr and "SANLING_TRUSTED_PROXIES" in result.stderr


# ---- through the real server ------------------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, source: str, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", PATH, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``sanling serve`` (uvicorn.run with one worker, the SO_REUSEPORT supervisor with two) trusting 127.0.0.2."""
    workers = int(request.param)
    if workers > 1 and not reuseport_supported():
        pytest.skip("SO_REUSEPORT is Linux/BSD only")
    tmp_path = tmp_path_factory.mktemp("proxies")
    url = f"sqlite:///{tmp_path / 'proxies.sqlite'}"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with engine.begin() as conn:
        load_demo(conn)
    engine.dispose()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_") and k != "FORWARDED_ALLOW_IPS"}
    env.update({"SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(tmp_path), "SANLING_LOG_LEVEL": "WARNING",
                "SANLING_JOBS_ENABLED": "false", "SANLING_PUBLIC_RATE_BURST": str(BURST),
                "SANLING_PUBLIC_RATE_PER_MINUTE": "0.01", "SANLING_TRUSTED_PROXIES": PROXY})
    process = subprocess.Popen([SANLING, "serve", "--port", str(port), "--workers", str(workers)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            assert process.poll() is None, "the server exited"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                assert time.time() < deadline, "server did not come up"
                time.sleep(0.2)
        time.sleep(1.0 if workers > 1 else 0.0)  # the second worker listens too
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_a_rotating_x_forwarded_for_from_an_untrusted_peer_is_limited(server: int) -> None:
    port = server
    statuses = [_get(port, "127.0.0.1", {"X-Forwarded-For": f"198.51.100.{i}",
                                          "Forwarded": f"for=203.0.113.{i}"}) for i in range(20)]
    # one bucket per worker for the real peer: at most the burst of each worker passes
    assert statuses.count(200) <= BURST * 2 and statuses.count(429) >= 20 - BURST * 2, statuses


def test_behind_a_trusted_proxy_the_header_client_is_limited_not_the_proxy(server: int) -> None:
    port = server
    rotating = [_get(port, PROXY, {"X-Forwarded-For": f"1.2.3.4, 192.0.2.{i}"}) for i in range(1, 21)]
    assert rotating == [200] * 20  # twenty clients behind the proxy, one request each: none shares a bucket
    one_client = [_get(port, PROXY, {"X-Forwarded-For": f"10.{i}.0.1, 192.0.2.200"}) for i in range(20)]
    # the spoofed left part changes, the address the proxy appended does not: that client is limited
    assert one_client.count(200) <= BURST * 2 and one_client.count(429) >= 20 - BURST * 2, one_client
