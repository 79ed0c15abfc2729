"""The import pipeline (R7): plan the import, then validate each Arrow batch, stage it through a write-behind
thread, and finish the sink; :func:`import_layer` is the entry point."""

from __future__ import annotations

import csv
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyproj

from gis.importing.coercion import _coerce_field
from gis.importing.errors import ImportEmptyReplaceError, ImportMappingError, ImportRejectedError, SourceCrsError
from gis.importing.geometry import SRID_WGS84, _parse_crs, _prepare_geometries, _to_wgs84
from gis.importing.mapping import SourceField
from gis.importing.plan import _FieldPlan, _Plan, _Problems
from gis.importing.report import (
    ImportOptions,
    ImportProgress,
    ImportReport,
    ImportSink,
    Issue,
    ProgressCallback,
    WriteCounts,
)
from gis.importing.sources import SourceInfo, iter_batches, open_source
from gis.layers import UNIT_FACTORS, FieldSpec, LayerSpec, get_layer

__all__ = ["import_layer"]


def _key_strings(columns: Mapping[str, pa.Array], key: tuple[str, ...]) -> npt.NDArray[np.object_]:
    """Return one string per row for the layer's key (``None`` where a key part is missing)."""
    parts = []
    for name in key:
        column = columns[name]
        if pa.types.is_timestamp(column.type):
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")
        parts.append(pc.cast(column, pa.string()))
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "|")
    return np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)


@dataclass
class _BatchResult:
    table: pa.Table
    problems: _Problems
    keys: npt.NDArray[np.object_]


class _Validator:
    """Validates batches in order; remembers keys across batches (duplicates) and reference sets."""

    def __init__(self, main: _Plan, sink: ImportSink) -> None:
        self.main = main
        self.sink = sink
        self.seen: set[str] = set()
        # Read now: later the sink's connection belongs to the writer thread.
        self.reference_sets = {
            (reference.layer, reference.key): sink.known_keys(reference.layer, reference.key)
            for reference in main.spec.references
        }

    def validate(self, batch: pa.RecordBatch) -> _BatchResult:
        """Coerce and check one batch; return its valid rows ready for the sink and its problems."""
        spec = self.main.spec
        problems = _Problems(batch.num_rows)
        columns = {plan.spec.name: _coerce_field(batch, plan, self.main, problems) for plan in self.main.fields}
        geometries = _prepare_geometries(batch, self.main, problems)
        keys = _key_strings(columns, spec.key)
        self._check_duplicates(keys, problems)
        for reference in spec.references:
            values = columns[reference.field].to_numpy(zero_copy_only=False)
            known = self.reference_sets[(reference.layer, reference.key)]
            unknown = np.fromiter(
                (value is not None and value not in known for value in values), dtype=bool, count=len(values)
            )
            problems.add(
                unknown,
                reference.field,
                "REFERENCE_UNKNOWN",
                f"{reference.field} names no row of {reference.layer}",
                values,
                severity=reference.severity,
            )
        valid = ~problems.errors
        table = pa.table([columns[name] for name in spec.field_names], names=list(spec.field_names))
        if not valid.all():
            table = table.filter(pa.array(valid))
        if geometries is not None:
            kept = geometries if valid.all() else geometries.take(valid)
            encoded = kept.to_ewkb() if self.sink.geometry_encoding == "ewkb" else kept.to_wkb()
            table = table.append_column("geom", encoded)
        return _BatchResult(table, problems, keys)

    def _check_duplicates(self, keys: npt.NDArray[np.object_], problems: _Problems) -> None:
        seen = self.seen
        duplicate = np.zeros(len(keys), dtype=bool)
        for index, key in enumerate(keys):
            if key is None:
                continue
            if key in seen:
                duplicate[index] = True
            else:
                seen.add(key)
        problems.add(
            duplicate,
            "/".join(self.main.spec.key),
            "ID_DUPLICATE",
            "the key appears earlier in the file; the first row wins",
            keys,
        )


# --- orchestration -----------------------------------------------------------------------------------------


