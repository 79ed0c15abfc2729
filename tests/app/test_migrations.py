"""Schema migrations go up, down and up again and match the models, on both databases (issue 2)."""

from __future__ import annotations

from sqlalchemy import inspect

from app.platform import migrate
from app.platform.db import create_db_engine
from app.platform.models import ASSET_TABLES


def test_migrations_up_down_up_and_check(backend: str, fresh_database) -> None:  # type: ignore[no-untyped-def]
    url = fresh_database(backend)
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    engine = create_db_engine(url)
    assert not set(ASSET_TABLES) & set(inspect(engine).get_table_names())
    migrate.upgrade(url)
    migrate.check(url)  # raises when models and schema differ
    assert set(ASSET_TABLES) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_every_geometry_column_has_a_spatial_index(backend: str, demo_engine) -> None:  # type: ignore[no-untyped-def]
    with demo_engine.connect() as conn:
        if backend == "spatialite":
            indexed = {row[0] for row in conn.exec_driver_sql(
                "SELECT f_table_name FROM geometry_columns WHERE spatial_index_enabled = 1")}
        else:
            indexed = {row[0] for row in conn.exec_driver_sql(
                "SELECT tablename FROM pg_indexes WHERE position('USING gist' in indexdef) > 0")}
    assert set(ASSET_TABLES) <= indexed
