"""FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.api import (
    applications,
    audit,
    auth,
    capacity,
    designs,
    docs_pages,
    features,
    health,
    imports,
    map_page,
    notifications,
    public,
    reports,
    sources,
    terminal,
    tiles,
)
from app.identity.auth import Role, authenticate_before_body, check_credentials
from app.network.import_jobs import ImportJobRunner
from app.network.siting import SitingEngine
from app.planning.capacity import SnapshotCache
from app.planning.disclosure import PublicDisclosure
from app.planning.mapdata import MapSnapshot
from app.planning.tiles import TileCache
from app.platform.body_limits import install_body_limits
from app.platform.db import READ_ONLY_OPTION, create_db_engine, make_session_factory
from app.platform.errors import add_exception_handlers
from app.platform.jobs import JobRunner
from app.platform.observability import configure_logging, install_request_middleware
from app.platform.params import install_contract
from app.platform.ratelimit import TokenBuckets
from app.settings import Settings, get_settings
from app.wiring import error_table, service_jobs

log = logging.getLogger("sanling.app")

API_DESCRIPTION = """
Survey-and-design service for 三零 (zero visits, zero approvals, zero investment) low-voltage grid
connections of small and micro enterprises. Every error answers `{code, message, details}` with a
stable machine-readable `code`.
"""


def _operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def preload_network(siting_engine: SitingEngine, engine: Engine) -> None:
    """Build the worker's siting snapshot now (``SANLING_PRELOAD_NETWORK``), before the worker serves.

    A database without the schema yet (``sanling migrate`` not run) is logged and skipped: the first
    request then reports the problem as before.
    """
    try:
        with engine.connect() as conn:
            snapshot = siting_engine.snapshot(conn.execution_options(**{READ_ONLY_OPTION: True}))
    except SQLAlchemyError as exc:
        log.warning("network not preloaded", extra={"error": exc.__class__.__name__})
        return
    log.info("network preloaded", extra={"generation": snapshot.generation, "transformers": len(snapshot.index),
                                         "build_s": round(snapshot.build_s, 3)})


async def _request_slot() -> AsyncIterator[None]:
    """Held from before a request's first dependency until its answer is built (``scope="function"``)."""
    yield


def request_slots(concurrency: int | None) -> list[Any]:
    """The app-wide dependency that lets ``concurrency`` requests per worker do their work at once.

    FastAPI's own ``Depends(max_concurrency=…)``: a request waiting for a slot waits on the event loop and
    holds no thread, so the requests that hold a slot always find threads for their hops (dependencies,
    endpoint, answer validation) and a session's close never queues behind them (docs/architecture.md).
    """
    if concurrency is None:
        return []
    return [Depends(_request_slot, max_concurrency=concurrency, scope="function")]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings``; the engine is created in the lifespan, not at import."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # sessions are closed outside the request pool, so a close never queues behind a request (app.platform.deps)
        app.state.session_close_limiter = anyio.CapacityLimiter(4)
        engine = create_db_engine(settings.effective_database_url)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.import_jobs.start(engine)
        if settings.preload_network:
            preload_network(app.state.siting_engine, engine)
        # Periodic jobs (docs/lifecycle-infra.md): one runner per worker, a DB lease per job and interval.
        runner = (JobRunner(app.state.session_factory, settings, app.state.jobs).start()
                  if settings.jobs_enabled else None)
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()
            app.state.import_jobs.stop()
            engine.dispose()

    configure_logging(settings.log_level, json_logs=settings.log_json)
    app = FastAPI(title="Sanling", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan,
                  # /docs and /redoc from vendored files: app/api/docs_pages.py
                  generate_unique_id_function=_operation_id, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.siting_engine = SitingEngine.from_settings(settings)
    app.state.map_snapshots = SnapshotCache[MapSnapshot]()  # planner map and capacity lists, per asset generation
    app.state.tile_cache = TileCache()
    app.state.public_disclosure = PublicDisclosure(settings)
    app.state.public_buckets = TokenBuckets(settings.public_rate_per_minute, settings.public_rate_burst)
    app.state.import_jobs = ImportJobRunner(settings)
    app.state.error_table = error_table()
    app.state.jobs = service_jobs()
    add_exception_handlers(app, app.state.error_table)
    # bodies: credentials, length and type before anything reads them (inside the request-id middleware)
    import_limits = imports.get_import_limits()
    install_body_limits(app, settings, check_credentials=partial(check_credentials, settings=settings),
                        verify_credentials=authenticate_before_body,
                        status_for=app.state.error_table.status_for, import_max_bytes=import_limits.max_upload_bytes,
                        import_suffixes=import_limits.suffixes, import_roles=(Role.GIS_ADMIN,),
                        max_photos=terminal.MAX_PHOTOS)
    install_request_middleware(app)
    # Routes are matched in this order: the field terminals' hot paths first (every request tries each
    # route before its own; ~3 % of a design request's CPU went on matching the routes listed before it).
    slots = request_slots(settings.request_concurrency)  # per router: /healthz holds none
    app.include_router(designs.router, dependencies=slots)
    app.include_router(sources.router, dependencies=slots)
    app.include_router(applications.router, dependencies=slots)
    app.include_router(applications.admin_router, dependencies=slots)
    app.include_router(terminal.router, dependencies=slots)
    app.include_router(health.router)  # no slot: a health check never queues behind slow requests
    app.include_router(auth.router, dependencies=slots)
    app.include_router(audit.router, dependencies=slots)
    app.include_router(notifications.router, dependencies=slots)
    app.include_router(imports.router, dependencies=slots)
    app.include_router(capacity.router, dependencies=slots)
    app.include_router(features.router, dependencies=slots)
    app.include_router(tiles.router, dependencies=slots)
    app.include_router(public.router, dependencies=slots)
    app.include_router(reports.router, dependencies=slots)
    app.include_router(map_page.router, dependencies=slots)
    app.include_router(public.page_router, dependencies=slots)
    app.include_router(docs_pages.router, dependencies=slots)
    app.mount("/static", StaticFiles(directory=map_page.STATIC_DIR), name="static")
    install_contract(app, settings)  # the OpenAPI says what the server does (app/platform/params.py)
    return app