def _resolve_crs(source: SourceInfo, options: ImportOptions, spec: LayerSpec, notes: list[str]) -> pyproj.CRS | None:
    if spec.geometry_type is None:
        return None
    override = options.source_crs or options.mapping.crs
    if override:
        crs = _parse_crs(override, what="--crs" if options.source_crs else "mapping crs")
        if source.crs is not None and not source.crs.equals(crs, ignore_axis_order=True):
            notes.append(f"the file declares {source.crs.name}; {crs.name} was used as given")
        return crs
    if source.crs is not None:
        return source.crs
    if source.xy_columns is not None and source.lonlat_columns:
        notes.append("CSV lon/lat columns read as WGS-84 (EPSG:4326)")
        return pyproj.CRS.from_epsg(SRID_WGS84)
    if source.geometry_type is None:
        return None
    raise SourceCrsError(
        f"{source.path.name} declares no coordinate system; give one, e.g. --crs EPSG:4545.", file=source.path.name
    )


def _column_lookup(columns: Sequence[str]) -> Callable[[str], str | None]:
    exact = set(columns)
    lowered = {column.lower(): column for column in columns}

    def find(name: str) -> str | None:
        return name if name in exact else lowered.get(name.lower())

    return find


def _plan(spec: LayerSpec, source: SourceInfo, options: ImportOptions, crs: pyproj.CRS | None) -> _Plan:
    mapping = options.mapping
    find = _column_lookup(source.columns)
    mapping.check_targets(spec)
    plans = []
    file_issues = []
    for field_spec in spec.fields:
        name = field_spec.name
        if field_spec.service_owned:
            # Never from the file: new rows get the default, stored rows keep their value (the sink never
            # writes a field that is not provided). A same-named column (an export of Sanling's own data) is
            # reported once, for the whole file.
            plans.append(_FieldPlan(field_spec))
            column = find(name)
            if column is not None:
                file_issues.append(Issue(
                    row=0, key=None, field=name, code="FIELD_IGNORED", severity="warning", value=column,
                    message=f"column {column} ignored: {name} is kept by the service (the sum of the open "
                            "capacity bookings); new rows start at 0, stored rows keep theirs"))
        elif name in mapping.fields:
            source_field = mapping.fields[name]
            column = find(source_field.column)
            if column is None:
                raise ImportMappingError(
                    f"The mapping takes {name} from column {source_field.column!r}, which {source.path.name} does "
                    f"not have; its columns are {', '.join(source.columns)}.",
                    field=name,
                    column=source_field.column,
                    columns=list(source.columns),
                )
            factor = _unit_factor(field_spec, source_field)
            plans.append(_FieldPlan(field_spec, column=column, factor=factor, values=source_field.values))
        elif name in mapping.constants:
            plans.append(_FieldPlan(field_spec, constant=mapping.constants[name]))
        else:
            column = find(name)
            plans.append(_FieldPlan(field_spec, column=column))
            if column is None and field_spec.required:
                raise ImportMappingError(
                    f"{spec.name} needs {name}, and {source.path.name} has no such column; map one with "
                    f"--map SRC={name} or a mapping file. Its columns are {', '.join(source.columns)}.",
                    field=name,
                    columns=list(source.columns),
                )
    transformer = _to_wgs84(crs.to_wkt()) if crs is not None else None
    return _Plan(
        spec=spec,
        fields=tuple(plans),
        transformer=transformer,
        source_is_projected=bool(crs is not None and crs.is_projected),
        service_area_wgs84=options.service_area_wgs84,
        naive_timezone=options.naive_timezone,
        geometry_column=source.geometry_column,
        file_issues=tuple(file_issues),
    )


def _unit_factor(field_spec: FieldSpec, source_field: SourceField) -> float:
    factor = source_field.scale or 1.0
    if source_field.unit is None:
        return factor
    if field_spec.unit is None:
        raise ImportMappingError(
            f"{field_spec.name} has no unit, so the source unit {source_field.unit!r} cannot be converted.",
            field=field_spec.name,
            unit=source_field.unit,
        )
    units = {unit.lower(): value for unit, value in UNIT_FACTORS[field_spec.unit].items()}
    if source_field.unit.lower() not in units:
        raise ImportMappingError(
            f"Cannot convert {source_field.unit!r} to {field_spec.unit} for {field_spec.name}; known units: "
            f"{', '.join(UNIT_FACTORS[field_spec.unit])}.",
            field=field_spec.name,
            unit=source_field.unit,
        )
    return factor * units[source_field.unit.lower()]


