"""FastAPI dependencies: the request's database session (the unit of work) and the app's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.settings import Settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """Yield a session from the app's factory; routes commit once, helpers never commit.

    Async so that FastAPI creates it on the event loop (making a Session does no I/O) instead of in a
    worker thread; closing it (which may roll back) runs in the thread pool.
    """
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


SessionDep = Annotated[Session, Depends(get_session)]


def get_request_settings(request: Request) -> Settings:
    """Return the settings the app was created with (``create_app(settings)``)."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def _settings_dependency(request: Request) -> Settings:
    return get_request_settings(request)  # async: no worker-thread hop for an attribute read


SettingsDep = Annotated[Settings, Depends(_settings_dependency)]
