"""Opening a layer file for streaming: GeoPackage, (zipped) Shapefile, GeoJSON or CSV, its text encoding
(``.cpg``, the DBF language id, or detected UTF-8/GB18030), CSV coordinate columns, and Arrow batches."""

from __future__ import annotations

import contextlib
import csv
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pyarrow as pa
import pyogrio
import pyproj

from gis.importing.errors import LayerFileError

__all__ = ["DEFAULT_BATCH_ROWS", "SUPPORTED_SUFFIXES", "SourceInfo", "iter_batches", "open_source"]


#: Rows per Arrow batch: big enough that per-batch overheads vanish, small enough to bound memory.
DEFAULT_BATCH_ROWS = 65_536

SUPPORTED_SUFFIXES = (".gpkg", ".zip", ".shp", ".geojson", ".json", ".csv")
# CSV coordinate columns recognised without a mapping (compared case-insensitively). Chinese survey
# tables often label northing "X" and easting "Y", so X/Y columns in Chinese are never guessed.
_LON_NAMES = ("lon", "lng", "long", "longitude", "lon_wgs84", "经度")
_LAT_NAMES = ("lat", "latitude", "lat_wgs84", "纬度")
_X_NAMES = ("x", "x_m", "easting")
_Y_NAMES = ("y", "y_m", "northing")


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