class _WriteBehind:
    """Runs ``sink.write`` in one background thread, so reading and validating the next batch overlaps the
    database write of this one (two cores: Python on one, the database on the other).

    At most ``depth`` batches wait, which keeps memory bounded. The sink is only used by this thread
    between :meth:`__enter__` and :meth:`__exit__`, never concurrently.
    """

    def __init__(self, sink: ImportSink, depth: int = 2) -> None:
        self.sink = sink
        self.pending: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sanling-import-writer", daemon=True)

    def __enter__(self) -> _WriteBehind:
        self.thread.start()
        return self

    def _run(self) -> None:
        while (batch := self.pending.get()) is not None:
            if self.error is None:
                try:
                    self.sink.write(batch)
                except BaseException as exc:  # handed to the importing thread
                    self.error = exc

    def write(self, table: pa.Table) -> None:
        """Encode one batch here and queue it for the writer; raises the writer's error, if any, at once."""
        if self.error is not None:
            raise self.error
        self.pending.put(self.sink.encode(table))

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        self.pending.put(None)
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error


class _IssueLog:
    """Counts issues into the report, keeps the first ones and streams all of them to the CSV report."""

    def __init__(self, report: ImportReport, max_kept: int, csv_path: Path | None) -> None:
        self.report = report
        self.max_kept = max_kept
        self.csv_path = csv_path
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def __enter__(self) -> _IssueLog:
        if self.csv_path is not None:
            self._handle = Path(self.csv_path).open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(Issue.CSV_COLUMNS)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._handle is not None:
            self._handle.close()

    def add(self, issues: Iterator[Issue]) -> None:
        report = self.report
        for issue in issues:
            report.issue_counts[issue.code] = report.issue_counts.get(issue.code, 0) + 1
            if len(report.issues) < self.max_kept:
                report.issues.append(issue)
            else:
                report.issues_truncated = True
            if self._writer is not None:
                self._writer.writerow(
                    [issue.row, issue.key, issue.field, issue.code, issue.severity, issue.message, issue.value]
                )


def _run_batches(source: SourceInfo, validator: _Validator, sink: ImportSink, options: ImportOptions,
                 report: ImportReport, tell: Callable[[Literal["reading", "writing", "done"], int | None], None]
                 ) -> WriteCounts:
    """Validate and stage every batch, then finish the sink (or raise when rows were rejected)."""
    total = source.feature_count if source.feature_count >= 0 else None
    tell("reading", total)
    with _IssueLog(report, options.max_issues_kept, options.report_csv) as log, _WriteBehind(sink) as writer:
        log.add(iter(validator.main.file_issues))
        for batch in iter_batches(source, options.batch_rows):
            result = validator.validate(batch)
            first_row = report.rows_read + 1
            report.rows_read += batch.num_rows
            errors, warnings = result.problems.errors, result.problems.warnings
            report.rows_rejected += int(errors.sum())
            report.rows_valid += int((~errors).sum())
            report.rows_with_warnings += int((warnings & ~errors).sum())
            log.add(result.problems.issues(first_row, result.keys))
            # Strict mode stops writing at the first error but goes on validating for a full report.
            if result.table.num_rows and (options.skip_invalid or report.rows_rejected == 0):
                writer.write(result.table)
            tell("reading", total)
    if report.rows_rejected and not options.skip_invalid:
        report.status = "rejected"
        raise ImportRejectedError(report)
    if options.replace and report.rows_valid == 0:
        raise ImportEmptyReplaceError(
            f"{report.source} has no valid row; replacing would delete every row of {report.layer}.",
            layer=report.layer)
    tell("writing", total)
    return sink.finish(replace=options.replace, dry_run=options.dry_run)


