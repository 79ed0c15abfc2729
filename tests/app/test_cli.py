"""The `sanling` CLI migrates, loads the demo and imports a layer; bad input exits non-zero (issue 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from app.network.generations import asset_counts
from app.platform.db import create_db_engine


@pytest.fixture
def cli_db(backend: str, fresh_database, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    from app.settings import get_settings

    url = fresh_database(backend)
    monkeypatch.setenv("SANLING_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_db_upgrade_and_load_demo_twice(cli_db: str) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0  # running it twice works
    assert main(["load-demo"]) == 0
    engine = create_db_engine(cli_db)
    with engine.connect() as conn:
        first = asset_counts(conn)
    assert main(["load-demo"]) == 0  # idempotent: upsert by asset id
    with engine.connect() as conn:
        assert asset_counts(conn) == first
    engine.dispose()


def test_import_reports_row_and_field_of_a_bad_row(cli_db: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    bad = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [106.5, 29.5]},
         "properties": {"asset_id": "T-1", "name": "ok", "rated_kva": 400}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [106.51, 29.5]},
         "properties": {"asset_id": "T-2", "name": "no rating"}},
    ]}
    path = tmp_path / "transformers.geojson"
    path.write_text(json.dumps(bad))
    assert main(["import", "transformers", str(path)]) == 2
    err = capsys.readouterr().err
    assert "IMPORT_REJECTED" in err and "row 2 (T-2) rated_kva FIELD_MISSING" in err
    engine = create_db_engine(cli_db)
    with engine.connect() as conn:
        assert asset_counts(conn)["transformers"] == 0  # nothing half-imported
    engine.dispose()


def test_unknown_layer_is_rejected(cli_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    path = tmp_path / "x.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    assert main(["import", "pylons", str(path)]) == 2
    assert "LAYER_UNKNOWN" in capsys.readouterr().err


def test_demo_accounts_twice_and_never_in_production(cli_db: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 2/5: `load-demo --with-users` makes the teams grid_areas names; idempotent; refused in production."""
    from sqlalchemy import select

    from app.platform.models import GridArea, User
    from app.settings import get_settings

    monkeypatch.setenv("SANLING_PASSWORD_HASH_PROFILE", "fast")
    get_settings.cache_clear()
    assert main(["db", "upgrade"]) == 0
    assert main(["load-demo", "--with-users"]) == 0
    assert main(["load-demo", "--with-users"]) == 0  # resets the same accounts
    engine = create_db_engine(cli_db)
    with engine.connect() as conn:
        users = {row.username: row for row in conn.execute(select(User))}
        areas = list(conn.execute(select(GridArea.code, GridArea.project_manager)))
    engine.dispose()
    assert len([u for u in users if u.startswith("demo-")]) == len(users) == 12
    for code, project_manager in areas:
        (pm,) = [u for u in users.values() if u.role == "project_manager" and code in u.grid_area_codes]
        assert pm.full_name == project_manager
    monkeypatch.setenv("SANLING_ENV", "production")
    monkeypatch.setenv("SANLING_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("SANLING_PASSWORD_HASH_PROFILE", "default")
    get_settings.cache_clear()
    capsys.readouterr()
    assert main(["load-demo", "--with-users"]) == 2
    assert "DEMO_USERS_REFUSED" in capsys.readouterr().err
