"""The batch importer without a database: formats, encodings, CRS, mapping, units and every validation class."""

from __future__ import annotations

import csv
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely

from gis.importing import (
    FieldMapping,
    ImportEmptyReplaceError,
    ImportMappingError,
    ImportOptions,
    ImportRejectedError,
    LayerFileError,
    SourceCrsError,
    _points_fast,
    encode_ewkb_points,
    import_layer,
)
from gis.layers import LAYERS, LayerUnknownError
from tests.importdata import (
    COORD_TOL_DEG,
    ESRI_PRJ_GK_ZONE_36,
    GK_CM_108E,
    GK_ZONE_36,
    TEST_AREA_WGS84,
    MemorySink,
    feature_collection,
    point,
    transformer_frame,
    write_layer,
)


def run(path: Path, layer: str = "transformers", sink: MemorySink | None = None, **options: Any):  # type: ignore[no-untyped-def]
    sink = sink or MemorySink()
    options.setdefault("service_area_wgs84", TEST_AREA_WGS84)
    report = import_layer(path, layer, sink, ImportOptions(**options))
    return report, sink


def write_geojson(tmp_path: Path, features: list[tuple[dict[str, Any], dict[str, Any] | None]],
                  name: str = "layer") -> Path:
    path = tmp_path / f"{name}.geojson"
    path.write_text(json.dumps(feature_collection(features), ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["gpkg", "zip", "shp", "geojson", "csv"])
def test_every_format_gives_the_same_rows(tmp_path: Path, fmt: str) -> None:
    expected = transformer_frame(5)
    report, sink = run(write_layer(expected, tmp_path, fmt))
    assert report.status == "imported" and report.rows_read == report.rows_valid == 5 and not report.issue_counts
    records = sink.records()
    assert [r["asset_id"] for r in records] == list(expected.asset_id)
    assert [r["name"] for r in records] == list(expected.name)  # Chinese text survives every format
    assert [r["rated_kva"] for r in records] == list(expected.rated_kva)
    for record, geom in zip(records, expected.geometry, strict=True):
        assert record["geom"].distance(geom) < COORD_TOL_DEG
    assert records[0]["reserved_kva"] == 0.0 and records[0]["grid_area_code"] is None  # defaults


@pytest.mark.parametrize(("keep_cpg", "note"), [
    (True, False),  # GDAL reads the .cpg itself
    (False, True),  # no .cpg: the GBK text is detected and read as GB18030
])
def test_gbk_shapefile(tmp_path: Path, keep_cpg: bool, note: bool) -> None:
    frame = transformer_frame(3)
    frame["名称"] = ["城南配变", "城北配变", "江北配变"]
    path = write_layer(frame, tmp_path, "zip", encoding="GBK", keep_cpg=keep_cpg)
    report, sink = run(path)
    assert [r["name"] for r in sink.records()] == list(frame.name)
    assert "名称" in report.unmapped_columns  # the Chinese column name is decoded too
    assert any("GB18030" in n for n in report.notes) is note


def test_gbk_csv_is_transcoded(tmp_path: Path) -> None:
    path = write_layer(transformer_frame(2), tmp_path, "csv", encoding="gbk")
    report, sink = run(path)
    assert [r["name"] for r in sink.records()] == ["测试配变1号", "测试配变2号"]
    assert any("GB18030" in n for n in report.notes)
    with pytest.raises(LayerFileError):  # a wrong explicit encoding is an error, not mojibake
        run(path, encoding="ascii")


@pytest.mark.parametrize(("crs", "prj"), [
    (GK_CM_108E, None),  # CGCS2000 3-degree GK, central meridian 108°E, from the GeoPackage's own SRS
    (GK_ZONE_36, None),  # the same zone with the zone number in front of x
    (GK_ZONE_36, ESRI_PRJ_GK_ZONE_36),  # ArcGIS .prj text of that zone
])
def test_gauss_krueger_sources_are_reprojected(tmp_path: Path, crs: str, prj: str | None) -> None:
    expected = transformer_frame(4)
    fmt = "shp" if prj else "gpkg"
    path = write_layer(expected.to_crs(crs), tmp_path, fmt)
    if prj:
        path.with_suffix(".prj").write_text(prj)
    _report, sink = run(path)
    for record, geom in zip(sink.records(), expected.geometry, strict=True):
        assert record["geom"].distance(geom) < COORD_TOL_DEG


def test_known_point_on_the_central_meridian(tmp_path: Path) -> None:
    # x = 500 000 m on CGCS2000 GK CM 108°E lies exactly on lon 108°; y = 3 320 km is about lat 30°.
    path = tmp_path / "pt.csv"
    path.write_text("asset_id,rated_kva,x,y\nT-1,400,500000,3320000\n")
    _report, sink = run(path, source_crs=GK_CM_108E, service_area_wgs84=None)
    geom = sink.records()[0]["geom"]
    assert abs(geom.x - 108.0) < COORD_TOL_DEG and abs(geom.y - 29.99) < 0.01


def test_csv_with_projected_xy_needs_a_crs(tmp_path: Path) -> None:
    path = tmp_path / "pt.csv"
    path.write_text("asset_id,rated_kva,x,y\nT-1,400,500000,3320000\n")
    with pytest.raises(SourceCrsError):
        run(path)


def test_mapping_file_units_values_and_constants(tmp_path: Path) -> None:
    frame = transformer_frame(3)
    frame = frame.rename(columns={"asset_id": "设备编号", "rated_kva": "sn_mva", "status": "运行状态"})
    frame["sn_mva"] = frame["sn_mva"] / 1000.0
    frame["运行状态"] = ["在运", "规划", "退役"]
    mapping = tmp_path / "map.toml"
    mapping.write_text(
        'layer = "transformers"\n[fields]\nasset_id = "设备编号"\n'
        'rated_kva = { column = "sn_mva", unit = "MVA" }\n'
        'status = { column = "运行状态", values = { "在运" = "in_service", "规划" = "planned", "退役" = "retired" } }\n'
        '[constants]\ngrid_area_code = "GA-01"\n', encoding="utf-8")
    report, sink = run(write_layer(frame, tmp_path, "gpkg"), mapping=FieldMapping.from_file(mapping))
    records = sink.records()
    assert [r["rated_kva"] for r in records] == pytest.approx([315.0, 400.0, 630.0])
    assert [r["status"] for r in records] == ["in_service", "planned", "retired"]
    assert {r["grid_area_code"] for r in records} == {"GA-01"}
    assert report.column_mapping["rated_kva"] == "sn_mva" and report.column_mapping["grid_area_code"] == "='GA-01'"


@pytest.mark.parametrize(("pairs", "expectation"), [
    (["sn_mva[MVA]=rated_kva"], nullcontext()),  # unit conversion declared on the CLI
    (["sn_mva[kW]=rated_kva"], pytest.raises(ImportMappingError)),  # kW is not apparent power
    (["sn_mva=rated_kvar"], pytest.raises(ImportMappingError)),  # no such field
    (["nope=rated_kva"], pytest.raises(ImportMappingError)),  # no such column
    (["sn_mva"], pytest.raises(ImportMappingError)),  # not SRC=DST
    ([], pytest.raises(ImportMappingError)),  # the required rated_kva has no column at all
])
def test_cli_pairs(tmp_path: Path, pairs: list[str], expectation: Any) -> None:
    frame = transformer_frame(1).rename(columns={"rated_kva": "sn_mva"})
    frame["sn_mva"] = 0.4
    path = write_layer(frame, tmp_path, "geojson")
    with expectation:
        _report, sink = run(path, mapping=FieldMapping.from_pairs(pairs))
        assert sink.records()[0]["rated_kva"] == pytest.approx(400.0)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_mapping_file_formats(tmp_path: Path, suffix: str) -> None:
    document = {"fields": {"rated_kva": {"column": "kva", "scale": 2}}, "geometry": {"x": "E", "y": "N"}}
    path = tmp_path / f"m{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(document))
    else:
        import yaml

        path.write_text(yaml.safe_dump(document))
    mapping = FieldMapping.from_file(path)
    assert mapping.fields["rated_kva"].scale == 2 and (mapping.x_column, mapping.y_column) == ("E", "N")


def test_mapping_file_errors_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[fields]\nrated_kva = { column = "a", unit = 3 }\n')
    with pytest.raises(ImportMappingError) as raised:
        FieldMapping.from_file(path)
    assert raised.value.details["file"] == "bad.toml" and "rated_kva" in raised.value.details["entry"]


def bad_rows_file(tmp_path: Path) -> Path:
    ok = {"asset_id": "T-1", "rated_kva": 400}
    bowtie = {"type": "Polygon", "coordinates": [[[106.5, 29.5], [106.6, 29.6], [106.6, 29.5], [106.5, 29.6],
                                                  [106.5, 29.5]]]}
    return write_geojson(tmp_path, [
        (ok, point(106.5, 29.5)),                                   # row 1: fine
        ({"asset_id": "T-2"}, point(106.5, 29.5)),                  # row 2: FIELD_MISSING rated_kva
        ({"asset_id": "T-3", "rated_kva": "很大"}, point(106.5, 29.5)),  # row 3: FIELD_INVALID (not a number)
        ({"asset_id": "T-4", "rated_kva": -5}, point(106.5, 29.5)),  # row 4: FIELD_INVALID (≤ 0)
        ({"asset_id": "T-5", "rated_kva": 400, "status": "broken"}, point(106.5, 29.5)),  # row 5: bad choice
        ({"asset_id": "T-6", "rated_kva": 400}, None),              # row 6: GEOMETRY_EMPTY
        ({"asset_id": "T-7", "rated_kva": 400}, bowtie),            # row 7: GEOMETRY_TYPE_WRONG
        ({"asset_id": "T-1", "rated_kva": 400}, point(106.5, 29.5)),  # row 8: ID_DUPLICATE
        ({"asset_id": "T-9", "rated_kva": 400}, point(116.4, 39.9)),  # row 9: OUT_OF_SERVICE_AREA (Beijing)
        ({"asset_id": "T-10" * 20, "rated_kva": 400}, point(106.5, 29.5)),  # row 10: id too long
        ({"asset_id": "T-11", "rated_kva": 400, "grid_area_code": "GA-X"}, point(106.5, 29.5)),  # warning
    ])


def test_every_row_error_is_reported_and_nothing_written(tmp_path: Path) -> None:
    sink = MemorySink(known={("grid_areas", "code"): {"GA-1"}})
    with pytest.raises(ImportRejectedError) as raised:
        run(bad_rows_file(tmp_path), sink=sink, report_csv=tmp_path / "report.csv")
    report = raised.value.report
    found = {(issue.row, issue.field, issue.code) for issue in report.issues}
    assert found == {
        (2, "rated_kva", "FIELD_MISSING"), (3, "rated_kva", "FIELD_INVALID"), (4, "rated_kva", "FIELD_INVALID"),
        (5, "status", "FIELD_INVALID"), (6, "geometry", "GEOMETRY_EMPTY"), (7, "geometry", "GEOMETRY_TYPE_WRONG"),
        (8, "asset_id", "ID_DUPLICATE"), (9, "geometry", "OUT_OF_SERVICE_AREA"), (10, "asset_id", "FIELD_INVALID"),
        (11, "grid_area_code", "REFERENCE_UNKNOWN"),
    }
    assert report.rows_rejected == 9 and report.rows_with_warnings == 1 and sink.finished is None and sink.aborted
    assert raised.value.details["issue_counts"]["FIELD_INVALID"] == 4
    with (tmp_path / "report.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and rows[0].keys() >= {"row", "key", "field", "code", "severity", "message"}


def test_skip_invalid_imports_the_valid_rows(tmp_path: Path) -> None:
    report, sink = run(bad_rows_file(tmp_path), skip_invalid=True)
    assert [r["asset_id"] for r in sink.records()] == ["T-1", "T-11"]
    assert report.rows_valid == 2 and report.rows_rejected == 9 and sink.finished == {"replace": False,
                                                                                     "dry_run": False}


def test_orphan_lines_and_access_points_are_rejected(tmp_path: Path) -> None:
    known = {("transformers", "asset_id"): {"T-1"}}
    line = {"type": "LineString", "coordinates": [[106.5, 29.5], [106.501, 29.5]]}
    path = write_geojson(tmp_path, [
        ({"asset_id": "L-1", "transformer_asset_id": "T-1", "kind": "overhead"}, line),
        ({"asset_id": "L-2", "transformer_asset_id": "T-404", "kind": "cable"}, line),
    ])
    report, sink = run(path, "lv_lines", sink=MemorySink(known=known), skip_invalid=True)
    assert [(i.row, i.code) for i in report.issues] == [(2, "REFERENCE_UNKNOWN")]
    assert [r["asset_id"] for r in sink.records()] == ["L-1"]


def test_geometry_repairs_are_safe_and_reported(tmp_path: Path) -> None:
    # A polygon with a zero-area spike is invalid; removing the spike keeps the area: safe repair.
    spike = [[106.50, 29.50], [106.51, 29.50], [106.51, 29.51], [106.505, 29.51], [106.505, 29.52],
             [106.505, 29.51], [106.50, 29.51], [106.50, 29.50]]
    bowtie = [[106.5, 29.5], [106.6, 29.6], [106.6, 29.5], [106.5, 29.6], [106.5, 29.5]]
    path = write_geojson(tmp_path, [
        ({"asset_id": "Z-1"}, {"type": "Polygon", "coordinates": [spike]}),
        ({"asset_id": "Z-2"}, {"type": "Polygon", "coordinates": [bowtie]}),  # area changes: not safe
        ({"asset_id": "Z-3"}, {"type": "MultiPolygon", "coordinates": [[spike]]}),
    ])
    report, sink = run(path, "no_overhead_zones", skip_invalid=True)
    codes = [(i.row, i.code) for i in report.issues]
    assert codes == [(1, "GEOMETRY_REPAIRED"), (3, "GEOMETRY_REPAIRED"), (2, "GEOMETRY_INVALID")]
    records = sink.records()
    assert [r["asset_id"] for r in records] == ["Z-1", "Z-3"]
    assert all(r["geom"].geom_type == "MultiPolygon" and r["geom"].is_valid for r in records)
    assert records[0]["geom"].area == pytest.approx(0.0001, rel=1e-9)


def test_single_part_multilines_are_simplified(tmp_path: Path) -> None:
    one = {"type": "MultiLineString", "coordinates": [[[106.5, 29.5], [106.501, 29.5]]]}
    joined = {"type": "MultiLineString", "coordinates": [[[106.5, 29.5], [106.501, 29.5]],
                                                         [[106.501, 29.5], [106.502, 29.5]]]}
    apart = {"type": "MultiLineString", "coordinates": [[[106.5, 29.5], [106.501, 29.5]],
                                                        [[106.6, 29.6], [106.601, 29.6]]]}
    path = write_geojson(tmp_path, [({"asset_id": f"R-{i}", "road_class": "lane"}, g)
                                    for i, g in enumerate((one, joined, apart))])
    report, sink = run(path, "roads", skip_invalid=True)
    assert [(i.row, i.code) for i in report.issues] == [(1, "GEOMETRY_REPAIRED"), (2, "GEOMETRY_REPAIRED"),
                                                        (3, "GEOMETRY_TYPE_WRONG")]
    assert [r["geom"].geom_type for r in sink.records()] == ["LineString", "LineString"]


def test_load_readings_timestamps_are_utc(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_text("transformer_asset_id,read_at,peak_kva\nT-1,2026-08-01 20:00:00,310\n"
                    "T-1,2026-08-02T12:00:00Z,290\nT-1,昨天,1\n", encoding="utf-8")
    report, sink = run(path, "load_readings", sink=MemorySink(known={("transformers", "asset_id"): {"T-1"}}),
                       skip_invalid=True)
    stamps = [r["read_at"].isoformat() for r in sink.records()]
    assert stamps == ["2026-08-01T12:00:00+00:00", "2026-08-02T12:00:00+00:00"]  # naive = Beijing time
    assert [(i.row, i.code) for i in report.issues] == [(3, "FIELD_INVALID")]


@pytest.mark.parametrize(("make", "error"), [
    (lambda d: d / "missing.gpkg", LayerFileError),
    (lambda d: (d / "x.txt").write_text("x") and d / "x.txt", LayerFileError),
    (lambda d: (d / "bad.zip").write_bytes(b"not a zip") and d / "bad.zip", LayerFileError),
])
def test_unreadable_files(tmp_path: Path, make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        run(make(tmp_path))


def test_unknown_layer_and_empty_replace(tmp_path: Path) -> None:
    path = write_geojson(tmp_path, [({"asset_id": "T-1", "rated_kva": 400}, point(116.4, 39.9))])
    with pytest.raises(LayerUnknownError):
        run(path, "pylons")
    with pytest.raises(ImportEmptyReplaceError):  # no valid row left: replacing would empty the layer
        run(path, replace=True, skip_invalid=True)


def test_shapefile_without_prj_needs_crs(tmp_path: Path) -> None:
    path = write_layer(transformer_frame(1), tmp_path, "shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(SourceCrsError):
        run(path)
    report, _sink = run(path, source_crs="EPSG:4326")
    assert report.rows_valid == 1


def test_zip_with_two_layers_needs_a_choice(tmp_path: Path) -> None:
    first = write_layer(transformer_frame(1), tmp_path / "a", "shp", name="a")
    second = write_layer(transformer_frame(2), tmp_path / "b", "shp", name="b")
    import zipfile

    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for shp in (first, second):
            for member in shp.parent.iterdir():
                zf.write(member, member.name)
    with pytest.raises(LayerFileError) as raised:
        run(archive)
    assert sorted(raised.value.details["layers"]) == ["a", "b"]
    assert run(archive, source_layer="b")[0].rows_valid == 2


def test_batches_stream_and_progress_reports(tmp_path: Path) -> None:
    path = write_layer(transformer_frame(50), tmp_path, "gpkg")
    seen: list[tuple[str, int, float]] = []
    sink = MemorySink()
    import_layer(path, "transformers", sink, ImportOptions(batch_rows=16),
                 progress=lambda p: seen.append((p.phase, p.rows_done, p.percent)))
    assert [t.num_rows for t in sink.tables] == [16, 16, 16, 2]
    assert seen[0] == ("reading", 0, 0.0) and seen[-1] == ("done", 50, 100.0)
    assert [pct for _phase, _rows, pct in seen] == sorted(pct for _phase, _rows, pct in seen)


def test_point_fast_path_matches_shapely() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-180, 180, 100), rng.uniform(-90, 90, 100)
    wkb = pa.array(shapely.to_wkb(shapely.points(x, y)), pa.binary())
    fast = _points_fast(wkb.slice(10, 50))
    assert fast is not None and np.array_equal(fast[0], x[10:60]) and np.array_equal(fast[1], y[10:60])
    ewkb = encode_ewkb_points(x, y).to_pylist()
    assert ewkb == list(shapely.to_wkb(shapely.set_srid(shapely.points(x, y), 4326), include_srid=True))
    assert _points_fast(pa.array([shapely.to_wkb(shapely.Point(1, 2, 3))], pa.binary())) is None  # 3D: slow path


def test_three_d_points_are_flattened(tmp_path: Path) -> None:
    frame = transformer_frame(2)
    frame = frame.set_geometry(shapely.force_3d(frame.geometry.values, 250.0))
    path = tmp_path / "z.gpkg"
    pyogrio.write_dataframe(frame, path)
    _report, sink = run(path)
    assert all(not r["geom"].has_z for r in sink.records())


def test_every_layer_declares_its_key_fields() -> None:
    for spec in LAYERS.values():
        assert set(spec.key) <= set(spec.field_names), spec.name
        for reference in spec.references:
            assert reference.layer in LAYERS and reference.key in LAYERS[reference.layer].field_names
