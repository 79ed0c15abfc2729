"""A per-client token bucket for the public endpoints (in process: each worker keeps its own buckets).

The client is the TCP peer, unless the peer is one of ``SANLING_TRUSTED_PROXIES``: then it is the right-most
address of ``X-Forwarded-For`` (else of ``Forwarded``) that is not a trusted proxy, so a client cannot choose
its own bucket by sending the header itself (:func:`client_address`).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from fastapi import Request

from app.platform.errors import ErrorStatuses
from gis.errors import SanlingError

__all__ = ["RateLimitedError", "TokenBuckets", "client_address", "public_rate_limit", "request_client_address"]

#: Clients remembered per worker; the least recently seen is forgotten first (it then starts with a full bucket).
MAX_CLIENTS = 100_000


class RateLimitedError(SanlingError):
    """The client sent more requests than its bucket allows (HTTP 429 with ``Retry-After``)."""

    code = "RATE_LIMITED"
    default_message = "Too many requests; retry after the number of seconds in Retry-After."
    response_headers: ClassVar[dict[str, str]] = {}

    def __init__(self, retry_after_s: int, **details: object) -> None:
        super().__init__(retry_after_s=retry_after_s, **details)
        self.response_headers = {"Retry-After": str(retry_after_s)}


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = (
    (RateLimitedError, 429),
)


class TokenBuckets:
    """Token buckets keyed by client: ``burst`` tokens at most, refilled at ``rate_per_minute``.

    Parameters
    ----------
    rate_per_minute
        Sustained requests per minute per client.
    burst
        Requests a client may send at once after a quiet period.
    clock
        Monotonic seconds (tests pass a fake clock).
    """

    def __init__(self, rate_per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """Take one token for ``client``; return 0 when allowed, else the seconds until a token is back."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            wait_s = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait_s = (1.0 - tokens) / self.rate_per_s if self.rate_per_s > 0 else math.inf
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return wait_s


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(token: str) -> IPAddress | None:
    """The IP address in a forwarding-header element (``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:443``)."""
    token = token.strip().strip('"')
    if token.startswith("["):
        token = token[1:token.find("]")] if "]" in token else token
    elif token.count(":") == 1:
        token = token.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(token)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 (a dual-stack socket) is 10.0.0.1
    return address


def _forwarded_hops(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The addresses a request passed through, the client first: X-Forwarded-For, else RFC 7239 ``for=``."""
    headers = list(headers)
    hops = [hop.strip() for name, value in headers if name.lower() == "x-forwarded-for" for hop in value.split(",")]
    if not hops:
        hops = [pair.split("=", 1)[1] for name, value in headers if name.lower() == "forwarded"
                for element in value.split(",") for pair in (p.strip() for p in element.split(";"))
                if pair.lower().startswith("for=")]
    return [hop for hop in hops if hop]


def client_address(peer: str | None, headers: Iterable[tuple[str, str]], trusted: Sequence[Network]) -> str:
    """The client a request is counted for: ``peer`` unless it is a trusted proxy, then the forwarded client.

    From a trusted proxy it is the right-most address of the forwarding headers that is not itself a trusted
    proxy (each proxy appends the address it got the request from; what the client sent comes first and is
    never believed); when all are trusted, the left-most one.

    >>> trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    >>> client_address("10.0.0.5", [("x-forwarded-for", "6.6.6.6, 198.51.100.7")], trusted)
    '198.51.100.7'
    >>> client_address("203.0.113.9", [("x-forwarded-for", "198.51.100.7")], trusted)
    '203.0.113.9'
    """
    address = _address(peer) if peer else None
    if address is None:
        return peer or "unknown"
    if not any(address in network for network in trusted):
        return str(address)
    hops = _forwarded_hops(headers)
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            return hop.strip().strip('"')[:64]  # e.g. for=unknown or an obfuscated name from the proxy
        if not any(hop_address in network for network in trusted):
            return str(hop_address)
    first = _address(hops[0]) if hops else None
    return str(first or address)


def request_client_address(request: Request) -> str:
    """:func:`client_address` of a request, with the app's ``SANLING_TRUSTED_PROXIES``."""
    settings = request.app.state.settings
    peer = request.client.host if request.client is not None else None
    return client_address(peer, request.headers.items(), settings.trusted_proxy_networks)


def public_rate_limit(request: Request) -> None:
    """FastAPI dependency: one token per request from the client's address, or ``RateLimitedError`` (429).

    The buckets are the app's (``app.state.public_buckets``, made by ``create_app``); the client is
    :func:`request_client_address` (the peer, or behind a trusted proxy the address it forwarded).
    """
    buckets: TokenBuckets = request.app.state.public_buckets
    wait_s = buckets.take(request_client_address(request))
    if wait_s > 0:
        raise RateLimitedError(max(1, math.ceil(wait_s)) if math.isfinite(wait_s) else 3600)
