"""FastAPI dependency: this worker's siting engine, made with the app (``create_app``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.network.siting import SitingEngine


def get_siting_engine(request: Request) -> SitingEngine:
    """Return this worker's siting engine (``app.network.siting``)."""
    return request.app.state.siting_engine  # type: ignore[no-any-return]


async def _siting_engine_dependency(request: Request) -> SitingEngine:
    return get_siting_engine(request)  # async: no worker-thread hop for an attribute read


SitingEngineDep = Annotated[SitingEngine, Depends(_siting_engine_dependency)]
