"""Helpers for the application lifecycle tests: demo samples, tiny valid files, the 1+1 teams, HTTP steps."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from app.identity.auth import Role
from app.lifecycle.contracts import current_contract
from app.platform.models import GridArea
from tests.app.auth_helpers import AuthUser, auth_headers, make_user

REPO = Path(__file__).resolve().parents[2]
SAMPLES = list(csv.DictReader((REPO / "fixtures" / "sample_applications.csv").open(encoding="utf-8")))
GRID_AREAS = ("CQ-YB-01", "CQ-YB-02", "CQ-YB-03", "CQ-YB-04")
JOB_CLASSES = ("direct_meter", "overhead", "underground_cable", "transformer_upgrade")
#: 50 m west of the demo district's grid areas, 158 m from transformer T-0005: in no grid area.
PIN_OUTSIDE_GRID_AREAS = (106.4840687, 29.5088843)

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64) + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def sample(job_class: str) -> dict[str, str]:
    """The first demo sample expected to get ``job_class``."""
    return next(s for s in SAMPLES if s["expected_job_class"] == job_class)


def application_form(row: dict[str, str], **extra: Any) -> dict[str, Any]:
    """An application form for a demo sample, accepting the current contract."""
    contract = current_contract()
    return {"applicant_name": f"客户 {row['app_id']}", "identity_kind": "business_licence",
            "identity_number": "91500000MA5U0000" + row["app_id"][-2:], "contact_phone": "13800000000",
            "address": f"重庆市渝北区 {row['app_id']} 号", "lon": float(row["lon"]), "lat": float(row["lat"]),
            "crs": row["crs"], "kw": float(row["kw"]), "phases": int(row["phases"]), "category": row["category"],
            "industry": "餐饮", "area_type": row["area_type"], "contract_version": contract.version,
            "contract_sha256": contract.sha256, **extra}


def apply(client: TestClient, headers: dict[str, str], form: dict[str, Any], *, property_proof: bool = True,
          key: str | None = None) -> Any:
    """POST /api/v1/applications with the two documents (or the ID only: 容缺)."""
    files: list[tuple[str, tuple[str, bytes, str]]] = [("identity_document", ("licence.pdf", PDF, "application/pdf"))]
    if property_proof:
        files.append(("property_document", ("deed.jpg", JPEG, "image/jpeg")))
    extra = {"Idempotency-Key": key} if key else {}
    return client.post("/api/v1/applications", data={"application": json.dumps(form, ensure_ascii=False)},
                       files=files, headers={**headers, **extra})


def report(client: TestClient, headers: dict[str, str], application_id: int, step_code: str, *,
           photos: int = 1, client_time: str | None = None, key: str | None = None) -> Any:
    """POST a stage report with a GPS fix and ``photos`` PNG photos."""
    body = {"gps": {"lon_wgs84": 106.49, "lat_wgs84": 29.5, "accuracy_m": 5.0}, "client_time": client_time}
    files = [("photos", (f"p{i}.png", PNG, "image/png")) for i in range(photos)]
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v1/terminal/jobs/{application_id}/steps/{step_code}",
                       data={"report": json.dumps(body)}, files=files or None, headers={**headers, **extra})


def make_teams(conn: Connection) -> dict[str, tuple[AuthUser, AuthUser]]:
    """The 1+1 team of every demo grid area: users named as ``grid_areas`` names them, so they are the ones
    assigned even when other tests left more managers of these areas in the shared demo database."""
    named = {code: (cm, pm) for code, cm, pm in conn.execute(
        select(GridArea.code, GridArea.customer_manager, GridArea.project_manager))}
    return {code: (make_user(conn, Role.CUSTOMER_MANAGER, grid_areas=[code], full_name=named[code][0]),
                   make_user(conn, Role.PROJECT_MANAGER, grid_areas=[code], full_name=named[code][1]))
            for code in GRID_AREAS}


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return str(uuid.uuid4())


def signed_in(client: TestClient, user: AuthUser) -> dict[str, str]:
    """Bearer headers of ``user``."""
    return auth_headers(client, user)
