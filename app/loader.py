"""Load GIS layers into the database through the batch importer (R7): the database sink, demo loading, counts.

``gis.importing`` reads, maps and validates; :class:`DatabaseSink` stages the valid rows in the caller's
transaction (PostgreSQL ``COPY``, SQLite ``executemany``) and upserts them by key, bumping the asset
generation in the same transaction so every worker rebuilds its siting index after the commit.

Write strategies (reported as ``strategy``):

- ``merge``: update changed rows, insert new ones, delete missing ones (``replace``) in place. Used on
  SQLite, and on PostgreSQL when few rows change.
- ``rebuild`` (PostgreSQL): when many rows change, build the new layer as a fresh table, create its
  indexes once, and swap it in (drop + rename) just before the commit. Readers keep reading the old table
  until the commit; they never see half a layer. ``id`` values of existing rows are kept.
- ``direct`` (PostgreSQL, empty table): like ``rebuild`` but ``COPY`` goes straight into the fresh table.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Table, func, select, text, update

from app import models
from gis.importing import (
    FieldMapping,
    ImportOptions,
    ImportReport,
    ProgressCallback,
    WriteCounts,
    import_layer,
)
from gis.layers import LAYER_ORDER, LAYERS, LayerSpec, get_layer

__all__ = [
    "DEMO_DIR",
    "LAYERS",
    "LAYER_TABLES",
    "DatabaseSink",
    "asset_counts",
    "bump_generation",
    "import_layer_file",
    "load_demo",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "fixtures" / "demo"

#: The table of every import layer.
LAYER_TABLES: dict[str, type[models.Base]] = {**models.ASSET_TABLES, "load_readings": models.LoadReading}
#: PostgreSQL rebuilds a layer instead of merging when at least this many rows change …
BULK_MIN_ROWS = 20_000
#: … and the changed rows are at least this share of the resulting table.
BULK_MIN_SHARE = 0.25
_SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # with microseconds from the timestamp unit, as SQLAlchemy stores
_NEW_SUFFIX = "__new"
# pg_get_indexdef's form: CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING method (columns) …
_INDEX_DEF = re.compile(r"^CREATE (?P<unique>UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ USING ")


def bump_generation(conn: Connection) -> None:
    """Advance the asset generation so every worker rebuilds its index (same transaction)."""
    conn.execute(update(models.AssetGeneration).where(models.AssetGeneration.id == 1)
                 .values(generation=models.AssetGeneration.generation + 1))


def asset_counts(conn: Connection) -> dict[str, int]:
    """Return the number of rows of every asset table."""
    return {name: conn.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in models.ASSET_TABLES.items()}


def _q(name: str) -> str:
    """Quote an identifier (names come from the layer registry, never from input)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _SwapPlan:
    """Indexes and constraints of a PostgreSQL table, to recreate on its replacement."""

    constraints: tuple[tuple[str, str], ...]  # (name, definition) of primary key / unique / exclusion
    indexes: tuple[tuple[str, str], ...]  # (name, CREATE INDEX statement for the new table)
    sequences: tuple[tuple[str, str], ...]  # (sequence, column) owned by the table
    grants: tuple[tuple[str, str], ...]  # (privilege, grantee)


