"""Engine factory for SQLite + SpatiaLite (embedded) and PostgreSQL + PostGIS (production)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

SPATIALITE_MODULE = "mod_spatialite"


def _load_spatialite(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    """Load SpatiaLite into a new sqlite3 connection and hand transaction control to SQLAlchemy.

    Python's sqlite3 driver issues BEGIN itself and breaks SAVEPOINTs; SQLAlchemy's documented
    workaround (SQLite dialect, "Serializable isolation / Savepoints / Transactional DDL") switches
    that off here and emits BEGIN from the ``begin`` event below.
    """
    dbapi_connection.isolation_level = None
    dbapi_connection.enable_load_extension(True)
    dbapi_connection.load_extension(SPATIALITE_MODULE)
    dbapi_connection.enable_load_extension(False)
    dbapi_connection.execute("PRAGMA foreign_keys = ON")
    dbapi_connection.execute("PRAGMA journal_mode = WAL")
    # WAL + NORMAL: commits do not fsync; the database cannot be corrupted by a crash, and a power cut
    # loses at most the transactions since the last checkpoint (https://sqlite.org/pragma.html#pragma_synchronous).
    dbapi_connection.execute("PRAGMA synchronous = NORMAL")


def _busy_timeout(lock_wait_s: float) -> Callable[[sqlite3.Connection, Any], None]:
    """A ``connect`` listener setting SQLite's busy timeout (the driver's ``timeout`` argument is not kept)."""
    def listener(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {max(1, round(lock_wait_s * 1000))}")
    return listener


def json_dumps(value: Any) -> str:
    """JSON columns are written with orjson (the designs' result documents are ~16 kB)."""
    return orjson.dumps(value).decode()


#: Execution option of a unit of work that only reads: on SQLite it begins DEFERRED and takes no write lock.
READ_ONLY_OPTION = "sanling_read_only"


def _begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two writers serialise instead of failing late; a unit of
    # work declared read-only (read_only_connection) begins DEFERRED and never blocks or waits for writers.
    if conn.get_execution_options().get(READ_ONLY_OPTION):
        conn.exec_driver_sql("BEGIN DEFERRED")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


#: SQLite's result code for "the database is locked" (``SQLITE_BUSY``; extended codes keep it in the low byte).
_SQLITE_BUSY = 5
#: PostgreSQL's SQLSTATE ``lock_not_available``: a ``lock_timeout`` or ``NOWAIT`` ran out.
_PG_LOCK_NOT_AVAILABLE = "55P03"


def is_database_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is a lock wait that ran out: worth a retry, not a server fault (HTTP 503 ``DATABASE_BUSY``).

    SQLite's ``database is locked`` (``SQLITE_BUSY``: the busy timeout passed while another connection held the
    write lock) and PostgreSQL's ``lock_not_available`` (``lock_timeout``, ``NOWAIT``).

    >>> from sqlalchemy.exc import OperationalError
    >>> is_database_busy(OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")))
    True
    >>> is_database_busy(OperationalError("SELECT 1", None, sqlite3.OperationalError("no such table: x")))
    False
    """
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == _SQLITE_BUSY
        return str(orig).startswith("database is locked")
    return getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE


def read_only_connection(session: Session) -> Connection:
    """The session's connection for a unit of work that only reads (commit or roll back before writing).

    On SQLite a new transaction begins DEFERRED (WAL readers neither take nor wait for the write lock);
    inside a transaction already begun, or on PostgreSQL, this is just ``session.connection()``.
    """
    if session.in_transaction():
        return session.connection()
    return session.connection(execution_options={READ_ONLY_OPTION: True})


#: How long a unit of work waits for a lock another holds before it fails as busy (HTTP 503 ``DATABASE_BUSY``).
DEFAULT_LOCK_WAIT_S = 30.0


def create_db_engine(url: str, *, lock_wait_s: float = DEFAULT_LOCK_WAIT_S, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; SQLite URLs get SpatiaLite loaded on every connection.

    ``lock_wait_s`` bounds every lock wait on both databases: SQLite's busy timeout (the write lock) and
    PostgreSQL's ``lock_timeout`` (row and table locks: a ``SELECT … FOR UPDATE`` behind an import's
    ``LOCK TABLE``, or behind a transaction that hangs), so no request waits for ever; the wait that runs out is
    :func:`is_database_busy`.
    """
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:":
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("json_serializer", json_dumps)
        engine = create_engine(sa_url, connect_args={"timeout": lock_wait_s, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _load_spatialite)
        event.listen(engine, "connect", _busy_timeout(lock_wait_s))
        event.listen(engine, "begin", _begin)
        return engine
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    connect_args = {"options": f"-c lock_timeout={max(1, round(lock_wait_s * 1000))}ms",
                    **kwargs.pop("connect_args", {})}
    return create_engine(sa_url, connect_args=connect_args, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory the app and CLI use; sessions never expire on commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def spatial_version(conn: Connection) -> str:
    """Return the spatial extension's name and version (``SpatiaLite 5.0.1`` / ``PostGIS 3.3``)."""
    if conn.dialect.name == "sqlite":
        return "SpatiaLite " + str(conn.execute(text("SELECT spatialite_version()")).scalar_one())
    return "PostGIS " + str(conn.execute(text("SELECT postgis_lib_version()")).scalar_one())


def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session that is closed afterwards (the caller commits)."""
    with factory() as session:
        yield session
