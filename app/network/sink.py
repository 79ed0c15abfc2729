"""The database sink of the batch importer (R7): staged merges, PostgreSQL binary COPY, table swaps.

``DatabaseSink`` implements ``gis.importing``'s sink protocol against the ORM tables: each batch is merged
into the layer's table (SQLite and small PostgreSQL changes), or — for a bulk change on PostgreSQL — written
by binary ``COPY`` into a new table that is swapped in with its indexes and constraints. Every committed
change of assets advances the generation counters (``app.network.generations``).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Table, text

from app.network.generations import bump_generation, record_peak_changes
from app.platform import models
from gis.importing import (
    WriteCounts,
)
from gis.layers import LAYERS, LayerSpec, get_layer

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


_COPY_HEADER = np.frombuffer(b"PGCOPY\n\xff\r\n\x00" + bytes(8), dtype=np.uint8)
_COPY_TRAILER = np.frombuffer(b"\xff\xff", dtype=np.uint8)
# PostgreSQL's timestamp epoch (2000-01-01 UTC) in microseconds after the Unix epoch.
_PG_EPOCH_US = 946_684_800_000_000


def _scatter_fixed(out: npt.NDArray[np.uint8], positions: npt.NDArray[np.int64],
                   values: npt.NDArray[np.uint8]) -> None:
    """Write each row of ``values`` (n × width bytes) at ``out[positions[i]:]``."""
    for offset in range(values.shape[1]):
        out[positions + offset] = values[:, offset]


def binary_copy_payload(table: pa.Table) -> memoryview:
    """Encode ``table`` as one PostgreSQL binary ``COPY`` stream, vectorised over rows.

    Columns are strings (sent as UTF-8), float64 (``float8``), UTC timestamps (``timestamptz``) and
    binary (EWKB for ``geometry``); nulls are allowed everywhere. Each row is a 16-bit field count, then
    per field a 32-bit length (−1 for null) and the value, all big-endian (PostgreSQL "COPY", binary
    format). Building the bytes with numpy instead of row by row keeps the server, not Python, the
    bottleneck.
    """
    count = table.num_rows
    fields: list[tuple[npt.NDArray[np.int64], Any]] = []
    for column in table.columns:
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        null = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_floating(array.type) or pa.types.is_timestamp(array.type):
            if pa.types.is_timestamp(array.type):
                numbers = pc.cast(array, pa.int64()).fill_null(0).to_numpy() - _PG_EPOCH_US
                payload = numbers.astype(">i8").view(np.uint8).reshape(count, 8)
            else:
                payload = array.fill_null(0.0).to_numpy().astype(">f8").view(np.uint8).reshape(count, 8)
            fields.append((np.where(null, -1, 8), payload))
            continue
        if pa.types.is_string(array.type):
            array = array.view(pa.binary())
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + count + 1]
        data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if array.buffers()[2] else np.zeros(0, np.uint8)
        lengths = np.diff(offsets).astype(np.int64)
        fields.append((np.where(null, -1, lengths), (offsets, data)))
    widths = sum(4 + np.maximum(lengths, 0) for lengths, _payload in fields) + 2
    row_starts = np.zeros(count, dtype=np.int64)
    np.cumsum(widths[:-1], out=row_starts[1:])
    row_starts += len(_COPY_HEADER)
    out = np.empty(len(_COPY_HEADER) + int(widths.sum()) + len(_COPY_TRAILER), dtype=np.uint8)
    out[:len(_COPY_HEADER)] = _COPY_HEADER
    out[-len(_COPY_TRAILER):] = _COPY_TRAILER
    out[row_starts] = 0
    out[row_starts + 1] = len(fields)
    position = row_starts + 2
    for lengths, payload in fields:
        _scatter_fixed(out, position, lengths.astype(">i4").view(np.uint8).reshape(count, 4))
        position = position + 4
        present = lengths >= 0
        if isinstance(payload, np.ndarray):
            _scatter_fixed(out, position[present], payload[present])
        else:
            offsets, data = payload
            sizes = np.maximum(lengths, 0)
            total = int(sizes.sum())
            if total:
                # Byte k of row i goes to position[i] + k; it is byte before[i] + k of the non-null values.
                before = np.zeros(count, dtype=np.int64)
                np.cumsum(sizes[:-1], out=before[1:])
                raw = data[offsets[0]:offsets[-1]]
                if int(offsets[-1] - offsets[0]) != total:  # null slots that still hold bytes: drop them
                    raw = raw[np.repeat(present, np.diff(offsets))]
                out[np.repeat(position - before, sizes) + np.arange(total, dtype=np.int64)] = raw
        position = position + np.maximum(lengths, 0)
    return memoryview(out)


def _q(name: str) -> str:
    """Quote an identifier (names come from the layer registry, never from input)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _SwapPlan:
    """Indexes and constraints of a PostgreSQL table, to recreate on its replacement."""

    constraints: tuple[tuple[str, str, str], ...]  # (constraint, PRIMARY KEY or UNIQUE, its index)
    indexes: tuple[tuple[str, str], ...]  # (index, CREATE INDEX statement for the new table, temporary name)
    sequences: tuple[tuple[str, str], ...]  # (sequence, column) owned by the table
    grants: tuple[tuple[str, str], ...]  # (privilege, grantee)


