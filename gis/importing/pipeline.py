"""Batch import of GIS layer files (R7): streamed reading, field mapping, units, reprojection, per-row validation."""

from __future__ import annotations

import contextlib
import csv
import json
import queue
import re
import shutil
import tempfile
import threading
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import pyproj
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gis.crs import cached_transformer
from gis.errors import InvalidInputError, SanlingError
from gis.layers import UNIT_FACTORS, FieldSpec, LayerSpec, get_layer

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "FieldMapping",
    "ImportEmptyReplaceError",
    "ImportMappingError",
    "ImportOptions",
    "ImportProgress",
    "ImportRejectedError",
    "ImportReport",
    "ImportSink",
    "Issue",
    "LayerFileError",
    "SourceCrsError",
    "SourceField",
    "SourceInfo",
    "WriteCounts",
    "encode_ewkb_points",
    "import_layer",
    "iter_batches",
    "open_source",
]

#: Rows per Arrow batch: big enough that per-batch overheads vanish, small enough to bound memory.
DEFAULT_BATCH_ROWS = 65_536
#: Issues kept in memory for the JSON report (the CSV report has them all).
DEFAULT_MAX_ISSUES_KEPT = 1_000
#: Naive timestamps in source files are read in this zone (Chinese metering systems record local time).
DEFAULT_NAIVE_TIMEZONE = "Asia/Shanghai"
#: A polygon repair is "safe" when make_valid changes its area by at most this fraction.
SAFE_REPAIR_AREA_TOLERANCE = 0.01
SRID_WGS84 = 4326

SUPPORTED_SUFFIXES = (".gpkg", ".zip", ".shp", ".geojson", ".json", ".csv")
# CSV coordinate columns recognised without a mapping (compared case-insensitively). Chinese survey
# tables often label northing "X" and easting "Y", so X/Y columns in Chinese are never guessed.
_LON_NAMES = ("lon", "lng", "long", "longitude", "lon_wgs84", "经度")
_LAT_NAMES = ("lat", "latitude", "lat_wgs84", "纬度")
_X_NAMES = ("x", "x_m", "easting")
_Y_NAMES = ("y", "y_m", "northing")
_PSEUDO_X, _PSEUDO_Y = "x", "y"

IssueCode = Literal[
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


# --- errors ------------------------------------------------------------------------------------------------


class LayerFileError(InvalidInputError):
    """A GIS file could not be found, opened or read."""

    code = "LAYER_FILE_UNREADABLE"
    default_message = "The GIS file could not be read."


class ImportMappingError(InvalidInputError):
    """The field mapping names an unknown field, column or unit, or leaves a required field unmapped."""

    code = "IMPORT_MAPPING_INVALID"
    default_message = "The field mapping is invalid."


class SourceCrsError(InvalidInputError):
    """The source's coordinate reference system is missing or unknown."""

    code = "IMPORT_CRS_INVALID"
    default_message = "The coordinate reference system of the file is missing or unknown."


class ImportEmptyReplaceError(InvalidInputError):
    """``replace`` with no valid row would delete the whole layer; refused."""

    code = "IMPORT_EMPTY_REPLACE"
    default_message = "Refusing to replace a layer with an empty file."


class ImportRejectedError(SanlingError):
    """The file has invalid rows and ``skip_invalid`` was not given: nothing was imported.

    ``report`` is the full :class:`ImportReport`; ``details`` carries its summary.
    """

    code = "IMPORT_REJECTED"
    default_message = "The file has invalid rows; nothing was imported."

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        summary = report.to_dict(max_issues=20)
        super().__init__(
            f"{report.rows_rejected} of {report.rows_read} rows of {report.source} are invalid; nothing was "
            "imported (use skip_invalid to import the valid rows).",
            layer=report.layer,
            rows_read=report.rows_read,
            rows_rejected=report.rows_rejected,
            issue_counts=summary["issue_counts"],
            issues=summary["issues"],
        )


# --- mapping -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceField:
    """Where one layer field comes from: a source column, its unit or scale, and a value map.

    ``values`` maps source values (compared after trimming, case-insensitively) to layer values, e.g.
    ``{"电杆": "pole", "分支箱": "branch_box"}``; unmapped values pass through unchanged.
    """

    column: str
    unit: str | None = None
    scale: float | None = None
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


class _FieldDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, description="Source column name.")
    unit: str | None = Field(default=None, description="Unit of the source column, e.g. MVA.")
    scale: float | None = Field(default=None, gt=0, description="Factor applied after the unit conversion.")
    values: dict[str, str] = Field(default_factory=dict, description="Source value → layer value.")


class _GeometryDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: str | None = Field(default=None, description="CSV column of x (easting or longitude).")
    y: str | None = Field(default=None, description="CSV column of y (northing or latitude).")


class _MappingDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: str | None = Field(default=None, description="Layer this mapping is for (checked).")
    source_layer: str | None = Field(default=None, description="Layer inside the file (GeoPackage, zip).")
    crs: str | None = Field(default=None, description="CRS of the coordinates, e.g. EPSG:4545.")
    encoding: str | None = Field(default=None, description="Text encoding of the attributes, e.g. GBK.")
    fields: dict[str, str | _FieldDoc] = Field(default_factory=dict, description="Layer field → source.")
    constants: dict[str, str | float | int | bool] = Field(default_factory=dict)
    geometry: _GeometryDoc = Field(default_factory=_GeometryDoc)


_PAIR_RE = re.compile(r"^\s*(?P<src>[^=\[\]]+?)\s*(?:\[(?P<unit>[^\]]+)\])?\s*=\s*(?P<dst>[^=]+?)\s*$")


