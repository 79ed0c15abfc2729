"""Derived snapshots are rebuilt in the background: no request waits for a province-size rebuild (issue 12, 13).

After a 1M-row import the first map or capacity request rebuilt the map snapshot in the request: 23.7 s with no
answer, and, with one request slot per worker, ``/healthz`` queued behind it (``benchmarks/import.py --serve``).
``SnapshotCache`` now rebuilds in a thread of its own; a request waits for it a bounded time and is otherwise
answered from the previous generation's snapshot, which stays in use until the new one is swapped in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import Connection, Engine

from app.network.generations import bump_generation
from app.planning.capacity import SnapshotCache, read_asset_generation
from app.platform.db import READ_ONLY_OPTION


@pytest.fixture
def engine(migrated_engine) -> Engine:  # type: ignore[no-untyped-def]
    return migrated_engine("spatialite")  # type: ignore[no-any-return]


@contextmanager
def _reader(engine: Engine) -> Iterator[Connection]:
    """A read-only connection, as requests and rebuilds use (DEFERRED on SQLite: no write lock)."""
    with engine.connect() as conn:
        yield conn.execution_options(**{READ_ONLY_OPTION: True})


def _bump(engine: Engine) -> int:
    with engine.begin() as conn:
        bump_generation(conn)
        return read_asset_generation(conn)


class SlowBuild:
    """A build that records its calls and, once ``hold`` is set, blocks until ``release`` is."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.hold = threading.Event()
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, conn: Connection, generation: int, previous: str | None) -> str:
        self.calls.append(generation)
        if self.hold.is_set():
            self.entered.set()
            assert self.release.wait(30)
        return f"built at {generation}"


def test_a_rebuild_never_holds_a_request_and_is_swapped_in_when_done(engine: Engine) -> None:
    cache: SnapshotCache[str] = SnapshotCache(wait_s=0.05)
    build = SlowBuild()

    def connect() -> AbstractContextManager[Connection]:
        return _reader(engine)

    with _reader(engine) as conn:
        first = cache.get(conn, build, connect=connect)  # nothing to answer from yet: built in the request
    generation = _bump(engine)
    build.hold.set()
    answers = []
    for _ in range(5):  # a burst while the rebuild is held: each waits ≤ 50 ms and gets the previous generation
        started = time.monotonic()
        with _reader(engine) as conn:
            answers.append(cache.get(conn, build, connect=connect))
        assert time.monotonic() - started < 5  # bounded: never the length of the rebuild
    assert answers == [first] * 5
    assert build.entered.wait(10)
    assert build.calls == [generation - 1, generation]  # one rebuild for the whole burst
    build.release.set()
    deadline = time.monotonic() + 10
    while True:
        with _reader(engine) as conn:
            answer = cache.get(conn, build, connect=connect)
        if answer != first or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert answer == f"built at {generation}"


def test_a_quick_rebuild_is_waited_for_so_small_changes_are_seen_at_once(engine: Engine) -> None:
    cache: SnapshotCache[str] = SnapshotCache(wait_s=10)
    build = SlowBuild()

    def connect() -> AbstractContextManager[Connection]:
        return _reader(engine)

    with _reader(engine) as conn:
        cache.get(conn, build, connect=connect)
    generation = _bump(engine)
    with _reader(engine) as conn:
        assert cache.get(conn, build, connect=connect) == f"built at {generation}"


def test_a_failed_rebuild_is_an_error_of_the_waiting_request_and_the_next_one_tries_again(engine: Engine) -> None:
    cache: SnapshotCache[str] = SnapshotCache(wait_s=10)
    attempts: list[int] = []

    def flaky(conn: Connection, generation: int, previous: str | None) -> str:
        attempts.append(generation)
        if len(attempts) == 2:
            raise RuntimeError("the database went away")
        return f"built at {generation}"

    def connect() -> AbstractContextManager[Connection]:
        return _reader(engine)

    with _reader(engine) as conn:
        cache.get(conn, flaky, connect=connect)
    generation = _bump(engine)
    with _reader(engine) as conn, pytest.raises(RuntimeError, match="went away"):
        cache.get(conn, flaky, connect=connect)
    with _reader(engine) as conn:
        assert cache.get(conn, flaky, connect=connect) == f"built at {generation}"
