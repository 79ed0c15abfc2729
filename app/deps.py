"""FastAPI dependencies: the request's database session (the unit of work), settings and siting engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.settings import Settings
from app.siting_service import SitingEngine


def get_session(request: Request) -> Iterator[Session]:
    """Yield a session from the app's factory; routes commit once, helpers never commit."""
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_request_settings(request: Request) -> Settings:
    """Return the settings the app was created with (``create_app(settings)``)."""
    return request.app.state.settings  # type: ignore[no-any-return]


def get_siting_engine(request: Request) -> SitingEngine:
    """Return this worker's siting engine (``app.siting_service``)."""
    return request.app.state.siting_engine  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_request_settings)]
SitingEngineDep = Annotated[SitingEngine, Depends(get_siting_engine)]
