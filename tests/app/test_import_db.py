"""The importer on SpatiaLite and PostGIS: upsert by key, replace, strategies, readings, atomicity (issue 7)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, inspect, text

from app.network.loading import import_layer_file
from gis.importing import FieldMapping, ImportRejectedError
from tests.importdata import (
    TEST_AREA_WGS84,
    export_oberrhein,
    feature_collection,
    point,
    transformer_frame,
    write_layer,
)
from tests.support.databases import rolled_back


@pytest.fixture(scope="module")
def oberrhein(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """pandapower's MV Oberrhein network exported once with its own column names, and its mapping files."""
    return export_oberrhein(tmp_path_factory.mktemp("oberrhein"))


@pytest.fixture(scope="module")
def import_engine(backend: str, migrated_engine) -> Engine:  # type: ignore[no-untyped-def]
    """A migrated, empty database of the current backend for this module."""
    return migrated_engine(backend)  # type: ignore[no-any-return]


@pytest.fixture
def conn(import_engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction rolled back after the test."""
    with rolled_back(import_engine) as connection:
        yield connection


def imp(conn: Connection, path: Path, layer: str = "transformers", **options: Any):  # type: ignore[no-untyped-def]
    options.setdefault("service_area_wgs84", TEST_AREA_WGS84)
    return import_layer_file(conn, layer, path, **options)


def generation(conn: Connection) -> int:
    return int(conn.execute(text("SELECT generation FROM asset_generation WHERE id = 1")).scalar_one())


def rows(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(text(sql))]


def test_reimport_is_idempotent_and_bumps_the_generation_only_on_change(conn: Connection, tmp_path: Path) -> None:
    path = write_layer(transformer_frame(5), tmp_path, "gpkg")
    start = generation(conn)
    first = imp(conn, path)
    assert (first.inserted, first.updated, first.unchanged, first.strategy) == (5, 0, 0, "merge")
    assert generation(conn) == start + 1
    snapshot = rows(conn, "SELECT id, asset_id, name, rated_kva, peak_kva FROM transformers ORDER BY asset_id")
    again = imp(conn, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)
    assert generation(conn) == start + 1  # nothing changed: the siting index need not rebuild
    assert rows(conn, "SELECT id, asset_id, name, rated_kva, peak_kva FROM transformers ORDER BY asset_id") \
        == snapshot


def test_update_by_key_keeps_fields_the_file_lacks(conn: Connection, tmp_path: Path) -> None:
    imp(conn, write_layer(transformer_frame(3), tmp_path / "a", "gpkg"))
    changed = transformer_frame(3).drop(columns=["peak_kva"])
    changed.loc[0, "rated_kva"] = 800.0
    report = imp(conn, write_layer(changed, tmp_path / "b", "geojson"))
    assert (report.updated, report.unchanged) == (1, 2)
    assert rows(conn, "SELECT asset_id, rated_kva, peak_kva FROM transformers ORDER BY asset_id") == [
        ("T-0001", 800.0, 51.0), ("T-0002", 400.0, 52.0), ("T-0003", 630.0, 53.0)]


def test_deletions_only_with_replace_and_orphans_are_noted(conn: Connection, tmp_path: Path) -> None:
    imp(conn, write_layer(transformer_frame(3), tmp_path / "a", "gpkg"))
    line = {"type": "LineString", "coordinates": [[106.5, 29.5], [106.5005, 29.5]]}
    lines = tmp_path / "lines.geojson"
    lines.write_text(text_json(feature_collection([
        ({"asset_id": "L-1", "transformer_asset_id": "T-0003", "kind": "cable"}, line)])))
    imp(conn, lines, "lv_lines")
    fewer = write_layer(transformer_frame(2), tmp_path / "b", "gpkg")
    assert imp(conn, fewer).deleted == 0
    report = imp(conn, fewer, replace=True)
    assert report.deleted == 1 and any("REFERENCE_ORPHANED: 1 rows of lv_lines" in n for n in report.notes)
    assert rows(conn, "SELECT asset_id FROM transformers ORDER BY asset_id") == [("T-0001",), ("T-0002",)]


def test_rebuild_strategy_keeps_ids_indexes_and_untouched_rows(conn: Connection, tmp_path: Path,
                                                               backend: str) -> None:
    first = imp(conn, write_layer(transformer_frame(6), tmp_path / "a", "gpkg"), bulk_min_rows=4)
    assert first.strategy == ("direct" if backend == "postgis" else "rebuild")
    ids = dict(rows(conn, "SELECT asset_id, id FROM transformers"))
    bigger = transformer_frame(8, start=3)  # T-0003..T-0010: 4 kept, 4 new; T-0001/2 untouched
    bigger["rated_kva"] = 1000.0
    second = imp(conn, write_layer(bigger, tmp_path / "b", "gpkg"), bulk_min_rows=4)
    assert (second.strategy, second.inserted, second.updated, second.unchanged) == ("rebuild", 4, 4, 0)
    after = dict(rows(conn, "SELECT asset_id, id FROM transformers"))
    assert len(after) == 10 and all(after[key] == ids[key] for key in ids)  # ids kept
    assert rows(conn, "SELECT rated_kva FROM transformers WHERE asset_id = 'T-0001'") == [(315.0,)]
    if backend == "postgis":
        indexes = {name for (name,) in rows(conn, "SELECT indexname FROM pg_indexes WHERE tablename = 'transformers'")}
        assert indexes == {"pk_transformers", "uq_transformers_asset_id", "ix_transformers_grid_area_code",
                           "idx_transformers_geom"}
        hit = "SELECT count(*) FROM transformers WHERE geom && ST_MakeEnvelope(106.5025, 29.5, 106.5045, 30, 4326)"
    else:
        assert rows(conn, "SELECT CheckSpatialIndex('transformers', 'geom')") == [(1,)]
        hit = ("SELECT count(*) FROM transformers WHERE ROWID IN (SELECT pkid FROM idx_transformers_geom "
               "WHERE xmin >= 106.5025 AND xmax <= 106.5045)")
    assert rows(conn, hit) == [(2,)]  # T-0003 and T-0004 through the spatial index


def test_dry_run_counts_and_changes_nothing(conn: Connection, tmp_path: Path) -> None:
    imp(conn, write_layer(transformer_frame(2), tmp_path / "a", "gpkg"))
    start = generation(conn)
    report = imp(conn, write_layer(transformer_frame(3), tmp_path / "b", "gpkg"), dry_run=True, replace=True)
    assert (report.status, report.inserted, report.unchanged, report.deleted) == ("dry_run", 1, 2, 0)
    assert rows(conn, "SELECT count(*) FROM transformers") == [(2,)] and generation(conn) == start


def test_rejected_file_changes_nothing(conn: Connection, tmp_path: Path) -> None:
    imp(conn, write_layer(transformer_frame(2), tmp_path / "a", "gpkg"))
    bad = tmp_path / "bad.geojson"
    bad.write_text(text_json(feature_collection([({"asset_id": "T-0001", "rated_kva": 999}, point(106.5, 29.5)),
                                                 ({"asset_id": "T-0009"}, point(106.5, 29.5))])))
    savepoint = conn.begin_nested()  # the CLI and the jobs roll back their whole transaction the same way
    with pytest.raises(ImportRejectedError):
        imp(conn, bad)
    savepoint.rollback()
    assert rows(conn, "SELECT asset_id, rated_kva FROM transformers ORDER BY asset_id") == [
        ("T-0001", 315.0), ("T-0002", 400.0)]


def test_load_readings_move_transformer_peaks(conn: Connection, tmp_path: Path) -> None:
    imp(conn, write_layer(transformer_frame(2), tmp_path, "gpkg"))
    readings = tmp_path / "readings.csv"
    readings.write_text("transformer_asset_id,read_at,peak_kva\nT-0001,2026-07-01 20:00,120\n"
                        "T-0001,2026-08-01 20:00,150\nT-0002,2026-08-01 21:00,90\n")
    start = generation(conn)
    report = imp(conn, readings, "load_readings")
    assert report.inserted == 3 and any("2 transformers" in n for n in report.notes)
    assert generation(conn) == start + 1
    peaks = rows(conn, "SELECT asset_id, peak_kva FROM transformers ORDER BY asset_id")
    assert peaks == [("T-0001", 150.0), ("T-0002", 90.0)]
    older = tmp_path / "older.csv"
    older.write_text("transformer_asset_id,read_at,peak_kva\nT-0001,2026-06-01 20:00,300\n")
    imp(conn, older, "load_readings")
    assert rows(conn, "SELECT peak_kva FROM transformers WHERE asset_id = 'T-0001'") == [(150.0,)]  # still latest
    orphan = tmp_path / "orphan.csv"
    orphan.write_text("transformer_asset_id,read_at,peak_kva\nT-9999,2026-08-01 20:00,10\n")
    with pytest.raises(ImportRejectedError) as raised:
        imp(conn, orphan, "load_readings")
    assert raised.value.report.issue_counts == {"REFERENCE_UNKNOWN": 1}


def test_grid_areas_roads_zones_and_access_points(conn: Connection, tmp_path: Path) -> None:
    square = {"type": "Polygon", "coordinates": [[[106.5, 29.5], [106.51, 29.5], [106.51, 29.51], [106.5, 29.5]]]}
    road = {"type": "LineString", "coordinates": [[106.5, 29.5], [106.51, 29.5]]}
    layers = {
        "grid_areas": [({"code": "GA-1", "name": "城南网格", "area_type": "a+"}, square)],
        "roads": [({"asset_id": "R-1", "road_class": "Arterial", "width_m": 24}, road)],
        "no_overhead_zones": [({"asset_id": "Z-1", "name": "古城"}, square)],
        "transformers": [({"asset_id": "T-1", "rated_kva": 400, "grid_area_code": "GA-1"}, point(106.505, 29.505))],
        "access_points": [({"asset_id": "P-1", "transformer_asset_id": "T-1", "kind": "pole"},
                           point(106.506, 29.505))],
    }
    for layer, features in layers.items():
        path = tmp_path / f"{layer}.geojson"
        path.write_text(text_json(feature_collection(features)))
        report = imp(conn, path, layer)
        assert report.inserted == 1 and not report.issue_counts, (layer, report.issues)
    assert rows(conn, "SELECT area_type FROM grid_areas") == [("A+",)]  # choices are case-insensitive
    assert rows(conn, "SELECT road_class, width_m FROM roads") == [("arterial", 24.0)]


def test_real_pandapower_network_with_a_mapping_file(conn: Connection, oberrhein: dict[str, Path]) -> None:
    """MV Oberrhein (pandapower's real network): its own column names, MVA, its CRS, a mapping file each."""
    area = (7.5, 48.2, 8.3, 48.7)
    trafos = imp(conn, oberrhein["transformers"], mapping=FieldMapping.from_file(oberrhein["transformers.toml"]),
                 service_area_wgs84=area)
    assert (trafos.rows_read, trafos.inserted, trafos.source_crs) == (2, 2, "EPSG:4326")
    lines = imp(conn, oberrhein["lv_lines"], "lv_lines", mapping=FieldMapping.from_file(oberrhein["lv_lines.toml"]),
                service_area_wgs84=area)
    assert lines.inserted == lines.rows_read == 181 and not lines.issue_counts
    assert rows(conn, "SELECT asset_id, rated_kva, status FROM transformers ORDER BY asset_id") == [
        ("HV/MV Transformer 0", 25000.0, "in_service"), ("HV/MV Transformer 1", 25000.0, "in_service")]
    kinds = dict(rows(conn, "SELECT kind, count(*) FROM lv_lines GROUP BY kind"))
    assert set(kinds) == {"cable", "overhead"} and sum(kinds.values()) == 181


def text_json(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document, ensure_ascii=False)


def test_bulk_staging_leaves_nothing_behind(conn: Connection, import_engine: Engine, tmp_path: Path) -> None:
    """PostgreSQL's direct strategy stages on a helper connection; a dry run or a rejection drops it again."""
    features = [({"asset_id": f"T-{i}", "rated_kva": 100}, point(106.5, 29.5)) for i in range(6)]
    features.append(({"asset_id": "T-bad", "rated_kva": -1}, point(106.5, 29.5)))  # rejected, after 3 batches
    path = tmp_path / "t.geojson"
    path.write_text(text_json(feature_collection(features)))
    report = imp(conn, path, bulk_min_rows=4, batch_rows=2, dry_run=True, skip_invalid=True)
    assert (report.inserted, report.strategy) == (6, "direct" if conn.dialect.name == "postgresql" else "rebuild")
    with pytest.raises(ImportRejectedError):
        imp(conn, path, bulk_min_rows=4, batch_rows=2)
    # PostgreSQL: look from another connection, which sees what the helper connection committed.
    with import_engine.connect() if conn.dialect.name == "postgresql" else nullcontext(conn) as other:
        tables = set(inspect(other).get_table_names())
    assert "transformers__new" not in tables and rows(conn, "SELECT count(*) FROM transformers") == [(0,)]
