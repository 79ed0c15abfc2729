"""FastAPI dependencies: the request's database session (the unit of work) and the app's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.settings import Settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """Yield a session from the app's factory; routes commit once, helpers never commit.

    Async so that FastAPI creates it on the event loop (making a Session does no I/O) instead of in a
    worker thread. Closing it (which may roll back and so ends the transaction and its locks) runs in a
    thread of its own limiter (``app.state.session_close_limiter``, made in the lifespan), not AnyIO's
    default one, so a close that ends a transaction (and releases SQLite's write lock) never queues behind
    requests that are waiting for that lock (docs/architecture.md, "Requests, threads and waiting").
    """
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        limiter = getattr(request.app.state, "session_close_limiter", None)
        await anyio.to_thread.run_sync(session.close, limiter=limiter)


SessionDep = Annotated[Session, Depends(get_session)]


@contextmanager
def app_session(app: Any) -> Iterator[Session]:
    """A session like the one :func:`get_session` gives a route, for code that runs before routing (middleware).

    Honours ``app.dependency_overrides[get_session]`` (a generator taking no arguments, as the tests' sessions
    on one connection are), so a check before routing reads what the route will read; closed on exit.
    """
    override = app.dependency_overrides.get(get_session)
    if override is None:
        with app.state.session_factory() as session:
            yield session
        return
    sessions = override()
    try:
        yield next(sessions)
    finally:
        sessions.close()


def get_request_settings(request: Request) -> Settings:
    """Return the settings the app was created with (``create_app(settings)``)."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def _settings_dependency(request: Request) -> Settings:
    return get_request_settings(request)  # async: no worker-thread hop for an attribute read


SettingsDep = Annotated[Settings, Depends(_settings_dependency)]