def import_layer(
    path: Path,
    layer: str,
    sink: ImportSink,
    options: ImportOptions | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import one layer file through ``sink``: read in batches, map, validate, stage, then upsert (R7).

    Parameters
    ----------
    path
        The source file (see :func:`open_source`).
    layer
        A layer of :data:`gis.layers.LAYERS`.
    sink
        Where valid rows go, usually ``app.network.sink.DatabaseSink`` on the caller's transaction.
    options
        Mapping, CRS, flags and limits (:class:`ImportOptions`).
    progress
        Called after every batch and when the write phase starts and ends.

    Returns
    -------
    ImportReport
        Counts and issues; ``status`` is ``imported`` or ``dry_run``.

    Raises
    ------
    ImportRejectedError
        Some rows are invalid and ``options.skip_invalid`` is false (the report is attached); the sink
        was not finished, so the caller's rollback leaves the layer untouched.
    LayerUnknownError, LayerFileError, ImportMappingError, SourceCrsError, ImportEmptyReplaceError
        Problems with the layer name, the file, the mapping, the CRS or an empty ``replace``.

    Notes
    -----
    One Arrow record batch at a time (memory is bounded by the batch size, not the file):
    :func:`open_source` finds the layer, its CRS, size and text encoding; :class:`FieldMapping` maps
    columns to fields (units, value maps, constants); each batch is coerced and validated column by
    column with numpy/pyarrow, its geometries decoded, normalised to the layer's type, reprojected to
    EPSG:4326, checked against the service area and repaired where safe; every problem becomes an
    :class:`Issue`. Valid rows are encoded on this thread and written by a second one
    (:class:`_WriteBehind`) while the next batch is read. Nothing here opens a session or knows a
    table: the sink does the writing (docs/import.md).
    """
    options = options or ImportOptions()
    spec = get_layer(layer)
    mapping = options.mapping
    if mapping.layer and mapping.layer != layer:
        raise ImportMappingError(
            f"The mapping is for layer {mapping.layer!r}, not {layer!r}.", layer=layer, mapping_layer=mapping.layer
        )
    started = time.perf_counter()
    report = ImportReport(
        layer=layer,
        source=Path(path).name,
        dry_run=options.dry_run,
        skip_invalid=options.skip_invalid,
        replace=options.replace,
    )

    def tell(phase: Literal["reading", "writing", "done"], total: int | None) -> None:
        if progress is not None:
            progress(ImportProgress(phase, report.rows_read, total, time.perf_counter() - started))

    with open_source(
        Path(path),
        source_layer=options.source_layer or mapping.source_layer,
        encoding=options.encoding or mapping.encoding,
        x_column=mapping.x_column,
        y_column=mapping.y_column,
    ) as source:
        report.driver, report.source_layer, report.encoding = source.driver, source.layer, source.encoding
        report.notes.extend(source.notes)
        crs = _resolve_crs(source, options, spec, report.notes)
        report.source_crs = crs.to_string() if crs is not None else None
        main = _plan(spec, source, options, crs)
        report.column_mapping = {
            plan.spec.name: plan.column if plan.column is not None else f"={plan.constant!r}"
            for plan in main.fields
            if plan.provided
        }
        used = {plan.column for plan in main.fields if plan.column}
        report.unmapped_columns = [column for column in source.columns if column not in used]
        total = source.feature_count if source.feature_count >= 0 else None
        validator = _Validator(main, sink)
        sink.begin(spec, main.provided_fields, max(source.feature_count, 0))
        try:
            counts = _run_batches(source, validator, sink, options, report, tell)
        except BaseException:
            report.duration_s = time.perf_counter() - started
            sink.abort()
            raise
    report.inserted, report.updated, report.unchanged, report.deleted = (
        counts.inserted,
        counts.updated,
        counts.unchanged,
        counts.deleted,
    )
    report.strategy = counts.strategy
    report.notes.extend(counts.notes)
    report.status = "dry_run" if options.dry_run else "imported"
    report.duration_s = time.perf_counter() - started
    tell("done", total)
    return report