class DatabaseSink:
    """The importer's sink over a SQLAlchemy ``Connection`` inside the caller's transaction.

    Parameters
    ----------
    conn
        A connection with an open transaction; nothing here commits.
    bulk_min_rows
        Smallest change for which PostgreSQL rebuilds the table instead of merging in place.
    """

    def __init__(self, conn: Connection, *, bulk_min_rows: int = BULK_MIN_ROWS) -> None:
        self.conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"
        self.geometry_encoding: Literal["ewkb_hex", "wkb"] = "ewkb_hex" if self.is_postgres else "wkb"
        self.bulk_min_rows = bulk_min_rows
        self.staged = 0
        self._mode: Literal["stage", "direct"] = "stage"

    # -- ImportSink ---------------------------------------------------------------------------------------
    def known_keys(self, layer: str, key: str) -> set[str]:
        """Return every stored value of ``key`` in ``layer``."""
        table = get_layer(layer).table
        return {row[0] for row in self.conn.exec_driver_sql(f"SELECT {_q(key)} FROM {_q(table)}")}

    def begin(self, spec: LayerSpec, provided_fields: tuple[str, ...], expected_rows: int) -> None:
        """Lock the layer against other imports and create the staging table."""
        self.spec = spec
        self.table: Table = LAYER_TABLES[spec.name].__table__  # type: ignore[assignment]
        self.provided = tuple(name for name in provided_fields if name not in spec.key)
        self.columns = (*spec.field_names, *(("geom",) if spec.geometry_type else ()))
        name = spec.table
        if self.is_postgres:
            # Blocks other writers of the layer (and a second import) but never readers.
            self.conn.exec_driver_sql(f"LOCK TABLE {_q(name)} IN SHARE ROW EXCLUSIVE MODE")
        self.target_rows = self.conn.exec_driver_sql(f"SELECT count(*) FROM {_q(name)}").scalar_one()
        self.stage = f"import_stage_{name}"
        self.stage_sql = f"{'pg_temp' if self.is_postgres else 'temp'}.{_q(self.stage)}"
        self._swap: _SwapPlan | None = self._swap_plan() if self.is_postgres else None
        if self._swap is not None and self.target_rows == 0 and expected_rows >= self.bulk_min_rows:
            self._mode = "direct"
            self.stage = name + _NEW_SUFFIX
            self.stage_sql = _q(self.stage)
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage_sql}")
            self.conn.exec_driver_sql(f"CREATE TABLE {self.stage_sql} (LIKE {_q(name)} INCLUDING DEFAULTS "
                                      "INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)")
            return
        self._mode = "stage"
        columns = ", ".join(_q(column) for column in self.columns)
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage_sql}")
        self.conn.exec_driver_sql(f"CREATE TEMP TABLE {_q(self.stage)} AS SELECT {columns} FROM {_q(name)} WHERE 1 = 0")

    def write(self, table: pa.Table) -> None:
        """Stage one batch (``COPY`` on PostgreSQL, ``executemany`` on SQLite)."""
        if self.is_postgres:
            self._copy(table)
        else:
            self._insert_sqlite(table)
        self.staged += table.num_rows

    def finish(self, *, replace: bool, dry_run: bool) -> WriteCounts:
        """Upsert the staged rows (or count on a dry run); bump the generation if anything changed."""
        if self._mode == "direct":
            counts = WriteCounts(inserted=self.staged, strategy="direct")
            if not dry_run:
                self._build_and_swap()
        else:
            counted = self._count(replace)
            changed = counted.inserted + counted.updated + counted.deleted
            rebuild = ((self._swap is not None or not self.is_postgres) and changed >= self.bulk_min_rows
                       and changed >= BULK_MIN_SHARE * (self.target_rows + counted.inserted))
            counts = WriteCounts(counted.inserted, counted.updated, counted.unchanged, counted.deleted,
                                 strategy="rebuild" if rebuild else "merge")
            if not dry_run and changed:
                if rebuild and self.is_postgres:
                    self._rebuild(replace)
                elif rebuild:
                    self._merge_sqlite_bulk(replace, counts)
                else:
                    self._merge(replace, counts)
        notes: list[str] = []
        moved = 0
        if not dry_run:
            if self.spec.name == "load_readings" and self.staged:
                moved = self._update_transformer_peaks()
                if moved:
                    notes.append(f"peak_kva/peak_at of {moved} transformers moved to their latest reading")
            if counts.deleted:
                notes.extend(self._orphan_notes())
            if counts.inserted or counts.updated or counts.deleted or moved:
                bump_generation(self.conn)
        self._drop_stage()
        return WriteCounts(counts.inserted, counts.updated, counts.unchanged, counts.deleted, counts.strategy,
                           tuple(notes))

    # -- staging ------------------------------------------------------------------------------------------
    def _copy(self, table: pa.Table) -> None:
        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
        columns = ", ".join(_q(name) for name in table.column_names)
        driver_connection: Any = self.conn.connection.driver_connection
        with driver_connection.cursor() as cursor, \
                cursor.copy(f"COPY {self.stage_sql} ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getbuffer())

    def _insert_sqlite(self, table: pa.Table) -> None:
        values = []
        for name in table.column_names:
            column = table.column(name)
            if pa.types.is_timestamp(column.type):
                column = pc.strftime(column, format=_SQLITE_DATETIME_FORMAT)
            values.append(column.to_pylist())
        columns = ", ".join(_q(name) for name in table.column_names)
        marks = ", ".join("GeomFromWKB(?, 4326)" if name == "geom" else "?" for name in table.column_names)
        self.conn.exec_driver_sql(f"INSERT INTO {self.stage_sql} ({columns}) VALUES ({marks})",
                                  list(zip(*values, strict=True)))

    def _drop_stage(self) -> None:
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage_sql}")

    # -- merge in place -----------------------------------------------------------------------------------
    def _key_match(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{_q(key)} = {right}.{_q(key)}" for key in self.spec.key)

    def _differs(self, left: str, right: str) -> str:
        compared = (*self.provided, *(("geom",) if self.spec.geometry_type else ()))
        if not compared:
            return "1 = 0"
        return " OR ".join(f"{left}.{_q(name)} IS DISTINCT FROM {right}.{_q(name)}" for name in compared)

    def _count(self, replace: bool) -> WriteCounts:
        target, stage = _q(self.spec.table), self.stage_sql
        matched_sql = f"SELECT count(*) FROM {stage} s WHERE EXISTS (SELECT 1 FROM {target} t WHERE " \
                      f"{self._key_match('t', 's')})"
        matched = self.conn.exec_driver_sql(matched_sql).scalar_one() if self.target_rows else 0
        changed = self.conn.exec_driver_sql(
            f"SELECT count(*) FROM {stage} s JOIN {target} t ON {self._key_match('t', 's')} "
            f"WHERE {self._differs('t', 's')}").scalar_one() if matched else 0
        deleted = 0
        if replace and self.target_rows:
            deleted = self.conn.exec_driver_sql(
                f"SELECT count(*) FROM {target} t WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE "
                f"{self._key_match('t', 's')})").scalar_one()
        return WriteCounts(inserted=self.staged - matched, updated=changed, unchanged=matched - changed,
                           deleted=deleted)

    def _merge(self, replace: bool, counts: WriteCounts) -> None:
        target, stage = _q(self.spec.table), self.stage_sql
        if not self.is_postgres:
            self.conn.exec_driver_sql(f"CREATE INDEX temp.{_q(self.stage + '_key')} ON {_q(self.stage)} "
                                      f"({', '.join(_q(key) for key in self.spec.key)})")
        if replace and counts.deleted:
            self.conn.exec_driver_sql(f"DELETE FROM {target} WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE "
                                      f"{self._key_match(target, 's')})")
        if counts.updated:
            assignments = ", ".join(f"{_q(name)} = s.{_q(name)}" for name in
                                    (*self.provided, *(("geom",) if self.spec.geometry_type else ())))
            self.conn.exec_driver_sql(f"UPDATE {target} SET {assignments} FROM {stage} s WHERE "
                                      f"{self._key_match(target, 's')} AND ({self._differs(target, 's')})")
        if counts.inserted:
            columns = ", ".join(_q(name) for name in self.columns)
            self.conn.exec_driver_sql(
                f"INSERT INTO {target} ({columns}) SELECT {', '.join('s.' + _q(n) for n in self.columns)} "
                f"FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {self._key_match('t', 's')})")

    def _merge_sqlite_bulk(self, replace: bool, counts: WriteCounts) -> None:
        """Merge with SpatiaLite's per-row triggers off, then rebuild the spatial index once (same transaction).

        The triggers check geometry type and SRID (guaranteed here: the importer wrote them), stamp
        ``geometry_columns_time`` and maintain the R*Tree row by row, which costs about 60 µs a row.
        """
        name = self.spec.table
        conn = self.conn
        triggers = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                                        (name,)).all()
        for trigger, _sql in triggers:
            conn.exec_driver_sql(f"DROP TRIGGER {_q(trigger)}")
        self._merge(replace, counts)
        for _trigger, sql in triggers:
            conn.exec_driver_sql(sql)
        indexed = conn.exec_driver_sql(
            "SELECT f_geometry_column FROM geometry_columns WHERE lower(f_table_name) = lower(?) "
            "AND spatial_index_enabled = 1", (name,)).scalars().all()
        for column in indexed:
            rtree = _q(f"idx_{name}_{column}")
            conn.exec_driver_sql(f"DELETE FROM {rtree}")
            # Inserting in rough spatial order keeps the R*Tree build fast.
            conn.exec_driver_sql(
                f"INSERT INTO {rtree} (pkid, xmin, xmax, ymin, ymax) SELECT ROWID, MbrMinX({_q(column)}), "
                f"MbrMaxX({_q(column)}), MbrMinY({_q(column)}), MbrMaxY({_q(column)}) FROM {_q(name)} "
                f"WHERE {_q(column)} IS NOT NULL ORDER BY CAST(MbrMinX({_q(column)}) * 100 AS INTEGER), "
                f"MbrMinY({_q(column)})")
        if indexed:
            conn.exec_driver_sql(
                "UPDATE geometry_columns_time SET last_insert = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
                "last_update = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
                "last_delete = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE lower(f_table_name) = lower(?)", (name,))

    # -- rebuild and swap (PostgreSQL) ----------------------------------------------------------------------
    def _swap_plan(self) -> _SwapPlan | None:
        """Describe the table's indexes, or ``None`` when something depends on it (then merge in place)."""
        name = self.spec.table
        conn = self.conn
        dependents = conn.execute(text(
            "SELECT (SELECT count(*) FROM pg_constraint WHERE confrelid = CAST(:t AS regclass)) "
            "+ (SELECT count(*) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "   WHERE d.refobjid = CAST(:t AS regclass) AND r.ev_class <> CAST(:t AS regclass)) "
            "+ (SELECT count(*) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal) "
            "+ (SELECT count(*) FROM pg_inherits WHERE inhparent = CAST(:t AS regclass) "
            "   OR inhrelid = CAST(:t AS regclass))"), {"t": name}).scalar_one()
        if dependents:
            return None
        rows = conn.execute(text(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid), c.conname, pg_get_constraintdef(c.oid) "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) ORDER BY ic.relname"), {"t": name}).all()
        constraints, indexes = [], []
        for index_name, index_def, constraint_name, constraint_def in rows:
            if constraint_name:
                constraints.append((constraint_name, constraint_def))
                continue
            match = _INDEX_DEF.match(index_def)
            if match is None:
                return None
            indexes.append((index_name, f"CREATE {match['unique'] or ''}INDEX {_q(index_name + _NEW_SUFFIX)} "
                                        f"ON {_q(name + _NEW_SUFFIX)} USING {index_def[match.end():]}"))
        sequences = conn.execute(text(
            "SELECT s.relname, a.attname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
            "WHERE d.refobjid = CAST(:t AS regclass) AND d.deptype IN ('a', 'i')"), {"t": name}).all()
        grants = conn.execute(text(
            "SELECT acl.privilege_type, CASE WHEN acl.grantee = 0 THEN 'PUBLIC' "
            "ELSE quote_ident(pg_get_userbyid(acl.grantee)) END "
            "FROM pg_class c, aclexplode(c.relacl) acl WHERE c.oid = CAST(:t AS regclass) "
            "AND acl.grantee <> c.relowner"), {"t": name}).all()
        return _SwapPlan(tuple(constraints), tuple(indexes), tuple((s, c) for s, c in sequences),
                         tuple((p, g) for p, g in grants))

    def _rebuild(self, replace: bool) -> None:
        """Build the layer's next table from the stage and the rows it keeps, then swap it in."""
        name = self.spec.table
        new, target, stage = _q(name + _NEW_SUFFIX), _q(name), self.stage_sql
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {new}")
        self.conn.exec_driver_sql(f"CREATE TABLE {new} (LIKE {target} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                                  "INCLUDING STORAGE INCLUDING COMMENTS)")
        provided = set(self.provided) | set(self.spec.key) | {"geom"}
        columns = ", ".join(_q(n) for n in self.columns)
        kept = ", ".join(f"s.{_q(n)}" if n in provided else f"t.{_q(n)}" for n in self.columns)
        self.conn.exec_driver_sql(  # rows in the file that exist: keep id and the fields the file does not provide
            f"INSERT INTO {new} (id, {columns}) SELECT t.id, {kept} FROM {stage} s "
            f"JOIN {target} t ON {self._key_match('t', 's')}")
        self.conn.exec_driver_sql(
            f"INSERT INTO {new} ({columns}) SELECT {', '.join('s.' + _q(n) for n in self.columns)} FROM {stage} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {self._key_match('t', 's')})")
        if not replace:
            self.conn.exec_driver_sql(
                f"INSERT INTO {new} SELECT t.* FROM {target} t "
                f"WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE {self._key_match('t', 's')})")
        self._build_and_swap()

    def _build_and_swap(self) -> None:
        """Create the indexes and constraints on ``<table>__new``, then replace the table by it."""
        plan = self._swap
        assert plan is not None
        name = self.spec.table
        new = name + _NEW_SUFFIX
        conn = self.conn
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
        for constraint_name, definition in plan.constraints:
            conn.exec_driver_sql(f"ALTER TABLE {_q(new)} ADD CONSTRAINT {_q(constraint_name + _NEW_SUFFIX)} "
                                 f"{definition}")
        for _index_name, statement in plan.indexes:
            conn.exec_driver_sql(statement)
        for sequence, column in plan.sequences:
            conn.exec_driver_sql(f"ALTER SEQUENCE {_q(sequence)} OWNED BY {_q(new)}.{_q(column)}")
        for privilege, grantee in plan.grants:
            conn.exec_driver_sql(f"GRANT {privilege} ON {_q(new)} TO {grantee}")
        conn.exec_driver_sql(f"ANALYZE {_q(new)}")
        # The swap: readers of the old table finish first; new readers see the new table after the commit.
        conn.exec_driver_sql(f"DROP TABLE {_q(name)}")
        conn.exec_driver_sql(f"ALTER TABLE {_q(new)} RENAME TO {_q(name)}")
        for constraint_name, _definition in plan.constraints:
            conn.exec_driver_sql(f"ALTER TABLE {_q(name)} RENAME CONSTRAINT {_q(constraint_name + _NEW_SUFFIX)} "
                                 f"TO {_q(constraint_name)}")
        for index_name, _statement in plan.indexes:
            conn.exec_driver_sql(f"ALTER INDEX {_q(index_name + _NEW_SUFFIX)} RENAME TO {_q(index_name)}")

    # -- after the write ----------------------------------------------------------------------------------
    def _update_transformer_peaks(self) -> int:
        """Move ``peak_kva``/``peak_at`` of the transformers in the file to their latest reading."""
        stage = self.stage_sql
        result = self.conn.exec_driver_sql(
            "UPDATE transformers SET peak_kva = latest.peak_kva, peak_at = latest.read_at FROM ("
            " SELECT r.transformer_asset_id, r.peak_kva, r.read_at FROM load_readings r JOIN ("
            "  SELECT transformer_asset_id, max(read_at) AS read_at FROM load_readings"
            f"  WHERE transformer_asset_id IN (SELECT transformer_asset_id FROM {stage})"
            "  GROUP BY transformer_asset_id) m"
            " ON m.transformer_asset_id = r.transformer_asset_id AND m.read_at = r.read_at) AS latest "
            "WHERE transformers.asset_id = latest.transformer_asset_id AND ("
            "transformers.peak_kva IS DISTINCT FROM latest.peak_kva OR transformers.peak_at IS DISTINCT FROM "
            "latest.read_at)")
        return int(result.rowcount or 0)

    def _orphan_notes(self) -> list[str]:
        """Say how many rows of other layers now name a deleted row of this one."""
        notes = []
        for other in LAYERS.values():
            for reference in other.references:
                if reference.layer != self.spec.name or reference.severity != "error":
                    continue
                orphans = self.conn.exec_driver_sql(
                    f"SELECT count(*) FROM {_q(other.table)} d WHERE NOT EXISTS (SELECT 1 FROM "
                    f"{_q(self.spec.table)} t WHERE t.{_q(reference.key)} = d.{_q(reference.field)})").scalar_one()
                if orphans:
                    notes.append(f"REFERENCE_ORPHANED: {orphans} rows of {other.name} name a {self.spec.name} row "
                                 f"that no longer exists ({reference.field})")
        return notes


