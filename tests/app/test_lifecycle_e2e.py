"""Apply → assign → survey adjust → confirm → every stage → power on, through the HTTP API, per job class (issue 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from app.identity.auth import Role
from app.main import create_app
from app.platform.models import Transformer
from tests.app.auth_helpers import make_user, override_session, settings_for_tests
from tests.app.lifecycle_helpers import (
    JOB_CLASSES,
    REPO,
    application_form,
    apply,
    make_teams,
    new_key,
    report,
    sample,
    signed_in,
)


@pytest.fixture
def client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_for_tests(demo_db_url, data_dir=tmp_path,
                                  depot_stock_file=REPO / "fixtures" / "depot_stock.csv")
    app = create_app(settings)
    override_session(app, db_conn)
    yield TestClient(app)


def _reserved(conn: Connection, asset_id: str) -> float:
    return float(conn.execute(select(Transformer.reserved_kva).where(Transformer.asset_id == asset_id)).scalar_one())


def _moved(survey: dict[str, Any]) -> dict[str, Any]:
    """The survey adjustment: the meter box moved about 1 m east on the outside wall."""
    lon, lat = survey["meter_box"]["coordinates"]
    return {"meter_box": {"lon": lon + 0.00001, "lat": lat, "crs": "wgs84"}}


@pytest.mark.parametrize("job_class", JOB_CLASSES)
def test_full_lifecycle_of_every_job_class(client: TestClient, db_conn: Connection, job_class: str) -> None:
    teams = make_teams(db_conn)
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
    form = application_form(sample(job_class))
    applied = apply(client, customer, form)
    assert applied.status_code == 201, applied.text
    body = applied.json()
    assert body["job_class"] == job_class and body["status"] == "in_progress"
    assert body["promised_power_on"] and body["customer_procedures"][0]["completed_at"]
    assert body["steps"][0]["step_code"] == "accept_and_sign" and body["steps"][0]["completed_at"]
    app_id = body["id"]
    code = body["grid_area_code"]
    cm, pm = teams[code]
    assert body["team"]["customer_manager"]["user_id"] == cm.id
    assert body["team"]["project_manager"]["user_id"] == pm.id
    pm_headers = signed_in(client, pm)

    queue = client.get("/api/v1/terminal/queue", headers=pm_headers).json()["items"]
    assert [i["application_id"] for i in queue] == [app_id] and queue[0]["current_step"] == "site_survey"

    package = client.get(f"/api/v1/terminal/jobs/{app_id}/survey-package", headers=pm_headers)
    assert package.status_code == 200, package.text
    etag = package.headers["ETag"]
    survey = package.json()
    assert survey["assets"]["features"] and survey["bom"]["lines"] and survey["drawing"]["features"]
    assert package.headers["content-encoding"] == "gzip"  # the test client accepts gzip, as phones do
    assert all(round(c, 6) == c for c in survey["meter_box"]["coordinates"])  # 1e-6° is enough on site

    key = new_key()
    adjusted = client.post(f"/api/v1/terminal/jobs/{app_id}/adjustments", json=_moved(survey),
                         headers={**pm_headers, "If-Match": etag, "Idempotency-Key": key})
    assert adjusted.status_code == 201, adjusted.text
    assert adjusted.json()["version"] == 2 and adjusted.json()["job_class"] == job_class
    replay = client.post(f"/api/v1/terminal/jobs/{app_id}/adjustments", json=_moved(survey),
                         headers={**pm_headers, "If-Match": etag, "Idempotency-Key": key})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["version"] == 2

    assert report(client, pm_headers, app_id, "site_survey", photos=0).status_code == 200
    confirmed = client.post(f"/api/v1/terminal/jobs/{app_id}/confirm",
                            headers={**pm_headers, "If-Match": adjusted.headers["ETag"]})
    assert confirmed.status_code == 200, confirmed.text
    materials = confirmed.json()["materials_request"]
    assert confirmed.json()["confirmed_version"] == 2 and materials["lines"] > 0
    assert materials["stock_check"]["checked"] is True

    timeline = client.get(f"/api/v1/applications/{app_id}", headers=pm_headers).json()
    for step in timeline["steps"]:
        if step["completed_at"] is None:
            response = report(client, pm_headers, app_id, step["step_code"], key=new_key())
            assert response.status_code == 200, (step["step_code"], response.text)

    final = client.get(f"/api/v1/applications/{app_id}", headers=customer).json()
    assert final["status"] == "powered_on"
    assert all(step["completed_at"] for step in final["steps"])
    assert all(p["completed_at"] for p in final["customer_procedures"])
    assert "gps" not in final["steps"][1]  # customers do not see the field team's GPS fixes
    if job_class == "transformer_upgrade":
        assert timeline["reservation"]["reserved_kva"] == 0
    else:
        reservation = timeline["reservation"]
        assert reservation["reserved_kva"] > 0
        assert _reserved(db_conn, reservation["transformer_asset_id"]) >= reservation["reserved_kva"] - 1e-3
