"""Structured JSON logs with a request id, and Prometheus metrics (multi-process aware)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
import uuid

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.errors import REQUEST_ID_SCOPE_KEY, internal_error_response

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUESTS = Counter("sanling_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "sanling_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any ``extra``."""

    _RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        payload: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in self._RESERVED})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", *, json_logs: bool = True) -> None:
    """Send Sanling's and uvicorn's logs to stderr, as JSON when ``json_logs``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    if not json_logs:  # a record logged with extra={"request_id": ...} keeps its own
        handler.addFilter(lambda record: hasattr(record, "request_id")
                          or setattr(record, "request_id", request_id_var.get()) or True)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class RequestContextMiddleware:
    """Pure ASGI middleware: request id (``X-Request-ID`` in or new), timing, access log, metrics.

    Pure ASGI rather than ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware): no extra task
    and response stream per request, and the request id context variable reaches the endpoint.

    Every answer carries ``X-Request-ID``, errors included. An exception that the app's handlers did not
    turn into an answer is answered here (500 ``INTERNAL_ERROR``, logged with the request id and traceback)
    instead of in Starlette's outer ServerErrorMiddleware, which runs after this middleware has reset the
    request id and re-raises to the server, which logs the traceback a second time without the id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.access_log = logging.getLogger("sanling.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call; non-HTTP scopes pass through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = int(message["status"]), True
                # Server-Timing (W3C): the time the app took to produce the response, so a client can tell
                # server work from network and queueing time.
                app_ms = (time.perf_counter() - started) * 1000.0
                headers = list(message.get("headers", ()))
                if not any(key.lower() == b"x-request-id" for key, _ in headers):
                    headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = [*headers, (b"server-timing", f"app;dur={app_ms:.2f}".encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:  # too late for a 500: log it here; the server closes the unfinished answer
                logging.getLogger("sanling.errors").error(
                    "unhandled error after the answer started on %s %s", scope.get("method", ""),
                    scope.get("path", ""), exc_info=exc)
            else:
                await internal_error_response(Request(scope), exc)(scope, receive, send_with_id)
        finally:
            elapsed_s = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed_s)
            if self.access_log.isEnabledFor(logging.INFO):
                self.access_log.info("%s %s %s", method, scope.get("path", ""), status,
                                     extra={"status": status, "duration_ms": round(elapsed_s * 1000, 3)})
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")[:200] or None
    return None


def install_request_middleware(app: FastAPI) -> None:
    """Attach :class:`RequestContextMiddleware` (request id, timing, access log, metrics)."""
    app.add_middleware(RequestContextMiddleware)


def metrics_response() -> Response:
    """Render Prometheus metrics, aggregated over workers when ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