@dataclass(frozen=True)
class FieldMapping:
    """How a source file's columns become a layer's fields.

    Fields not named here are taken from a source column of the same name (case-insensitive). The
    pseudo-fields ``x`` and ``y`` name CSV coordinate columns.

    Examples
    --------
    >>> m = FieldMapping.from_pairs(["sn_mva[MVA]=rated_kva", "name=asset_id"])
    >>> m.fields["rated_kva"]
    SourceField(column='sn_mva', unit='MVA', scale=None, values=mappingproxy({}))
    """

    fields: Mapping[str, SourceField] = field(default_factory=lambda: MappingProxyType({}))
    constants: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    x_column: str | None = None
    y_column: str | None = None
    layer: str | None = None
    source_layer: str | None = None
    crs: str | None = None
    encoding: str | None = None

    @classmethod
    def from_pairs(cls, pairs: Sequence[str]) -> FieldMapping:
        """Parse ``SRC=DST`` / ``SRC[UNIT]=DST`` pairs (the CLI's ``--map``); ``DST`` may be ``x`` or ``y``.

        Raises
        ------
        ImportMappingError
            For a pair that does not have that form.
        """
        fields: dict[str, SourceField] = {}
        x_column = y_column = None
        for pair in pairs:
            match = _PAIR_RE.match(pair)
            if not match:
                raise ImportMappingError(
                    f"Cannot read the mapping {pair!r}; write SRC=DST or SRC[UNIT]=DST.", field="map", value=pair
                )
            source, unit, target = match["src"], match["unit"], match["dst"]
            if target == _PSEUDO_X:
                x_column = source
            elif target == _PSEUDO_Y:
                y_column = source
            else:
                fields[target] = SourceField(column=source, unit=unit.strip() if unit else None)
        return cls(fields=MappingProxyType(fields), x_column=x_column, y_column=y_column)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, source: str = "mapping") -> FieldMapping:
        """Build a mapping from a parsed mapping file (see docs/import.md for the schema).

        Raises
        ------
        ImportMappingError
            When the document does not follow the schema; ``details`` names the file and the entry.
        """
        try:
            doc = _MappingDoc.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ImportMappingError(f"{source}: {where}: {first['msg']}", file=source, entry=where) from None
        fields = {
            target: SourceField(column=spec)
            if isinstance(spec, str)
            else SourceField(
                column=spec.column,
                unit=spec.unit,
                scale=spec.scale,
                values=MappingProxyType({_value_key(k): v for k, v in spec.values.items()}),
            )
            for target, spec in doc.fields.items()
        }
        return cls(
            fields=MappingProxyType(fields),
            constants=MappingProxyType(dict(doc.constants)),
            x_column=doc.geometry.x,
            y_column=doc.geometry.y,
            layer=doc.layer,
            source_layer=doc.source_layer,
            crs=doc.crs,
            encoding=doc.encoding,
        )

    @classmethod
    def from_file(cls, path: Path) -> FieldMapping:
        """Read a mapping file: TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON (``.json``).

        Raises
        ------
        ImportMappingError
            When the file cannot be read or parsed, or does not follow the schema.
        """
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
            suffix = Path(path).suffix.lower()
            if suffix == ".toml":
                document = tomllib.loads(text)
            elif suffix in (".yaml", ".yml"):
                document = yaml.safe_load(text) or {}
            elif suffix == ".json":
                document = json.loads(text)
            else:
                raise ImportMappingError(
                    f"{Path(path).name}: use a .toml, .yaml or .json mapping file.", file=Path(path).name
                )
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ImportMappingError(f"{Path(path).name}: {exc}", file=Path(path).name) from None
        if not isinstance(document, dict):
            raise ImportMappingError(f"{Path(path).name}: the mapping must be a table/object.", file=Path(path).name)
        return cls.from_document(document, source=Path(path).name)

    def merged(self, other: FieldMapping) -> FieldMapping:
        """Return this mapping with ``other``'s entries taking precedence (CLI pairs over a file)."""
        return FieldMapping(
            fields=MappingProxyType({**self.fields, **other.fields}),
            constants=MappingProxyType({**self.constants, **other.constants}),
            x_column=other.x_column or self.x_column,
            y_column=other.y_column or self.y_column,
            layer=other.layer or self.layer,
            source_layer=other.source_layer or self.source_layer,
            crs=other.crs or self.crs,
            encoding=other.encoding or self.encoding,
        )


def _value_key(value: Any) -> str:
    return str(value).strip().lower()