@dataclass(frozen=True)
class _Encoded:
    """One batch ready to send: its columns, row count and COPY bytes or parameter rows."""

    columns: tuple[str, ...]
    rows: int
    payload: Any


class DatabaseSink:
    """The importer's sink over a SQLAlchemy ``Connection`` inside the caller's transaction.

    Rows are staged (PostgreSQL binary ``COPY``, SQLite ``executemany``) and upserted by key with one of
    three strategies, reported as ``strategy`` (docs/import.md, "Writing"): ``merge`` updates changed
    rows, inserts new ones and deletes missing ones (``replace``) in place; ``rebuild`` (many changes)
    builds the next table, indexes it once and swaps it in (PostgreSQL) or merges with SpatiaLite's
    per-row triggers off and rebuilds the R*Tree (SQLite); ``direct`` (PostgreSQL, empty table) copies
    straight into the next table. The asset generation is bumped in the same transaction when anything
    changed, so every worker rebuilds its siting index after the commit.

    Everything readers can see changes in the caller's transaction, which this class never commits. The
    one exception is the ``direct`` strategy on PostgreSQL: the next table, ``<layer>__new``, is filled
    and indexed on helper connections (committed, so two of them can build its indexes at once), and
    only the swap happens in the caller's transaction. Until then the table is invisible to the
    application; :meth:`abort` drops it, and so does the next import if a crash left it behind.

    Parameters
    ----------
    conn
        A connection with an open transaction.
    bulk_min_rows
        Smallest change for which PostgreSQL rebuilds the table instead of merging in place.
    """

    def __init__(self, conn: Connection, *, bulk_min_rows: int = BULK_MIN_ROWS) -> None:
        self.conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"
        self.geometry_encoding: Literal["ewkb", "wkb"] = "ewkb" if self.is_postgres else "wkb"
        self.bulk_min_rows = bulk_min_rows
        self.staged = 0
        self._mode: Literal["stage", "direct"] = "stage"
        self._helper: Connection | None = None  # the direct strategy's connection for the new table

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
            # EXCLUSIVE: plain readers never wait; other writers, a second import and row locks (a booking's
            # SELECT … FOR UPDATE of transformers) wait for the commit. A weaker mode (SHARE ROW EXCLUSIVE) let a
            # booking lock a row first and then wait for this lock while the import waited for its row: deadlock.
            self.conn.exec_driver_sql(f"LOCK TABLE {_q(name)} IN EXCLUSIVE MODE")
        self.target_rows = self.conn.exec_driver_sql(f"SELECT count(*) FROM {_q(name)}").scalar_one()
        self.stage = f"import_stage_{name}"
        self.stage_sql = f"{'pg_temp' if self.is_postgres else 'temp'}.{_q(self.stage)}"
        self._swap: _SwapPlan | None = self._swap_plan() if self.is_postgres else None
        if self._swap is not None and self.target_rows == 0 and expected_rows >= self.bulk_min_rows:
            self._mode = "direct"
            self.stage = name + _NEW_SUFFIX
            self.stage_sql = _q(self.stage)
            self._helper = self.conn.engine.connect()
            self._create_next_table(self._helper)  # committed with the rows, so COPY can write them frozen
            return
        self._mode = "stage"
        columns = ", ".join(_q(column) for column in self.columns)
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage_sql}")
        self.conn.exec_driver_sql(f"CREATE TEMP TABLE {_q(self.stage)} AS SELECT {columns} FROM {_q(name)} WHERE 1 = 0")

    def encode(self, table: pa.Table) -> _Encoded:
        """Encode a batch: a binary ``COPY`` stream (PostgreSQL) or parameter rows (SQLite)."""
        if self.is_postgres:
            return _Encoded(tuple(table.column_names), table.num_rows, binary_copy_payload(table))
        values = []
        for name in table.column_names:
            column = table.column(name)
            if pa.types.is_timestamp(column.type):
                column = pc.strftime(column, format=_SQLITE_DATETIME_FORMAT)
            values.append(column.to_pylist())
        return _Encoded(tuple(table.column_names), table.num_rows, list(zip(*values, strict=True)))

    def write(self, batch: _Encoded) -> None:
        """Stage one encoded batch (``COPY`` on PostgreSQL, ``executemany`` on SQLite)."""
        columns = ", ".join(_q(name) for name in batch.columns)
        if self.is_postgres:
            conn = self._helper or self.conn
            # The direct strategy's table was created in this transaction: its rows can be written frozen.
            freeze = ", FREEZE" if self._helper is not None else ""
            if not conn.in_transaction():
                conn.begin()  # so that SQLAlchemy's commit() commits the COPY sent on the driver connection
            driver_connection: Any = conn.connection.driver_connection
            with driver_connection.cursor() as cursor, \
                    cursor.copy(f"COPY {self.stage_sql} ({columns}) FROM STDIN (FORMAT binary{freeze})") as copy:
                copy.write(batch.payload)
        else:
            marks = ", ".join("GeomFromWKB(?, 4326)" if name == "geom" else "?" for name in batch.columns)
            self.conn.exec_driver_sql(f"INSERT INTO {self.stage_sql} ({columns}) VALUES ({marks})", batch.payload)
        self.staged += batch.rows

    def finish(self, *, replace: bool, dry_run: bool) -> WriteCounts:
        """Upsert the staged rows (or count on a dry run); bump the generation if anything changed."""
        if self._mode == "direct":
            counts = WriteCounts(inserted=self.staged, strategy="direct")
            if dry_run:
                self.abort()
            else:
                self._index_in_parallel()
                self._swap_in()
        else:
            counted = self._count(replace)
            changed = counted.inserted + counted.updated + counted.deleted
            rebuild = ((self._swap is not None or not self.is_postgres) and changed >= self.bulk_min_rows
                       and changed >= BULK_MIN_SHARE * (self.target_rows + counted.inserted))
            counts = WriteCounts(counted.inserted, counted.updated, counted.unchanged, counted.deleted,
                                 strategy="rebuild" if rebuild else "merge")
            if not dry_run and changed:
                if rebuild and self.is_postgres:
                    self._rebuild(replace, counts)
                elif rebuild:
                    self._merge_sqlite_bulk(replace, counts)
                else:
                    self._merge(replace, counts)
        notes: list[str] = []
        moved = 0
        if not dry_run:
            changed = bool(counts.inserted or counts.updated or counts.deleted)
            if self.spec.name == "load_readings":
                # Readings change no asset: the new peaks go to the load-change log, which every worker applies to
                # the network it holds (no re-read of the network; issue 12). The generation moves either way, so
                # the capacity and map views read the readings again.
                peaks = self._update_transformer_peaks() if self.staged else {}
                if peaks:
                    notes.append(f"peak_kva/peak_at of {len(peaks)} transformers moved to their latest reading")
            elif self.spec.name == "transformers":
                synced = self._sync_reserved_kva()
                if synced:
                    moved += synced  # a change of the network like any other: the generation moves
                    notes.append(f"reserved_kva of {synced} transformers set to the sum of their open bookings")
            if counts.deleted:
                notes.extend(self._orphan_notes())
            if self.spec.name == "load_readings":
                if peaks:
                    record_peak_changes(self.conn, peaks)
                elif changed:
                    bump_generation(self.conn, network=False)
            elif changed or moved:
                bump_generation(self.conn)
        self._drop_stage()
        return WriteCounts(counts.inserted, counts.updated, counts.unchanged, counts.deleted, counts.strategy,
                           tuple(notes))

    # -- staging ------------------------------------------------------------------------------------------
    def _drop_stage(self) -> None:
        if self._mode == "stage":
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage_sql}")

    def abort(self) -> None:
        """Drop what was staged outside the caller's transaction (the direct strategy's new table)."""
        helper, self._helper = self._helper, None
        if helper is None:
            return
        try:
            helper.rollback()
            helper.exec_driver_sql(f"DROP TABLE IF EXISTS {self.stage_sql}")
            helper.commit()
        finally:
            helper.close()

    # -- merge in place -----------------------------------------------------------------------------------
    def _key_match(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{_q(key)} = {right}.{_q(key)}" for key in self.spec.key)

    def _differs(self, left: str, right: str) -> str:
        compared = (*self.provided, *(("geom",) if self.spec.geometry_type else ()))
        if not compared:
            return "1 = 0"
        return " OR ".join(f"{left}.{_q(name)} IS DISTINCT FROM {right}.{_q(name)}" for name in compared)

    def _count(self, replace: bool) -> WriteCounts:
        """Count what the stage would insert, update, leave and (``replace``) delete, in one join.

        Keys are unique in the stage (the importer drops duplicates) and in the table, so the rows of the
        table that the stage does not match are exactly the ones ``replace`` deletes.
        """
        matched = changed = 0
        if self.target_rows:
            matched, changed = self.conn.exec_driver_sql(
                f"SELECT count(*), coalesce(sum(CASE WHEN {self._differs('t', 's')} THEN 1 ELSE 0 END), 0) "
                f"FROM {self.stage_sql} s JOIN {_q(self.spec.table)} t ON {self._key_match('t', 's')}").one()
        return WriteCounts(inserted=self.staged - matched, updated=changed, unchanged=matched - changed,
                           deleted=self.target_rows - matched if replace else 0)

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
            "+ (SELECT count(*) FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype IN ('f', 'x')) "
            "+ (SELECT count(*) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "   WHERE d.refobjid = CAST(:t AS regclass) AND r.ev_class <> CAST(:t AS regclass)) "
            "+ (SELECT count(*) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal) "
            "+ (SELECT count(*) FROM pg_inherits WHERE inhparent = CAST(:t AS regclass) "
            "   OR inhrelid = CAST(:t AS regclass))"), {"t": name}).scalar_one()
        if dependents:
            return None
        rows = conn.execute(text(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid), c.conname, c.contype "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) ORDER BY ic.relname"), {"t": name}).all()
        constraints, indexes = [], []
        for index_name, index_def, constraint_name, constraint_type in rows:
            match = _INDEX_DEF.match(index_def)
            if match is None:
                return None
            indexes.append((index_name, f"CREATE {match['unique'] or ''}INDEX {_q(index_name + _NEW_SUFFIX)} "
                                        f"ON {_q(name + _NEW_SUFFIX)} USING {index_def[match.end():]}"))
            if constraint_name:
                constraints.append((constraint_name, "PRIMARY KEY" if constraint_type == "p" else "UNIQUE",
                                    index_name))
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

    def _create_next_table(self, conn: Connection) -> None:
        """Create ``<layer>__new`` like the layer's table, without its indexes (they come after the load)."""
        new, target = _q(self.spec.table + _NEW_SUFFIX), _q(self.spec.table)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {new}")  # a crashed import may have left one
        conn.exec_driver_sql(f"CREATE TABLE {new} (LIKE {target} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                             "INCLUDING STORAGE INCLUDING COMMENTS)")

    def _rebuild(self, replace: bool, counts: WriteCounts) -> None:
        """Build the layer's next table from the stage and the rows it keeps, then swap it in."""
        name = self.spec.table
        new, target, stage = _q(name + _NEW_SUFFIX), _q(name), self.stage_sql
        self._create_next_table(self.conn)
        provided = set(self.provided) | set(self.spec.key) | {"geom"}
        columns = ", ".join(_q(n) for n in self.columns)
        kept = ", ".join(f"s.{_q(n)}" if n in provided else f"t.{_q(n)}" for n in self.columns)
        matched = counts.updated + counts.unchanged
        if matched:  # rows in the file that exist: keep id and the fields the file does not provide
            self.conn.exec_driver_sql(f"INSERT INTO {new} (id, {columns}) SELECT t.id, {kept} FROM {stage} s "
                                      f"JOIN {target} t ON {self._key_match('t', 's')}")
        if counts.inserted:
            self.conn.exec_driver_sql(
                f"INSERT INTO {new} ({columns}) SELECT {', '.join('s.' + _q(n) for n in self.columns)} "
                f"FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {self._key_match('t', 's')})")
        if not replace and self.target_rows > matched:  # rows the file does not name stay
            self.conn.exec_driver_sql(
                f"INSERT INTO {new} SELECT t.* FROM {target} t "
                f"WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE {self._key_match('t', 's')})")
        self.conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
        assert self._swap is not None
        for _index_name, statement in self._swap.indexes:
            self.conn.exec_driver_sql(statement)
        self.conn.exec_driver_sql(f"ANALYZE {new}")
        self._swap_in()

    def _index_in_parallel(self) -> None:
        """Commit the loaded ``<layer>__new`` and build its indexes on two connections at once.

        GiST indexes build on one connection, the B-trees on the other: the two cores are both busy,
        and ``CREATE INDEX`` only takes a SHARE lock, so the builds do not wait for each other.
        """
        assert self._swap is not None and self._helper is not None
        self._helper.commit()
        statements = [statement for _name, statement in self._swap.indexes]
        groups = [group for group in ([s for s in statements if " USING gist " in s],
                                      [s for s in statements if " USING gist " not in s]) if group]
        engine = self.conn.engine

        def build(group: list[str]) -> None:
            with engine.connect() as conn:
                conn.exec_driver_sql("SET maintenance_work_mem = '256MB'")
                for statement in group:
                    conn.exec_driver_sql(statement)
                conn.commit()

        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="sanling-index") as pool:
            for future in [pool.submit(build, group) for group in groups]:
                future.result()
        self._helper.exec_driver_sql(f"ANALYZE {self.stage_sql}")
        self._helper.commit()
        self._helper.close()
        self._helper = None

    def _swap_in(self) -> None:
        """Replace the layer's table by ``<layer>__new`` (indexed) in the caller's transaction."""
        plan = self._swap
        assert plan is not None
        name = self.spec.table
        new = name + _NEW_SUFFIX
        conn = self.conn
        for sequence, column in plan.sequences:
            conn.exec_driver_sql(f"ALTER SEQUENCE {_q(sequence)} OWNED BY {_q(new)}.{_q(column)}")
        for privilege, grantee in plan.grants:
            conn.exec_driver_sql(f"GRANT {privilege} ON {_q(new)} TO {grantee}")
        # The swap: readers of the old table finish first; new readers see the new table after the commit.
        conn.exec_driver_sql(f"DROP TABLE {_q(name)}")
        conn.exec_driver_sql(f"ALTER TABLE {_q(new)} RENAME TO {_q(name)}")
        attached = set()
        for constraint_name, kind, index_name in plan.constraints:  # renames the index to the constraint's name
            conn.exec_driver_sql(f"ALTER TABLE {_q(name)} ADD CONSTRAINT {_q(constraint_name)} {kind} "
                                 f"USING INDEX {_q(index_name + _NEW_SUFFIX)}")
            attached.add(index_name)
        for index_name, _statement in plan.indexes:
            if index_name not in attached:
                conn.exec_driver_sql(f"ALTER INDEX {_q(index_name + _NEW_SUFFIX)} RENAME TO {_q(index_name)}")

    # -- after the write ----------------------------------------------------------------------------------
    def _update_transformer_peaks(self) -> dict[str, float]:
        """Move ``peak_kva``/``peak_at`` of the transformers in the file to their latest reading; the moved ones'
        new ``peak_kva`` by asset id (a peak that stays with only ``peak_at`` moving is returned too: harmless)."""
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
            "latest.read_at) RETURNING transformers.asset_id, transformers.peak_kva")
        return {str(asset_id): float(peak or 0.0) for asset_id, peak in result}

    def _sync_reserved_kva(self) -> int:
        """Set ``reserved_kva`` of each transformer the file names to the sum of its open bookings; count the moves.

        Bookings are the service's own state (``applications.reserved_kva`` on ``reserved_transformer_asset_id``,
        ``app.network.reservations``): the file never sets the column (``FieldSpec.service_owned``), so stored rows
        keep theirs and new rows start at 0. This catches the rest: a transformer deleted by ``replace`` and
        imported again while applications still hold bookings on it, or a stored value that had drifted. Both
        statements touch only rows that differ, so a re-import of an unchanged network writes nothing.
        """
        def named(alias: str) -> str:  # the direct strategy's stage is the table itself: every row is the file's
            return "" if self._mode == "direct" else f" AND {alias}.asset_id IN (SELECT asset_id FROM {self.stage_sql})"

        booked = self.conn.exec_driver_sql(
            "UPDATE transformers SET reserved_kva = b.kva FROM (SELECT reserved_transformer_asset_id AS asset_id, "
            "sum(reserved_kva) AS kva FROM applications WHERE reserved_transformer_asset_id IS NOT NULL "
            "GROUP BY reserved_transformer_asset_id) b WHERE transformers.asset_id = b.asset_id "
            f"AND abs(transformers.reserved_kva - b.kva) > 1e-9{named('transformers')}").rowcount
        released = self.conn.exec_driver_sql(
            "UPDATE transformers SET reserved_kva = 0 WHERE asset_id IN (SELECT t.asset_id FROM transformers t "
            f"WHERE t.reserved_kva <> 0{named('t')} AND NOT EXISTS (SELECT 1 FROM applications a "
            "WHERE a.reserved_transformer_asset_id = t.asset_id))").rowcount
        return int(booked or 0) + int(released or 0)

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
