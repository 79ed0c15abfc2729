"""Alembic environment: URL from Sanling's settings, GeoAlchemy2's spatial-aware helpers."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.platform.db import create_db_engine
from app.platform.models import Base
from app.settings import get_settings

config = context.config
target_metadata = Base.metadata

# Tables that SpatiaLite and PostGIS create for themselves; never part of Sanling's schema.
_EXTENSION_TABLE_PREFIXES = (
    "spatial_ref_sys", "spatialite_history", "sql_statements_log", "geometry_columns", "views_geometry",
    "virts_geometry", "spatial_ref_sys_aux", "SpatialIndex", "ElementaryGeometries", "KNN", "KNN2",
    "data_licenses", "idx_", "sqlite_", "vector_layers", "raster_", "rl2map", "SE_", "wms_", "topologies",
    "networks", "stored_", "rtree", "iso_metadata", "ISO_metadata", "geom_cols_ref_sys",
)


def include_object(obj, name, obj_type, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Skip extension tables (the GeoAlchemy2 helper only knows some of them)."""
    if obj_type == "table" and name and name.startswith(_EXTENSION_TABLE_PREFIXES):
        return False
    return alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to)


def _ensure_spatial_metadata(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        has_meta = connection.execute(
            text("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='spatial_ref_sys'")
        ).scalar_one()
        if not has_meta:
            connection.execute(text("SELECT InitSpatialMetaData(0)"))
    else:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))


def run_migrations_online() -> None:
    """Run migrations on the configured database (there is no offline mode)."""
    url = config.attributes.get("database_url") or get_settings().effective_database_url
    engine = create_db_engine(url)
    with engine.connect() as connection:
        with connection.begin():
            _ensure_spatial_metadata(connection)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
