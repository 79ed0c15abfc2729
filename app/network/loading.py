"""Load GIS layers into the database through the batch importer (R7): one file, or the whole demo district."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection

from app.network.sink import BULK_MIN_ROWS, DatabaseSink
from gis.importing import FieldMapping, ImportOptions, ImportReport, ProgressCallback, import_layer
from gis.layers import LAYER_ORDER

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "fixtures" / "demo"

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