# --- options, progress, report -----------------------------------------------------------------------------


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
    """One problem of one row: ``row`` is the 1-based feature number in the source file."""

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
    """Where valid rows go. ``app/loader.py`` implements it over a SQLAlchemy ``Connection``.

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


# --- reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceInfo:
    """An opened source layer: the path GDAL reads, its driver, CRS, size, columns and encoding."""

    path: Path
    gdal_path: str
    layer: str | None
    driver: str
    crs: pyproj.CRS | None
    feature_count: int
    columns: tuple[str, ...]
    geometry_type: str | None
    geometry_column: str | None
    encoding: str | None
    open_options: Mapping[str, str]
    xy_columns: tuple[str, str] | None = None
    lonlat_columns: bool = False
    notes: tuple[str, ...] = ()


def _zip_member(path: Path, wanted: str | None) -> str:
    """Return the member of a zip that holds the data (the single ``.shp``, ``.gpkg``, … or ``wanted``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
    except zipfile.BadZipFile as exc:
        raise LayerFileError(f"{path.name} is not a valid zip file: {exc}", file=path.name) from None
    candidates = [
        name
        for name in names
        if Path(name).suffix.lower() in (".shp", ".gpkg", ".geojson", ".json") and not Path(name).name.startswith("._")
    ]
    if wanted:
        chosen = [name for name in candidates if Path(name).stem == wanted or name == wanted]
        if chosen:
            return chosen[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LayerFileError(
            f"{path.name} holds no Shapefile, GeoPackage or GeoJSON.", file=path.name, members=names[:50]
        )
    raise LayerFileError(
        f"{path.name} holds several layers; choose one with --source-layer.",
        file=path.name,
        layers=[Path(name).stem for name in candidates],
    )


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        # A sample may cut a multi-byte character at its end; that is not a decoding failure.
        return exc.start >= len(data) - 4
    return True


def _guess_text_encoding(sample: bytes) -> str | None:
    """Return ``None`` for ASCII or UTF-8 text, else ``GB18030`` (a superset of GBK and GB2312)."""
    if _decodes(sample, "ascii") or _decodes(sample, "utf-8"):
        return None
    return "GB18030"


def _dbf_encoding(read: Callable[[str], bytes | None], stem: str) -> tuple[str | None, str | None]:
    """Detect a Shapefile's attribute encoding when it has no ``.cpg``: ``(encoding, note)``."""
    if read(stem + ".cpg") is not None:
        return None, None  # GDAL honours the .cpg itself
    dbf = read(stem + ".dbf")
    if not dbf or len(dbf) < 32:
        return None, None
    if dbf[29] != 0:
        return None, None  # the language driver id names the code page; GDAL maps it
    header_length = int.from_bytes(dbf[8:10], "little")
    sample = dbf[32 : min(len(dbf), header_length + 1_000_000)]
    encoding = _guess_text_encoding(sample)
    if encoding is None:
        return "UTF-8", None
    return encoding, f"the Shapefile declares no encoding (.cpg); its text was read as {encoding}"


def _shapefile_reader(path: Path, member: str | None) -> Callable[[str], bytes | None]:
    """Return a function reading a sidecar file (``stem + suffix``) of a Shapefile, zipped or not."""
    if member is None:

        def read_plain(name: str) -> bytes | None:
            for candidate in (path.parent / name, path.parent / (Path(name).stem + Path(name).suffix.upper())):
                if candidate.exists():
                    return candidate.read_bytes()[:2_000_000]
            return None

        return read_plain

    def read_zipped(name: str) -> bytes | None:
        with zipfile.ZipFile(path) as archive:
            lower = {entry.lower(): entry for entry in archive.namelist()}
            entry = lower.get(name.lower())
            if entry is None:
                return None
            with archive.open(entry) as handle:
                return handle.read(2_000_000)

    return read_zipped


def _csv_header(path: Path, encoding: str) -> list[str]:
    with path.open(encoding=encoding, newline="") as handle:
        return next(csv.reader(handle), [])


def _pick_column(header: Sequence[str], names: Sequence[str]) -> str | None:
    lowered = {column.strip().lower(): column for column in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


@contextlib.contextmanager
def open_source(
    path: Path,
    *,
    source_layer: str | None = None,
    encoding: str | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
) -> Iterator[SourceInfo]:
    """Open a layer file for streaming and describe it; temporary files are removed on exit.

    Parameters
    ----------
    path
        ``.gpkg``, ``.zip`` (a Shapefile with ``.prj``/``.cpg``, or a GeoPackage/GeoJSON inside),
        ``.shp``, ``.geojson``/``.json`` or ``.csv``.
    source_layer
        Layer name inside a GeoPackage or zip with several layers.
    encoding
        Attribute encoding; by default the ``.cpg``, the DBF's language id, or detected (UTF-8, else
        GB18030). A non-UTF-8 CSV is transcoded to a temporary UTF-8 copy.
    x_column, y_column
        CSV coordinate columns; by default ``lon``/``lat`` (also ``longitude``, ``经度``, …) or ``x``/``y``.

    Raises
    ------
    LayerFileError
        Missing, unsupported or unreadable file.
    """
    path = Path(path)
    if not path.exists():
        raise LayerFileError(f"File not found: {path.name}", file=str(path))
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LayerFileError(
            f"{path.name}: unsupported format; use GeoPackage, zipped Shapefile, GeoJSON or CSV.",
            file=path.name,
            supported=list(SUPPORTED_SUFFIXES),
        )
    notes: list[str] = []
    open_options: dict[str, str] = {}
    xy_columns: tuple[str, str] | None = None
    lonlat = False
    tmp_dir: Path | None = None
    gdal_path = str(path)
    layer = source_layer
    try:
        if suffix in (".zip", ".shp"):
            member = _zip_member(path, source_layer) if suffix == ".zip" else None
            if member is not None:
                gdal_path = f"/vsizip/{path}/{member}"
                layer = None
            if (member or str(path)).lower().endswith(".shp") and encoding is None:
                stem = str(Path(member).with_suffix("")) if member else path.stem
                encoding, note = _dbf_encoding(_shapefile_reader(path, member), stem)
                if note:
                    notes.append(note)
        elif suffix == ".csv":
            raw = path.read_bytes()[:1_000_000]
            detected = encoding or _guess_text_encoding(raw.removeprefix(b"\xef\xbb\xbf"))
            if detected and detected.replace("-", "").replace("_", "").lower() not in ("utf8", "utf8sig"):
                tmp_dir = Path(tempfile.mkdtemp(prefix="sanling-import-"))
                utf8_path = tmp_dir / path.name
                try:
                    with (
                        path.open(encoding=detected, errors="strict", newline="") as src,
                        utf8_path.open("w", encoding="utf-8", newline="") as dst,
                    ):
                        shutil.copyfileobj(src, dst, 1 << 20)
                except (UnicodeDecodeError, LookupError) as exc:
                    raise LayerFileError(f"{path.name} is not valid {detected} text ({exc}); give its encoding, "
                                         "e.g. --encoding GBK.", file=path.name, encoding=detected) from None
                if encoding is None:
                    notes.append(f"the CSV is not UTF-8; its text was read as {detected}")
                gdal_path = str(utf8_path)
            encoding = None
            try:
                header = _csv_header(Path(gdal_path), "utf-8-sig")
            except UnicodeDecodeError as exc:
                raise LayerFileError(f"{path.name} is not UTF-8 text ({exc}); give its encoding, e.g. --encoding GBK.",
                                     file=path.name) from None
            if x_column or y_column:
                if not (x_column and y_column):
                    raise LayerFileError("Give both coordinate columns (x and y) of the CSV.", file=path.name)
                x_name, y_name = x_column, y_column
                lonlat = x_name.strip().lower() in _LON_NAMES and y_name.strip().lower() in _LAT_NAMES
            else:
                x_name, y_name = _pick_column(header, _LON_NAMES), _pick_column(header, _LAT_NAMES)
                lonlat = x_name is not None and y_name is not None
                if not lonlat:
                    x_name, y_name = _pick_column(header, _X_NAMES), _pick_column(header, _Y_NAMES)
            for name in (x_name, y_name):
                if name is not None and name not in header:
                    raise LayerFileError(f"{path.name} has no column {name!r}.", file=path.name, columns=header)
            if x_name and y_name:
                xy_columns = (x_name, y_name)
                open_options = {"X_POSSIBLE_NAMES": x_name, "Y_POSSIBLE_NAMES": y_name, "KEEP_GEOM_COLUMNS": "NO"}
            open_options["EMPTY_STRING_AS_NULL"] = "YES"
        try:
            info = pyogrio.read_info(
                gdal_path, layer=layer, encoding=encoding, force_feature_count=True, **open_options
            )
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, UnicodeDecodeError, ValueError) as exc:
            raise LayerFileError(f"Cannot read {path.name}: {exc}", file=path.name) from None
        crs = pyproj.CRS.from_user_input(info["crs"]) if info.get("crs") else None
        geometry_type = info.get("geometry_type")
        geometry_column = (info.get("geometry_name") or "wkb_geometry") if geometry_type else None
        yield SourceInfo(
            path=path,
            gdal_path=gdal_path,
            layer=layer,
            driver=str(info.get("driver", "")),
            crs=crs,
            feature_count=int(info.get("features", -1)),
            columns=tuple(str(name) for name in info["fields"]),
            geometry_type=geometry_type,
            geometry_column=geometry_column,
            encoding=encoding,
            open_options=MappingProxyType(open_options),
            xy_columns=xy_columns,
            lonlat_columns=lonlat,
            notes=tuple(notes),
        )
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def iter_batches(source: SourceInfo, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Stream the source layer as Arrow record batches of at most ``batch_rows`` rows (pyogrio ``open_arrow``).

    Raises
    ------
    LayerFileError
        When GDAL fails while reading.
    """
    try:
        with pyogrio.open_arrow(
            source.gdal_path,
            layer=source.layer,
            encoding=source.encoding,
            batch_size=batch_rows,
            use_pyarrow=True,
            **source.open_options,
        ) as (_meta, reader):
            for batch in reader:
                if batch.num_rows:
                    yield batch
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        OSError,
        UnicodeDecodeError,
        pa.ArrowInvalid,
    ) as exc:
        raise LayerFileError(f"Cannot read {source.path.name}: {exc}", file=source.path.name) from None


# --- coordinate systems and geometry -----------------------------------------------------------------------


def _parse_crs(value: str, *, what: str) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as exc:
        raise SourceCrsError(f"Unknown CRS {value!r} ({what}): {exc}", field="crs", value=value) from None


@lru_cache(maxsize=32)
def _to_wgs84(crs_wkt: str) -> pyproj.Transformer | None:
    """Return the cached ``always_xy`` transformer from ``crs_wkt`` to EPSG:4326 (``None`` if identical)."""
    crs = pyproj.CRS.from_wkt(crs_wkt)
    # CGCS2000 (EPSG:4490) is treated as WGS-84, as everywhere in Sanling (DOMAIN §9.2).
    if crs.to_epsg() in (SRID_WGS84, 4490) or crs.equals(pyproj.CRS.from_epsg(SRID_WGS84), ignore_axis_order=True):
        return None
    return cached_transformer(crs_wkt, f"EPSG:{SRID_WGS84}")


_POINT_WKB_BYTES = 21


class Geometries:
    """Geometries of a batch in EPSG:4326: ``x``/``y`` arrays for points, a shapely array otherwise."""

    def __init__(
        self,
        *,
        x: npt.NDArray[np.float64] | None = None,
        y: npt.NDArray[np.float64] | None = None,
        shapes: npt.NDArray[np.object_] | None = None,
    ) -> None:
        self.x, self.y, self.shapes = x, y, shapes

    def take(self, mask: npt.NDArray[np.bool_]) -> Geometries:
        """Return the geometries where ``mask`` is true."""
        if self.shapes is not None:
            return Geometries(shapes=self.shapes[mask])
        assert self.x is not None and self.y is not None
        return Geometries(x=self.x[mask], y=self.y[mask])

    def to_wkb(self) -> pa.Array:
        """ISO WKB (2D) as an Arrow binary array."""
        if self.shapes is not None:
            return pa.array(shapely.to_wkb(self.shapes), type=pa.binary())
        assert self.x is not None and self.y is not None
        count = len(self.x)
        buffer = np.empty((count, _POINT_WKB_BYTES), dtype=np.uint8)
        buffer[:, 0] = 1
        buffer[:, 1:5] = np.frombuffer((1).to_bytes(4, "little"), dtype=np.uint8)
        buffer[:, 5:13] = np.ascontiguousarray(self.x, dtype="<f8").view(np.uint8).reshape(count, 8)
        buffer[:, 13:21] = np.ascontiguousarray(self.y, dtype="<f8").view(np.uint8).reshape(count, 8)
        offsets = np.arange(0, _POINT_WKB_BYTES * (count + 1), _POINT_WKB_BYTES, dtype=np.int32)
        return pa.Array.from_buffers(pa.binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)])

    def to_ewkb(self, srid: int = SRID_WGS84) -> pa.Array:
        """EWKB with ``srid`` as an Arrow binary array (what PostGIS's binary COPY reads)."""
        if self.shapes is not None:
            return pa.array(shapely.to_wkb(shapely.set_srid(self.shapes, srid), include_srid=True), type=pa.binary())
        assert self.x is not None and self.y is not None
        return encode_ewkb_points(self.x, self.y, srid)


def encode_ewkb_points(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], srid: int = SRID_WGS84) -> pa.Array:
    """Encode points as EWKB (little endian, with SRID) without building geometry objects.

    Examples
    --------
    >>> encode_ewkb_points(np.array([1.0]), np.array([2.0])).to_pylist()[0].hex().upper()
    '0101000020E6100000000000000000F03F0000000000000040'
    """
    count = len(x)
    width = 25
    buffer = np.empty((count, width), dtype=np.uint8)
    buffer[:, 0] = 1
    buffer[:, 1:5] = np.frombuffer((0x20000001).to_bytes(4, "little"), dtype=np.uint8)
    buffer[:, 5:9] = np.frombuffer(int(srid).to_bytes(4, "little"), dtype=np.uint8)
    buffer[:, 9:17] = np.ascontiguousarray(x, dtype="<f8").view(np.uint8).reshape(count, 8)
    buffer[:, 17:25] = np.ascontiguousarray(y, dtype="<f8").view(np.uint8).reshape(count, 8)
    offsets = np.arange(0, width * (count + 1), width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)])


def _points_fast(column: pa.Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Read 2D little-endian WKB points straight from the Arrow buffers; ``None`` when any row is different."""
    if column.null_count or not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return None
    offset_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    buffers = column.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[column.offset : column.offset + len(column) + 1]
    if not np.all(np.diff(offsets) == _POINT_WKB_BYTES):
        return None
    data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(-1, _POINT_WKB_BYTES)
    if not (np.all(data[:, 0] == 1) and np.all(data[:, 1:5] == (1, 0, 0, 0))):
        return None
    x = np.ascontiguousarray(data[:, 5:13]).view("<f8").ravel().astype(np.float64)
    y = np.ascontiguousarray(data[:, 13:21]).view("<f8").ravel().astype(np.float64)
    return x, y


# --- validation of one batch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldPlan:
    spec: FieldSpec
    column: str | None = None
    constant: Any = None
    factor: float = 1.0
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def provided(self) -> bool:
        return self.column is not None or self.constant is not None


@dataclass(frozen=True)
class _Plan:
    spec: LayerSpec
    fields: tuple[_FieldPlan, ...]
    transformer: pyproj.Transformer | None
    source_is_projected: bool
    service_area_wgs84: tuple[float, float, float, float] | None
    naive_timezone: str
    geometry_column: str | None

    @property
    def provided_fields(self) -> tuple[str, ...]:
        return tuple(plan.spec.name for plan in self.fields if plan.provided)


class _Problems:
    """Row problems of one batch, gathered as (mask, field, code, severity, message, values) groups."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.errors = np.zeros(size, dtype=bool)
        self.warnings = np.zeros(size, dtype=bool)
        self.groups: list[tuple[npt.NDArray[np.bool_], str, str, Severity, str | Sequence[str], Any]] = []

    def add(
        self,
        mask: npt.NDArray[np.bool_],
        field_name: str,
        code: str,
        message: str | Sequence[str],
        values: Any = None,
        severity: Severity = "error",
    ) -> None:
        """Record ``code`` on every row where ``mask`` is set (``message`` may be per row)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        (self.errors if severity == "error" else self.warnings).__ior__(mask)
        self.groups.append((mask, field_name, code, severity, message, values))

    def issues(self, first_row: int, keys: Sequence[Any]) -> Iterator[Issue]:
        """Yield the issues in row order within each group."""
        for mask, field_name, code, severity, message, values in self.groups:
            for index in np.flatnonzero(mask):
                text = message if isinstance(message, str) else message[index]
                value = None if values is None else values[index]
                if isinstance(value, pa.Scalar):  # Arrow columns are read only where there is an issue
                    value = value.as_py()
                key = keys[index]
                yield Issue(
                    row=first_row + int(index),
                    key=None if key is None else str(key),
                    field=field_name,
                    code=code,
                    severity=severity,
                    message=text,
                    value=None if value is None else _short(value),
                )


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_string(column: pa.Array) -> pa.Array:
    """Cast any column to trimmed strings; integral floats lose their ``.0`` (DBF numeric ids)."""
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_floating(column.type):
        as_int = pc.cast(column, pa.int64(), safe=False)
        integral = pc.equal(pc.cast(as_int, pa.float64()), column)
        column = pc.if_else(integral, pc.cast(as_int, pa.string()), pc.cast(column, pa.string()))
    elif pa.types.is_boolean(column.type):
        column = pc.if_else(column, pa.scalar("true"), pa.scalar("false"))
    elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    column = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _apply_value_map(column: pa.Array, values: Mapping[str, str]) -> pa.Array:
    if not values:
        return column
    keys = pa.array(list(values.keys()), pa.string())
    index = pc.index_in(pc.utf8_lower(column), value_set=keys)
    mapped = pc.take(pa.array(list(values.values()), pa.string()), index)
    return pc.if_else(pc.is_null(index), column, mapped)


def _coerce_str(raw: pa.Array, plan: _FieldPlan, problems: _Problems) -> pa.Array:
    spec = plan.spec
    column = _apply_value_map(_as_string(raw), plan.values)
    present = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool)
    if spec.choices:
        canonical = pa.array(list(spec.choices), pa.string())
        index = pc.index_in(pc.utf8_lower(column), value_set=pc.utf8_lower(canonical))
        unknown = present & np.asarray(pc.is_null(index).to_numpy(zero_copy_only=False), dtype=bool)
        problems.add(
            unknown, spec.name, "FIELD_INVALID", f"{spec.name} must be one of {', '.join(spec.choices)}", column
        )
        column = pc.if_else(pc.is_null(index), column, pc.take(canonical, index))
    if spec.max_length is not None:
        too_long = present & np.asarray(
            pc.fill_null(pc.greater(pc.utf8_length(column), spec.max_length), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        problems.add(
            too_long,
            spec.name,
            "FIELD_INVALID",
            f"{spec.name} is longer than {spec.max_length} characters",
            column,
        )
    return column


def _coerce_float(raw: pa.Array, plan: _FieldPlan, problems: _Problems) -> pa.Array:
    spec = plan.spec
    if pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_decimal(raw.type):
        numbers = pc.cast(raw, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        present = ~np.asarray(pc.is_null(raw).to_numpy(zero_copy_only=False), dtype=bool)
        original: Any = numbers
        unreadable = np.zeros(len(raw), dtype=bool)
    else:
        text = _as_string(raw)
        original = text.to_numpy(zero_copy_only=False)
        present = ~np.asarray(pc.is_null(text).to_numpy(zero_copy_only=False), dtype=bool)
        numbers = pd.to_numeric(pd.Series(original, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        unreadable = present & np.isnan(numbers)
    numbers = numbers * plan.factor
    not_finite = present & ~unreadable & ~np.isfinite(numbers)
    problems.add(unreadable | not_finite, spec.name, "FIELD_INVALID", f"{spec.name} is not a number", original)
    checked = present & ~unreadable & ~not_finite
    if spec.min_value is not None:
        with np.errstate(invalid="ignore"):
            below = checked & ((numbers <= spec.min_value) if spec.min_exclusive else (numbers < spec.min_value))
        relation = ">" if spec.min_exclusive else "≥"
        problems.add(below, spec.name, "FIELD_INVALID", f"{spec.name} must be {relation} {spec.min_value:g}", original)
    numbers = np.where(present, numbers, np.nan)
    return pa.array(numbers, type=pa.float64(), mask=~present)


_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


def _parse_timestamps(text: pd.Series, naive_timezone: str) -> pd.Series:
    """Parse ISO-like strings to UTC; strings without an offset are local time in ``naive_timezone``."""
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    aware = text.str.contains(_TZ_SUFFIX, na=False)
    for is_aware in (True, False):
        subset = text[text.notna() & (aware == is_aware)]
        if subset.empty:
            continue
        values = pd.to_datetime(subset, errors="coerce", format="ISO8601", utc=is_aware)
        retry = values.isna()
        if retry.any():
            values[retry] = pd.to_datetime(subset[retry], errors="coerce", format="mixed", utc=is_aware)
        if not is_aware:
            values = values.dt.tz_localize(naive_timezone, ambiguous="NaT", nonexistent="NaT")
        parsed[subset.index] = values.dt.tz_convert("UTC")
    return parsed


def _coerce_datetime(raw: pa.Array, plan: _FieldPlan, naive_timezone: str, problems: _Problems) -> pa.Array:
    spec = plan.spec
    if pa.types.is_timestamp(raw.type) or pa.types.is_date(raw.type):
        series = pd.to_datetime(pd.Series(raw.to_pandas()))
        original: Any = series.astype(str).to_numpy()
        present = series.notna().to_numpy()
        if series.dt.tz is None:
            series = series.dt.tz_localize(naive_timezone, ambiguous="NaT", nonexistent="NaT")
        parsed = series.dt.tz_convert("UTC")
    else:
        text = pd.Series(_as_string(raw).to_numpy(zero_copy_only=False), dtype=object)
        original = text.to_numpy()
        present = text.notna().to_numpy()
        parsed = _parse_timestamps(text, naive_timezone)
    unreadable = present & parsed.isna().to_numpy()
    problems.add(unreadable, spec.name, "FIELD_INVALID", f"{spec.name} is not a date and time", original)
    naive_utc = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return pa.array(naive_utc, type=pa.timestamp("us", tz="UTC"), mask=~(present & ~unreadable))


def _coerce_field(batch: pa.RecordBatch, plan: _FieldPlan, main: _Plan, problems: _Problems) -> pa.Array:
    spec = plan.spec
    size = batch.num_rows
    if plan.column is not None:
        raw = batch.column(plan.column)
    elif plan.constant is not None:
        raw = pa.array([plan.constant] * size)
    else:
        raw = pa.nulls(size)
    errors_before = problems.errors.copy()
    if spec.kind == "float":
        column = _coerce_float(raw, plan, problems)
    elif spec.kind == "datetime":
        column = _coerce_datetime(raw, plan, main.naive_timezone, problems)
    else:
        column = _coerce_str(raw, plan, problems)
    invalid_here = problems.errors & ~errors_before
    if spec.required:
        missing = np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool) & ~invalid_here
        problems.add(
            missing, spec.name, "FIELD_MISSING", f"{spec.name} is missing (source column {plan.column or 'none'})"
        )
    elif spec.default is not None:
        column = pc.fill_null(column, pa.scalar(spec.default, column.type))
    return column


_TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
# GEOS type ids accepted for each stored geometry type (a Polygon is stored as a one-part MultiPolygon).
_ACCEPTED_TYPE_IDS = {"Point": (0,), "LineString": (1,), "MultiPolygon": (3, 6)}


class _GeometryCheck:
    """Geometry problems of one batch; ``ok`` marks rows whose geometry is still fine."""

    def __init__(self, problems: _Problems, size: int) -> None:
        self.problems = problems
        self.ok = np.ones(size, dtype=bool)

    def error(self, mask: npt.NDArray[np.bool_], code: str, message: str | Sequence[str]) -> None:
        mask = np.asarray(mask, dtype=bool) & self.ok
        self.problems.add(mask, "geometry", code, message)
        self.ok &= ~mask

    def repaired(self, mask: npt.NDArray[np.bool_], message: str | Sequence[str]) -> None:
        self.problems.add(np.asarray(mask, dtype=bool), "geometry", "GEOMETRY_REPAIRED", message, severity="warning")


def _normalise_types(shapes: npt.NDArray[np.object_], geometry_type: str, check: _GeometryCheck) -> None:
    """Make single-part multi-geometries simple and join multi-part lines that form one line (safe)."""
    ok = check.ok
    type_ids = np.full(len(shapes), -1)
    type_ids[ok] = shapely.get_type_id(shapes[ok])
    if geometry_type in ("Point", "LineString"):
        multi_id = 4 if geometry_type == "Point" else 5
        single = ok & (type_ids == multi_id) & (shapely.get_num_geometries(shapes) == 1)
        if single.any():
            shapes[single] = shapely.get_geometry(shapes[single], 0)
            type_ids[single] = multi_id - 4
            check.repaired(single, f"single-part multi-geometry taken as {geometry_type}")
    if geometry_type == "LineString":
        multi = ok & (type_ids == 5)
        if multi.any():
            merged = shapely.line_merge(shapes[multi])
            joined = np.zeros(len(shapes), dtype=bool)
            joined[np.flatnonzero(multi)[shapely.get_type_id(merged) == 1]] = True
            shapes[joined] = merged[shapely.get_type_id(merged) == 1]
            type_ids[joined] = 1
            check.repaired(joined, "multi-part line joined into one LineString")
    wrong = ok & ~np.isin(type_ids, _ACCEPTED_TYPE_IDS[geometry_type])
    check.error(
        wrong,
        "GEOMETRY_TYPE_WRONG",
        [
            f"geometry is {_TYPE_NAMES[t] if 0 <= t < len(_TYPE_NAMES) else '?'}, expected {geometry_type}"
            for t in type_ids
        ],
    )
    if geometry_type == "MultiPolygon":
        polygon = check.ok & (type_ids == 3)
        if polygon.any():
            shapes[polygon] = shapely.multipolygons(shapes[polygon][:, np.newaxis])


def _check_validity(shapes: npt.NDArray[np.object_], geometry_type: str, check: _GeometryCheck) -> None:
    """Report invalid geometries; polygons are repaired where make_valid keeps the area (±1 %)."""
    invalid = np.zeros(len(shapes), dtype=bool)
    invalid[check.ok] = ~shapely.is_valid(shapes[check.ok])
    if not invalid.any():
        return
    reasons = {int(index): shapely.is_valid_reason(shapes[index]) for index in np.flatnonzero(invalid)}
    repaired = np.zeros(len(shapes), dtype=bool)
    if geometry_type == "MultiPolygon":
        for index in reasons:
            original = shapes[index]
            fixed = shapely.make_valid(original, method="structure", keep_collapsed=False)
            if fixed.geom_type == "Polygon":
                fixed = shapely.MultiPolygon([fixed])
            area = original.area
            if (
                fixed.geom_type == "MultiPolygon"
                and area > 0
                and abs(fixed.area - area) <= SAFE_REPAIR_AREA_TOLERANCE * area
            ):
                shapes[index] = fixed
                repaired[index] = True
    messages = [
        f"invalid polygon repaired ({reasons[i]})"
        if repaired[i]
        else f"invalid geometry: {reasons[i]}"
        if i in reasons
        else ""
        for i in range(len(shapes))
    ]
    check.repaired(repaired, messages)
    check.error(invalid & ~repaired, "GEOMETRY_INVALID", messages)


def _check_service_area(bounds: npt.NDArray[np.float64], main: _Plan, check: _GeometryCheck) -> None:
    """Reject geometries whose WGS-84 bounding box is not inside the service area."""
    area = main.service_area_wgs84
    if area is None or not check.ok.any():
        return
    min_lon, min_lat, max_lon, max_lat = area
    with np.errstate(invalid="ignore"):
        inside = (
            (bounds[:, 0] >= min_lon)
            & (bounds[:, 2] <= max_lon)
            & (bounds[:, 1] >= min_lat)
            & (bounds[:, 3] <= max_lat)
        )
    outside = check.ok & ~inside
    if not outside.any():
        return
    hint = ""
    if main.transformer is None and np.nanmax(np.abs(bounds[outside][:, [0, 2]])) > 180:
        hint = "; the coordinates look projected: give the file's CRS (--crs)"
    elif main.source_is_projected and np.nanmax(np.abs(bounds[outside][:, [0, 2]])) > 180:
        hint = "; is the CRS right? Gauss-Krüger x with a zone prefix needs a 'GK Zone' EPSG code"
    messages = [
        f"lon {b[0]:.6f}…{b[2]:.6f}, lat {b[1]:.6f}…{b[3]:.6f} lies outside the service area "
        f"{min_lon:g},{min_lat:g},{max_lon:g},{max_lat:g}{hint}"
        if out
        else ""
        for b, out in zip(bounds, outside, strict=True)
    ]
    check.error(outside, "OUT_OF_SERVICE_AREA", messages)


def _prepare_shapes(raw: pa.Array, main: _Plan, check: _GeometryCheck) -> npt.NDArray[np.object_]:
    """Decode, normalise, reproject and validate geometries with shapely (any type)."""
    geometry_type = main.spec.geometry_type
    assert geometry_type is not None
    wkb = np.asarray(raw.to_numpy(zero_copy_only=False), dtype=object)
    present = np.fromiter((value is not None for value in wkb), dtype=bool, count=len(wkb))
    shapes = shapely.from_wkb(wkb, on_invalid="ignore")
    unreadable = present & shapely.is_missing(shapes)
    if unreadable.any():
        shapes[unreadable] = shapely.from_wkb(wkb[unreadable], on_invalid="fix")
        fixed = unreadable & ~shapely.is_missing(shapes)
        check.repaired(fixed, "malformed geometry repaired (ring closed)")
        check.error(unreadable & ~fixed, "GEOMETRY_INVALID", "geometry cannot be read")
    check.error(shapely.is_missing(shapes) | shapely.is_empty(shapes), "GEOMETRY_EMPTY", "geometry is missing or empty")
    shapes[check.ok] = shapely.force_2d(shapes[check.ok])
    _normalise_types(shapes, geometry_type, check)
    if main.transformer is not None and check.ok.any():
        transformer = main.transformer
        ok = check.ok.copy()
        shapes[ok] = shapely.transform(shapes[ok], lambda x, y: transformer.transform(x, y), interleaved=False)
        finite = np.zeros(len(shapes), dtype=bool)
        finite[ok] = np.isfinite(shapely.bounds(shapes[ok])).all(axis=1)
        check.error(ok & ~finite, "GEOMETRY_INVALID", "geometry cannot be transformed to WGS-84")
    _check_validity(shapes, geometry_type, check)
    bounds = np.full((len(shapes), 4), np.nan)
    bounds[check.ok] = shapely.bounds(shapes[check.ok])
    _check_service_area(bounds, main, check)
    return shapes


def _prepare_geometries(batch: pa.RecordBatch, main: _Plan, problems: _Problems) -> Geometries | None:
    """Return the batch's geometries in EPSG:4326 and record their problems (``None``: attribute-only layer)."""
    geometry_type = main.spec.geometry_type
    if geometry_type is None:
        return None
    check = _GeometryCheck(problems, batch.num_rows)
    if main.geometry_column is None or main.geometry_column not in batch.schema.names:
        check.error(np.ones(batch.num_rows, dtype=bool), "GEOMETRY_EMPTY", "the file has no geometry")
        return (
            Geometries(x=np.full(batch.num_rows, np.nan), y=np.full(batch.num_rows, np.nan))
            if geometry_type == "Point"
            else Geometries(shapes=np.full(batch.num_rows, None, dtype=object))
        )
    raw = batch.column(main.geometry_column)
    fast = _points_fast(raw) if geometry_type == "Point" else None
    if fast is None:
        shapes = _prepare_shapes(raw, main, check)
        if geometry_type != "Point":
            return Geometries(shapes=shapes)
        x = np.full(batch.num_rows, np.nan)
        y = np.full(batch.num_rows, np.nan)
        x[check.ok], y[check.ok] = shapely.get_x(shapes[check.ok]), shapely.get_y(shapes[check.ok])
        return Geometries(x=x, y=y)
    x, y = fast
    check.error(np.isnan(x) & np.isnan(y), "GEOMETRY_EMPTY", "geometry is missing or empty")
    check.error(~(np.isfinite(x) & np.isfinite(y)), "GEOMETRY_INVALID", "point coordinates are not finite numbers")
    if main.transformer is not None:
        x_t, y_t = main.transformer.transform(x, y)
        x, y = np.asarray(x_t, dtype=np.float64), np.asarray(y_t, dtype=np.float64)
        check.error(~(np.isfinite(x) & np.isfinite(y)), "GEOMETRY_INVALID", "point cannot be transformed to WGS-84")
    _check_service_area(np.column_stack([x, y, x, y]), main, check)
    return Geometries(x=x, y=y)


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
    unknown_targets = sorted((set(mapping.fields) | set(mapping.constants)) - set(spec.field_names))
    if unknown_targets:
        raise ImportMappingError(
            f"{spec.name} has no field {', '.join(unknown_targets)}; its fields are {', '.join(spec.field_names)}.",
            layer=spec.name,
            fields=unknown_targets,
        )
    plans = []
    for field_spec in spec.fields:
        name = field_spec.name
        if name in mapping.fields:
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
        Where valid rows go, usually ``app.loader.DatabaseSink`` on the caller's transaction.
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