def import_layer_file(conn: Connection, layer: str, path: Path, *, source_crs: str | None = None,
                      replace: bool = False, skip_invalid: bool = False, dry_run: bool = False,
                      mapping: FieldMapping | None = None, encoding: str | None = None,
                      source_layer: str | None = None,
                      service_area_wgs84: tuple[float, float, float, float] | None = None,
                      report_csv: Path | None = None, batch_rows: int | None = None,
                      progress: ProgressCallback | None = None, bulk_min_rows: int = BULK_MIN_ROWS) -> ImportReport:
    """Import ``path`` as ``layer`` inside the caller's transaction and return the report.

    A dry run runs in a savepoint that is rolled back, so it sees exactly what an import would do and
    changes nothing. Invalid rows raise :class:`gis.importing.ImportRejectedError` unless ``skip_invalid``;
    the caller's transaction must then be rolled back (``engine.begin()`` does that).
    """
    options = ImportOptions(
        mapping=mapping or FieldMapping(), source_crs=source_crs, encoding=encoding, source_layer=source_layer,
        skip_invalid=skip_invalid, replace=replace, dry_run=dry_run, service_area_wgs84=service_area_wgs84,
        report_csv=report_csv, **({"batch_rows": batch_rows} if batch_rows else {}))
    sink = DatabaseSink(conn, bulk_min_rows=bulk_min_rows)
    if not dry_run:
        return import_layer(path, layer, sink, options, progress)
    savepoint = conn.begin_nested()
    try:
        return import_layer(path, layer, sink, options, progress)
    finally:
        savepoint.rollback()


def demo_layer_files(demo_dir: Path = DEMO_DIR) -> list[tuple[str, Path]]:
    """Return ``(layer, file)`` for every demo layer file present, in reference order."""
    found = []
    for layer in LAYER_ORDER:
        for suffix in (".geojson", ".csv"):
            path = demo_dir / f"{layer}{suffix}"
            if path.exists():
                found.append((layer, path))
                break
    return found


def load_demo(conn: Connection, demo_dir: Path = DEMO_DIR, *,
              service_area_wgs84: tuple[float, float, float, float] | None = None,
              report: Callable[[ImportReport], None] | None = None) -> dict[str, int]:
    """Load (or refresh) the demo district from ``fixtures/demo`` through the importer, in one transaction.

    Every layer is imported with ``replace`` (the demo files are the whole district); returns the rows
    imported per layer.
    """
    counts: dict[str, int] = {}
    for layer, path in demo_layer_files(demo_dir):
        result = import_layer_file(conn, layer, path, replace=True, service_area_wgs84=service_area_wgs84)
        counts[layer] = result.rows_valid
        if report is not None:
            report(result)
    return counts
