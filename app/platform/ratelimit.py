"""A per-client token bucket for the public endpoints (in process: each worker keeps its own buckets)."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar

from fastapi import Request

from app.platform.errors import ErrorStatuses
from gis.errors import SanlingError

__all__ = ["RateLimitedError", "TokenBuckets", "public_rate_limit"]

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


def public_rate_limit(request: Request) -> None:
    """FastAPI dependency: one token per request from the client's IP, or ``RateLimitedError`` (429).

    The buckets are the app's (``app.state.public_buckets``, made by ``create_app``). The client is
    ``request.client.host``; behind a reverse proxy run uvicorn with ``--proxy-headers`` and
    ``--forwarded-allow-ips`` so that it is the real client, not the proxy.
    """
    buckets: TokenBuckets = request.app.state.public_buckets
    client = request.client.host if request.client is not None else "unknown"
    wait_s = buckets.take(client)
    if wait_s > 0:
        raise RateLimitedError(max(1, math.ceil(wait_s)) if math.isfinite(wait_s) else 3600)
