"""The app's tables and per-app objects are explicit (issue 11 items 3, 6, 8): built by ``create_app`` and the
CLI from the same functions, never registered by importing a module, and checked at start."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import app
from app.main import create_app
from app.platform.errors import ErrorTable
from app.settings import Settings
from app.wiring import error_table, service_jobs
from design_rules.profiles import AreaType
from gis.errors import NotFoundError, SanlingError
from gis.layers import AREA_TYPES

SANLING = str(Path(sys.executable).parent / "sanling")


def _declared_statuses() -> dict[type[SanlingError], int]:
    """Every ``ERROR_STATUSES`` constant of every module of the app."""
    declared: dict[type[SanlingError], int] = {}
    for module_info in pkgutil.walk_packages(app.__path__, "app."):
        module = importlib.import_module(module_info.name)
        for error_class, status in getattr(module, "ERROR_STATUSES", ()):
            declared[error_class] = status
    return declared


def test_every_status_a_context_declares_is_in_the_app_error_table(tmp_path: Path) -> None:
    table = create_app(Settings(data_dir=tmp_path)).state.error_table
    declared = _declared_statuses()
    assert len(declared) >= 15
    for error_class, status in declared.items():
        assert table.status_for(error_class.__new__(error_class)) == status, error_class.__name__


def test_the_error_table_is_the_same_however_many_modules_were_imported(tmp_path: Path) -> None:
    before = error_table()
    _declared_statuses()  # imports every module of the app
    assert error_table() == before == create_app(Settings(data_dir=tmp_path)).state.error_table
    assert isinstance(before.entries, tuple)  # immutable


def test_an_entry_a_more_general_one_would_shadow_is_refused() -> None:
    class LateError(NotFoundError):
        code = "LATE"

    with pytest.raises(ValueError, match=r"LateError .* shadowed by NotFoundError"):
        ErrorTable(((NotFoundError, 404), (LateError, 410)))


def test_the_app_and_the_cli_run_the_same_jobs(tmp_path: Path) -> None:
    """R5.4's deadline watch runs although nothing imports its module for a side effect any more."""
    registry = create_app(Settings(data_dir=tmp_path)).state.jobs
    assert registry.jobs.keys() == service_jobs().jobs.keys() == {
        "deliver_notifications", "cleanup_idempotency_keys", "deadline_watch", "booking_release"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATA_DIR": str(tmp_path)})
    subprocess.run([SANLING, "db", "upgrade"], env=env, check=True, capture_output=True)
    listed = subprocess.run([SANLING, "jobs", "list"], env=env, check=True, capture_output=True, text=True).stdout
    assert sorted(line.split("\t")[0] for line in listed.splitlines()) == sorted(registry.jobs)


def test_a_mistyped_profile_stops_the_service_at_start_naming_the_setting(tmp_path: Path) -> None:
    """Issue 11 item 8: not a 422 PROFILE_UNKNOWN on every design, blaming the client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATA_DIR": str(tmp_path), "SANLING_PROFILE": "chongqing-2091"})
    result = subprocess.run([SANLING, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SETTINGS_INVALID" in result.stderr and "SANLING_PROFILE" in result.stderr
    assert "chongqing-2019" in result.stderr  # the known profiles are named


def test_a_missing_depot_stock_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="depot_stock_file"):
        Settings(data_dir=tmp_path, depot_stock_file=tmp_path / "no-such.csv")


def test_one_area_type_vocabulary() -> None:
    """The import's codes (gis, which may not import the rules) are the rules' AreaType, in order."""
    assert tuple(a.value for a in AreaType) == AREA_TYPES


def test_a_booking_keeps_the_snapshot_trees_the_survey_uses(client, demo_engine) -> None:  # type: ignore[no-untyped-def]
    """Survey trees live on the snapshot: a booking's new snapshot shares them (no rebuild, no id() reuse)."""
    from app.network.generations import LoadChange, network_version

    engine = client.app.state.siting_engine
    with demo_engine.connect() as conn:
        snapshot = engine.snapshot(conn)
        booked = snapshot.with_changes([LoadChange(snapshot.capacity_seq + 1, "none", 1.0, None)],
                                       network_version(conn))
    assert booked is not snapshot
    assert booked.road_tree is snapshot.road_tree and booked.zone_tree is snapshot.zone_tree
