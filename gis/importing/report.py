"""What an import is given and what it gives back: options, progress, per-row issues, the report and the
:class:`ImportSink` protocol the valid rows are written through (the database side lives in ``app``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa

from gis.importing.mapping import FieldMapping
from gis.importing.sources import DEFAULT_BATCH_ROWS
from gis.layers import LayerSpec

__all__ = [
    "DEFAULT_MAX_ISSUES_KEPT",
    "DEFAULT_NAIVE_TIMEZONE",
    "ImportOptions",
    "ImportProgress",
    "ImportReport",
    "ImportSink",
    "Issue",
    "IssueCode",
    "ProgressCallback",
    "Severity",
    "WriteCounts",
]


#: Issues kept in memory for the JSON report (the CSV report has them all).
DEFAULT_MAX_ISSUES_KEPT = 1_000
#: Naive timestamps in source files are read in this zone (Chinese metering systems record local time).
DEFAULT_NAIVE_TIMEZONE = "Asia/Shanghai"

IssueCode = Literal[
    "FIELD_IGNORED",
    "FIELD_MISSING",
    "FIELD_INVALID",
    "GEOMETRY_EMPTY",
    "GEOMETRY_INVALID",
    "GEOMETRY_REPAIRED",
    "GEOMETRY_TYPE_WRONG",
    "ID_DUPLICATE",
    "OUT_OF_SERVICE_AREA",
    "REFERENCE_UNKNOWN",
]
Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class ImportOptions:
    """How to import one file.

    Parameters
    ----------
    mapping
        Field mapping; fields it does not name are matched by column name.
    source_crs
        CRS of the coordinates (``EPSG:xxxx``, WKT or PROJ string); overrides the file's.
    encoding
        Attribute text encoding; by default the file's (``.cpg``) or detected.
    source_layer
        Layer inside a multi-layer file (GeoPackage, zip with several Shapefiles).
    skip_invalid
        Import the valid rows and report the others; otherwise any invalid row rejects the file.
    replace
        Delete rows of the layer whose key is not in the file.
    dry_run
        Validate and count what would change; the sink applies nothing.
    service_area_wgs84
        ``(min_lon, min_lat, max_lon, max_lat)``; geometries outside are rejected. ``None``: no check.
    batch_rows
        Rows per Arrow batch.
    naive_timezone
        Zone of timestamps that carry no offset.
    max_issues_kept
        Issues kept for the JSON report; the CSV report (``report_csv``) gets every issue.
    report_csv
        Where to write the full per-row report as CSV, or ``None``.
    """

    mapping: FieldMapping = field(default_factory=FieldMapping)
    source_crs: str | None = None
    encoding: str | None = None
    source_layer: str | None = None
    skip_invalid: bool = False
    replace: bool = False
    dry_run: bool = False
    service_area_wgs84: tuple[float, float, float, float] | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    naive_timezone: str = DEFAULT_NAIVE_TIMEZONE
    max_issues_kept: int = DEFAULT_MAX_ISSUES_KEPT
    report_csv: Path | None = None


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Progress of a running import: ``phase`` is ``reading`` (rows validated and staged) or ``writing``."""

    phase: Literal["reading", "writing", "done"]
    rows_done: int
    rows_total: int | None
    elapsed_s: float

    @property
    def percent(self) -> float:
        """Percent done: reading is 0–90 %, writing (the merge in the database) 90–100 %."""
        if self.phase == "done":
            return 100.0
        if self.phase == "writing":
            return 90.0
        if not self.rows_total or self.rows_total <= 0:
            return 0.0
        return min(90.0, 90.0 * self.rows_done / self.rows_total)


ProgressCallback = Callable[[ImportProgress], None]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem of one row: ``row`` is the 1-based feature number in the source file (0: the whole file)."""

    row: int
    key: str | None
    field: str
    code: str
    severity: Severity
    message: str
    value: str | None = None

    CSV_COLUMNS = ("row", "key", "field", "code", "severity", "message", "value")

    def to_dict(self) -> dict[str, Any]:
        """Return the issue as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.CSV_COLUMNS}


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What the sink did (or, on a dry run, would do)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    strategy: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class ImportReport:
    """The result document of one import: counts, the mapping used and the per-row issues."""

    layer: str
    source: str
    status: Literal["running", "imported", "dry_run", "rejected"] = "running"
    driver: str = ""
    source_layer: str | None = None
    source_crs: str | None = None
    encoding: str | None = None
    dry_run: bool = False
    skip_invalid: bool = False
    replace: bool = False
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    rows_with_warnings: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    strategy: str = ""
    column_mapping: dict[str, str] = field(default_factory=dict)
    unmapped_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    issue_counts: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    issues_truncated: bool = False
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    duration_s: float = 0.0

    @property
    def rows_per_s(self) -> float:
        """Rows read per second of the whole import."""
        return self.rows_read / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self, max_issues: int | None = None) -> dict[str, Any]:
        """Return the report as a JSON-ready dict (at most ``max_issues`` issues)."""
        issues = self.issues if max_issues is None else self.issues[:max_issues]
        return {
            "layer": self.layer,
            "source": self.source,
            "status": self.status,
            "driver": self.driver,
            "source_layer": self.source_layer,
            "source_crs": self.source_crs,
            "encoding": self.encoding,
            "dry_run": self.dry_run,
            "skip_invalid": self.skip_invalid,
            "replace": self.replace,
            "rows_read": self.rows_read,
            "rows_valid": self.rows_valid,
            "rows_rejected": self.rows_rejected,
            "rows_with_warnings": self.rows_with_warnings,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "strategy": self.strategy,
            "column_mapping": self.column_mapping,
            "unmapped_columns": self.unmapped_columns,
            "notes": self.notes,
            "issue_counts": self.issue_counts,
            "issues": [issue.to_dict() for issue in issues],
            "issues_truncated": self.issues_truncated or len(issues) < len(self.issues),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "rows_per_s": round(self.rows_per_s, 1),
        }

    def write_json(self, path: Path) -> None:
        """Write :meth:`to_dict` to ``path`` (UTF-8, Chinese kept readable)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")


class ImportSink(Protocol):
    """Where valid rows go. ``app/network/sink.py`` implements it over a SQLAlchemy ``Connection``.

    The importer calls :meth:`begin` once, :meth:`write` per batch and :meth:`finish` once, all inside
    the caller's transaction; an exception anywhere leaves the caller to roll back.
    """

    #: How ``write`` wants the ``geom`` column: ``ewkb`` (with SRID 4326) or ``wkb``, both binary.
    geometry_encoding: Literal["ewkb", "wkb"]

    def known_keys(self, layer: str, key: str) -> set[str]:
        """Return every value of ``key`` in ``layer`` as stored now (for reference checks)."""
        ...

    def begin(self, spec: LayerSpec, provided_fields: tuple[str, ...], expected_rows: int) -> None:
        """Prepare to receive rows of ``spec``; only ``provided_fields`` may overwrite stored values."""
        ...

    def encode(self, table: pa.Table) -> Any:
        """Turn one batch of valid rows (the layer's fields in order, then ``geom`` if it has one) into what
        :meth:`write` sends; runs on the importing thread, so encoding overlaps the previous write."""
        ...

    def write(self, batch: Any) -> None:
        """Stage one encoded batch (called on the writer thread, one batch at a time)."""
        ...

    def finish(self, *, replace: bool, dry_run: bool) -> WriteCounts:
        """Upsert the staged rows by key (deleting the rest with ``replace``); on a dry run only count."""
        ...

    def abort(self) -> None:
        """Discard anything staged outside the caller's transaction (called when the import fails)."""
        ...
