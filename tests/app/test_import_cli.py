"""`sanling import` end to end: mapping, reports, dry run, progress, and a kill in the middle of an import."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from sqlalchemy import text

from app.cli import main
from app.platform import migrate
from app.platform.db import create_db_engine
from tests.importdata import TEST_AREA_WGS84, transformer_frame, write_layer

REPO_ROOT = Path(__file__).resolve().parents[2]
KILL_ROWS = 150_000


@pytest.fixture
def cli_db(backend: str, fresh_database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from app.settings import get_settings

    url = fresh_database(backend)
    migrate.upgrade(url)
    monkeypatch.setenv("SANLING_DATABASE_URL", url)
    monkeypatch.setenv("SANLING_SERVICE_AREA_WGS84", json.dumps(TEST_AREA_WGS84))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def scalar(url: str, sql: str) -> object:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar_one()
    engine.dispose()
    return value


def test_map_pairs_report_files_and_dry_run(cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = transformer_frame(4).rename(columns={"asset_id": "编号", "rated_kva": "容量MVA"})
    frame["容量MVA"] = frame["容量MVA"] / 1000
    frame.loc[3, "编号"] = frame.loc[0, "编号"]  # a duplicate id
    path = write_layer(frame, tmp_path, "zip", encoding="GBK")
    args = ["import", "transformers", str(path), "--map", "编号=asset_id", "--map", "容量MVA[MVA]=rated_kva",
            "--no-progress"]
    assert main([*args, "--report", str(tmp_path / "rejected")]) == 2
    report = json.loads((tmp_path / "rejected.json").read_text(encoding="utf-8"))
    assert report["status"] == "rejected" and report["issue_counts"] == {"ID_DUPLICATE": 1}
    assert "row 4 (T-0001) asset_id ID_DUPLICATE" in capsys.readouterr().err
    assert main([*args, "--skip-invalid", "--dry-run"]) == 0
    assert "3 would be imported (dry run): 3 inserted" in capsys.readouterr().out
    assert scalar(cli_db, "SELECT count(*) FROM transformers") == 0
    assert main([*args, "--skip-invalid", "--report", str(tmp_path / "ok")]) == 0
    assert scalar(cli_db, "SELECT max(rated_kva) FROM transformers") == pytest.approx(630.0)
    assert (tmp_path / "ok.csv").read_text(encoding="utf-8-sig").count("ID_DUPLICATE") == 1


def test_mapping_file_and_progress_bar(cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "poles.csv"
    path.write_text("transformer_asset_id,杆号,类型,经度,纬度\nT-0001,P-1,电杆,106.5,29.5\nT-0001,P-2,分支箱,106.51,29.5\n",
                    encoding="utf-8")
    mapping = tmp_path / "poles.yaml"
    mapping.write_text("fields:\n  asset_id: 杆号\n  kind:\n    column: 类型\n"
                       "    values: {电杆: pole, 分支箱: branch_box}\n", encoding="utf-8")
    assert main(["import", "transformers", str(write_layer(transformer_frame(1), tmp_path, "gpkg"))]) == 0
    assert main(["import", "access_points", str(path), "--mapping", str(mapping)]) == 0
    captured = capsys.readouterr()
    assert "access_points: 2 rows read, 2 imported: 2 inserted" in captured.out
    assert "rows/s" in captured.err and "access_points: writing" in captured.err  # the tqdm bar
    assert scalar(cli_db, "SELECT count(*) FROM access_points WHERE kind = 'branch_box'") == 1


@pytest.fixture(scope="module")
def big_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeoPackage big enough that the kill lands while the import is running."""
    rng = np.random.default_rng(11)
    ids = np.char.add("T-", np.arange(KILL_ROWS).astype(str))
    frame = gpd.GeoDataFrame({"asset_id": ids, "rated_kva": np.full(KILL_ROWS, 999.0)},
                             geometry=shapely.points(rng.uniform(106.3, 106.8, KILL_ROWS),
                                                     rng.uniform(29.4, 29.8, KILL_ROWS)), crs="EPSG:4326")
    path = tmp_path_factory.mktemp("big") / "big.gpkg"
    pyogrio.write_dataframe(frame, path, layer="transformers", layer_options={"SPATIAL_INDEX": "NO"})
    return path


def test_kill_during_import_leaves_previous_data(cli_db: str, tmp_path: Path, big_layer: Path) -> None:
    previous = write_layer(transformer_frame(5, start=0), tmp_path, "gpkg")  # T-0000 … T-0004
    assert main(["import", "transformers", str(previous), "--no-progress"]) == 0
    before = scalar(cli_db, "SELECT sum(rated_kva) FROM transformers")
    env = {**os.environ, "SANLING_DATABASE_URL": cli_db, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "app.cli", "import", "transformers", str(big_layer)],
                             cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    seen = b""
    deadline = time.monotonic() + 60
    while not re.search(rb"[1-9][\d.]*k/150k", seen):  # the bar shows rows read: the import is under way
        chunk = child.stderr.read1(4096)
        assert chunk and time.monotonic() < deadline, seen.decode(errors="replace")
        seen += chunk
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert scalar(cli_db, "SELECT count(*) FROM transformers") == 5
    assert scalar(cli_db, "SELECT sum(rated_kva) FROM transformers") == before
    # The killed import left no lock and no half-built table behind: the same import now runs through.
    assert main(["import", "transformers", str(big_layer), "--no-progress"]) == 0
    assert scalar(cli_db, "SELECT count(*) FROM transformers") == KILL_ROWS + 5
    migrate.check(cli_db)  # the rebuilt table has the migrated schema (names, types, indexes)


def test_bulk_load_into_an_empty_layer_keeps_the_schema(cli_db: str, big_layer: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "transformers", str(big_layer), "--no-progress"]) == 0
    strategy = "direct" if cli_db.startswith("postgresql") else "rebuild"
    assert f"{KILL_ROWS} inserted, 0 updated, 0 unchanged, 0 deleted [{strategy}]" in capsys.readouterr().out
    migrate.check(cli_db)
    assert scalar(cli_db, "SELECT generation FROM asset_generation") == 1
