"""Health and metrics endpoints."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.network.deps import SitingEngineDep
from app.network.generations import asset_counts, network_version
from app.platform.db import is_database_busy, read_only_connection, spatial_version
from app.platform.deps import SessionDep
from app.platform.errors import database_busy_response
from app.platform.observability import metrics_response

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Service health: database reachability, spatial extension and asset counts."""

    status: str = Field(description="`ok` or `degraded`.", examples=["ok"])
    database: str = Field(description="Database dialect.", examples=["sqlite"])
    spatial_extension: str = Field(examples=["SpatiaLite 5.0.1"])
    schema_revision: str | None = Field(description="Alembic revision of the schema.", examples=["0001"])
    asset_generation: int = Field(description="Counter bumped by every asset change.")
    asset_counts: dict[str, int] = Field(examples=[{"transformers": 48}])
    worker_pid: int = Field(description="Process id of the worker that answered (`sanling serve --workers N` "
                                        "runs N on one port).")
    worker_network_generation: int | None = Field(
        description="Asset generation of the network this worker holds in memory; null until it first loads it.")
    worker_generations_behind: int | None = Field(
        default=None, ge=0, description="How many asset generations the database has moved past the one this worker "
        "holds (0: current; the worker catches up on its next design or source request); null before it loads.")
    worker_load_changes_behind: int | None = Field(
        default=None, ge=0, description="Logged load changes (bookings, releases, load readings) this worker has not "
        "applied yet; they are applied in place, without a re-read of the network.")
    worker_network_current: bool | None = Field(
        default=None, description="Whether the network itself (assets) is the database's: false means the next "
        "request re-reads it.")


@router.get("/healthz", response_model=Health, operation_id="health-read_health",
            responses={503: {"description": "`DATABASE_UNAVAILABLE` (unreachable) or `DATABASE_BUSY` (a lock wait ran "
                                            "out; with `Retry-After`)."}})
def read_health(session: SessionDep, siting_engine: SitingEngineDep) -> Health | JSONResponse:
    """Report whether the database is reachable, the spatial extension's version and asset counts.

    A read-only unit of work: on SQLite it begins DEFERRED, so it never waits for a writer's lock (a large
    import holds it for its whole transaction) and answers from the last committed state.
    """
    try:
        conn = read_only_connection(session)
        revisions = sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        revision = ", ".join(revisions) or None
        version = network_version(conn)
        held = siting_engine.cached_snapshot
        lag: dict[str, object] = {} if held is None else {
            "worker_network_generation": held.generation,
            "worker_generations_behind": max(version.generation - held.generation, 0),
            "worker_load_changes_behind": max(version.capacity_seq - held.capacity_seq, 0),
            "worker_network_current": held.network_generation == version.network_generation}
        return Health(status="ok", database=conn.dialect.name, spatial_extension=spatial_version(conn),
                      schema_revision=revision, asset_generation=version.generation, asset_counts=asset_counts(conn),
                      worker_pid=os.getpid(), **{"worker_network_generation": None, **lag})
    except SQLAlchemyError as exc:
        if is_database_busy(exc):
            return database_busy_response()
        return JSONResponse({"code": "DATABASE_UNAVAILABLE", "message": str(exc.__class__.__name__),
                             "details": {}}, status_code=503)


@router.get("/metrics", operation_id="health-read_metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def read_metrics() -> Response:
    """Prometheus metrics (request counts and latencies per route, aggregated over workers)."""
    return metrics_response()
