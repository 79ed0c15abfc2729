"""A connection whose work is rolled back: the unit of isolation of tests that write to a shared database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back on exit, whatever the test did."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()
