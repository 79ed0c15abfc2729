"""Helpers for the application lifecycle tests: demo samples, tiny valid files, the 1+1 teams, HTTP steps."""

from __future__ import annotations

import csv
import json
import struct
import uuid
import zlib
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


def _pdf() -> bytes:
    """A well-formed one-object PDF: header, an object, its xref table, trailer, ``startxref`` and ``%%EOF``."""
    body = b"%PDF-1.4\n1 0 obj <<>> endobj\n"
    return (body + b"xref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer <<>>\nstartxref\n"
            + str(len(body)).encode() + b"\n%%EOF\n")


def _jpeg() -> bytes:
    """A well-formed 1×1 greyscale JPEG skeleton: SOI, APP0 (JFIF), a frame, a scan, EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 1, 1, 1) + b"\x01\x11\x00"
    scan = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + app0 + frame + scan + bytes(16) + b"\xff\xd9"


def _png() -> bytes:
    """A well-formed 1×1 grey PNG: signature, IHDR, IDAT, IEND with their CRCs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


#: Tiny files that pass the upload checks (leading bytes and structure, app/platform/uploads.py).
PDF, JPEG, PNG = _pdf(), _jpeg(), _png()


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


Multipart = tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]


def application_multipart(form: dict[str, Any], *, property_proof: bool = True) -> Multipart:
    """``(data, files)`` of POST /api/v1/applications: the form as JSON and the documents (or the ID only: 容缺)."""
    files: list[tuple[str, tuple[str, bytes, str]]] = [("identity_document", ("licence.pdf", PDF, "application/pdf"))]
    if property_proof:
        files.append(("property_document", ("deed.jpg", JPEG, "image/jpeg")))
    return {"application": json.dumps(form, ensure_ascii=False)}, files


def apply(client: TestClient, headers: dict[str, str], form: dict[str, Any], *, property_proof: bool = True,
          key: str | None = None) -> Any:
    """POST /api/v1/applications with the two documents (or the ID only: 容缺)."""
    data, files = application_multipart(form, property_proof=property_proof)
    extra = {"Idempotency-Key": key} if key else {}
    return client.post("/api/v1/applications", data=data, files=files, headers={**headers, **extra})


def report_multipart(*, photos: int = 1, client_time: str | None = None, **extra: Any) -> Multipart:
    """``(data, files)`` of a stage report: a GPS fix and ``photos`` PNG photos (``extra``: more report fields)."""
    body = {"gps": {"lon_wgs84": 106.49, "lat_wgs84": 29.5, "accuracy_m": 5.0}, "client_time": client_time, **extra}
    return {"report": json.dumps(body)}, [("photos", (f"p{i}.png", PNG, "image/png")) for i in range(photos)]


def report(client: TestClient, headers: dict[str, str], application_id: int, step_code: str, *,
           photos: int = 1, client_time: str | None = None, key: str | None = None, **extra: Any) -> Any:
    """POST a stage report with a GPS fix and ``photos`` PNG photos; 装表接电 with an account number (户号)
    unless ``extra`` names one (``account_number=None`` sends none)."""
    if step_code == "meter_and_energise":
        extra.setdefault("account_number", f"50{application_id:08d}")
    extra = {name: value for name, value in extra.items() if value is not None}
    data, files = report_multipart(photos=photos, client_time=client_time, **extra)
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v1/terminal/jobs/{application_id}/steps/{step_code}",
                       data=data, files=files or None, headers={**headers, **extra})


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
