"""Every input gets a coded 4xx and the OpenAPI says so (issue 13 items 9, 10 and 13), on SpatiaLite and PostGIS."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Connection, Engine

from app.identity.auth import Role
from app.lifecycle.forms import ApplicationForm, GpsFix, SurveyAdjustment
from app.main import create_app
from app.platform.forms import MAX_JSON_DEPTH, MAX_JSON_FIELD_CHARS, parse_json_field
from app.platform.params import MAX_ID, MAX_INT64, Id, IsoDate, IsoDatetime, Line, Text, install_contract
from app.platform.uploads import UploadTypeError, store_upload
from gis.crs import CRS_NAMES
from gis.errors import InvalidInputError
from tests.app.auth_helpers import auth_headers, make_user, override_session, settings_for_tests
from tests.app.lifecycle_helpers import application_form, apply, make_teams, sample

BIG = 2**63


# --- tiny files, valid in structure --------------------------------------------------------------------------------


def minimal_pdf() -> bytes:
    """A one-page-less but well-formed PDF: header, two objects, an xref table, trailer, startxref, %%EOF."""
    out = BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for body in (b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"):
        offsets.append(out.tell())
        out.write(f"{len(offsets)} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 3\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def minimal_jpeg() -> bytes:
    """SOI, JFIF APP0, a quantisation table, a 1×1 baseline frame, one scan and EOI."""
    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload
    return (b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xDB, b"\x00" + bytes([1] * 64)) + segment(0xC0, b"\x08\x00\x01\x00\x01\x01\x01\x11\x00")
            + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\xd2\xcf\x20" + b"\xff\xd9")


def minimal_png() -> bytes:
    """A decodable 1×1 grey PNG: signature, IHDR, IDAT, IEND with their CRCs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


HTML = b"<html><body><script>alert(1)</script></body></html>\n"


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin(client: TestClient, demo_engine: Engine) -> dict[str, str]:
    return auth_headers(client, make_user(demo_engine, Role.ADMIN))


@pytest.fixture(scope="module")
def planner(client: TestClient, demo_engine: Engine) -> dict[str, str]:
    return auth_headers(client, make_user(demo_engine, Role.PLANNER))


@pytest.fixture(scope="module")
def pm(client: TestClient, demo_engine: Engine) -> dict[str, str]:
    return auth_headers(client, make_user(demo_engine, Role.PROJECT_MANAGER))


@pytest.fixture
def writing_client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """An app whose writes are rolled back with the test."""
    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path))
    override_session(app, db_conn)
    yield TestClient(app)


def _refused(response: Any, field: str | None = None, code: str = "REQUEST_INVALID") -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == code, body
    if field is not None:
        assert field in {e["field"] for e in body["details"].get("errors", [])} | {body["details"].get("field")}, body
    return body  # type: ignore[no-any-return]


# --- item 9: integers beyond 64 bits ----------------------------------------------------------------------------


MINE = [
    ("GET", f"/api/v1/audit?offset={BIG}", "admin"),
    ("GET", f"/api/v1/audit?actor={BIG}", "admin"),
    ("GET", f"/api/v1/notifications?offset={BIG}", "pm"),
    ("POST", f"/api/v1/notifications/{BIG}/ack", "pm"),
    ("PATCH", f"/api/v1/users/{BIG}", "admin"),
    ("DELETE", f"/api/v1/auth/api-keys/{BIG}", "pm"),
    ("GET", f"/api/v1/auth/api-keys?user_id={BIG}", "admin"),
    ("GET", f"/api/v1/features/collections/transformers/items?offset={BIG}", "planner"),
]
OTHERS = [
    ("GET", "/api/v1/designs/d?version={}", "applications.py, designs.py"),
    ("GET", "/api/v1/designs/d/drawing.svg?version={}", "designs.py"),
    ("GET", "/api/v1/designs/d/bom.csv?version={}", "designs.py"),
    ("GET", "/api/v1/designs/d/bom.xlsx?version={}", "designs.py"),
    ("GET", "/api/v1/applications/{}", "applications.py"),
    ("GET", "/api/v1/applications?offset={}", "applications.py"),
    ("GET", "/api/v1/terminal/jobs/{}/survey-package", "terminal.py"),
]


@pytest.mark.parametrize(("method", "url", "who"), MINE)
def test_integers_beyond_64_bits_are_refused(client: TestClient, admin: dict[str, str], planner: dict[str, str],
                                             pm: dict[str, str], method: str, url: str, who: str) -> None:
    """Before: 500 ``OverflowError`` on SQLite (the id or offset reached the driver); now 422 before any query."""
    headers = {"admin": admin, "planner": planner, "pm": pm}[who]
    _refused(client.request(method, url, headers=headers, json={} if method == "PATCH" else None))


@pytest.mark.parametrize(("method", "url", "owner"), OTHERS)
def test_integers_beyond_64_bits_are_refused_elsewhere(client: TestClient, admin: dict[str, str], pm: dict[str, str],
                                                       method: str, url: str, owner: str) -> None:
    """The other routers, bounded with params.Id/Offset by their owner (3476611)."""
    headers = pm if "terminal" in url else admin
    _refused(client.request(method, url.format(BIG), headers=headers))


def _integer_schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, schema) of every integer a client sends: path and query parameters and body properties."""
    components = document.get("components", {}).get("schemas", {})

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        return components[ref.rsplit("/", 1)[1]] if ref else schema

    def walk(where: str, schema: dict[str, Any], seen: frozenset[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        ref = schema.get("$ref")
        if ref in seen:
            return
        schema = resolve(schema)
        seen = seen | {ref} if ref else seen
        if schema.get("type") == "integer":
            yield where, schema
        for option in schema.get("anyOf", []) + schema.get("oneOf", []):
            yield from walk(where, option, seen)
        for name, prop in schema.get("properties", {}).items():
            yield from walk(f"{where}.{name}", prop, seen)
        if isinstance(schema.get("items"), dict):
            yield from walk(f"{where}[]", schema["items"], seen)

    for path, item in document["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                yield from walk(f"{label} {parameter['in']} {parameter['name']}", parameter["schema"], frozenset())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                yield from walk(f"{label} body", media.get("schema", {}), frozenset())


def _unbounded(document: dict[str, Any]) -> set[str]:
    return {where for where, schema in _integer_schemas(document) if "enum" not in schema
            and not (schema.get("minimum", -BIG - 1) >= -BIG and schema.get("maximum", BIG) <= MAX_INT64)}


MY_PREFIXES = ("/api/v1/audit", "/api/v1/notifications", "/api/v1/auth", "/api/v1/users", "/api/v1/features",
               "/api/v1/capacity", "/api/v1/sources", "/api/v1/public", "/tiles", "/healthz", "/map")


def test_openapi_bounds_every_integer_of_these_routers(client: TestClient) -> None:
    """Before: ``/api/v1/audit`` ``offset``, the notification and API-key ids, the tile ``z/x/y`` had no maximum."""
    unbounded = {where for where in _unbounded(client.get("/openapi.json").json())
                 if where.split(" ")[1].startswith(MY_PREFIXES) and " body." not in where}
    assert unbounded == set()


def test_openapi_bounds_every_integer(client: TestClient) -> None:
    """Before: AssignRequest's user ids and the API key's ``expires_days`` had no declared bound (``ge``/``le``
    leaked into the schema as unknown keywords), the JSON parts of the multipart forms no schema at all."""
    assert _unbounded(client.get("/openapi.json").json()) == set()


# --- item 10: text, nested JSON, files ----------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "who"), [
    ("/api/v1/audit?entity=user%00x", "admin"),
    ("/api/v1/audit?entity_id=4%002", "admin"),
    ("/api/v1/audit?action=created%1b", "admin"),
    ("/api/v1/capacity/transformers?grid_area_code=CQ%00", "planner"),
    ("/api/v1/capacity/transformers?status=in_service%00", "planner"),
])
def test_control_characters_in_query_text_are_refused(client: TestClient, admin: dict[str, str],
                                                      planner: dict[str, str], url: str, who: str) -> None:
    """Before: PostgreSQL refused the NUL (500 ``DataError``) and SQLite matched nothing (200)."""
    body = _refused(client.get(url, headers={"admin": admin, "planner": planner}[who]))
    assert "control characters" in body["message"]


@pytest.mark.parametrize("url", [
    "/api/v1/designs/a%00b",
    "/api/v1/designs/a%00b/bom.csv",
    "/api/v1/imports/a%00b",
    "/api/v1/imports/a%00b/report.csv",
])
def test_control_characters_in_path_text_are_refused_elsewhere(client: TestClient, admin: dict[str, str],
                                                                url: str) -> None:
    """A NUL in a design or import job id reached PostgreSQL: 500 ``DataError`` (SQLite: 404)."""
    _refused(client.get(url, headers=admin))


def test_control_characters_in_user_and_key_names_are_refused(writing_client: TestClient,
                                                              db_conn: Connection) -> None:
    """PostgreSQL: 500 ``DataError``; SQLite stored the NUL (201)."""
    admin = auth_headers(writing_client, make_user(db_conn, Role.ADMIN))
    _refused(writing_client.post("/api/v1/users", headers=admin, json={
        "username": "nul.user", "password": "x" * 12, "role": "planner", "full_name": "a\x00b"}), "body.full_name")
    _refused(writing_client.post("/api/v1/auth/api-keys", headers=admin, json={"name": "tab\x00let"}), "body.name")


def test_text_types_keep_tabs_and_newlines_only_where_text_is_free() -> None:
    class Note(BaseModel):
        title: Line
        body: Text

    assert Note(title="表箱 A-1", body="第一行\n\t第二行\r\n").body.endswith("\r\n")
    for title, body in (("a\nb", "ok"), ("ok", "a\x00b"), ("ok", "a\x7fb"), ("ok", "\x85"), ("\ud800", "ok")):
        with pytest.raises(ValueError, match="control characters"):
            Note(title=title, body=body)


@pytest.mark.parametrize("field", ["applicant_name", "identity_number", "address", "industry", "contact_phone",
                                   "contract_version"])
def test_application_form_refuses_control_characters(field: str) -> None:
    """Before: a NUL in any text of the form was stored on SpatiaLite and a 500 ``DataError`` on PostGIS."""
    form = application_form(sample("overhead"))
    form[field] = str(form[field])[:3] + "\x00" + str(form[field])[3:]
    with pytest.raises(InvalidInputError) as caught:
        parse_json_field(json.dumps(form), ApplicationForm, "application")
    assert caught.value.details["field"] == f"application.{field}"


def test_application_with_nul_is_422_before_anything_is_stored(writing_client: TestClient,
                                                                db_conn: Connection) -> None:
    customer = auth_headers(writing_client, make_user(db_conn, Role.CUSTOMER))
    form = application_form(sample("overhead"), applicant_name="山城\x00小面馆")
    response = writing_client.post("/api/v1/applications", headers=customer,
                                   data={"application": json.dumps(form)},
                                   files={"identity_document": ("id.pdf", minimal_pdf(), "application/pdf")})
    _refused(response, "application.applicant_name", code="INVALID_INPUT")


def test_deeply_nested_json_in_a_form_field_is_422(writing_client: TestClient, db_conn: Connection) -> None:
    """Before: 500 ``RecursionError`` from ``json.loads`` (20 000 nested lists)."""
    customer = auth_headers(writing_client, make_user(db_conn, Role.CUSTOMER))
    nested = "[" * 20_000 + "]" * 20_000
    response = writing_client.post("/api/v1/applications", headers=customer, data={"application": nested},
                                   files={"identity_document": ("id.pdf", minimal_pdf(), "application/pdf")})
    body = _refused(response, "application", code="INVALID_INPUT")
    assert f"deeper than {MAX_JSON_DEPTH}" in body["message"]


def test_json_form_fields_are_bounded_in_depth_and_size() -> None:
    class Deep(BaseModel):
        value: Any

    depth_ok = '{"value": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    assert parse_json_field(depth_ok, Deep, "f").value is not None
    # brackets inside strings are text, not nesting
    assert parse_json_field(json.dumps({"value": "[" * 10_000}), Deep, "f").value == "[" * 10_000
    for raw, words in (('{"value": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}", "deeper"),
                       (json.dumps({"value": "x" * MAX_JSON_FIELD_CHARS}), "longer")):
        with pytest.raises(InvalidInputError, match=words):
            parse_json_field(raw, Deep, "f")


@pytest.mark.parametrize(("name", "content"), [
    ("pdf-then-html", b"%PDF-1.7\n" + HTML),
    ("pdf-without-eof", minimal_pdf().rsplit(b"%%EOF", 1)[0]),
    ("pdf-startxref-nowhere", minimal_pdf().replace(b"startxref\n", b"startxref\n9")),
    ("jpeg-then-html", b"\xff\xd8\xff" + HTML),
    ("jpeg-without-eoi", minimal_jpeg()[:-2]),
    ("jpeg-without-frame", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64) + b"\xff\xd9"),
    ("png-then-html", b"\x89PNG\r\n\x1a\n" + HTML),
    ("png-without-iend", minimal_png()[:-12]),
    ("png-bad-crc", minimal_png()[:29] + b"\x00\x00\x00\x00" + minimal_png()[33:]),
])
def test_files_are_checked_by_structure_not_only_leading_bytes(tmp_path: Path, name: str, content: bytes) -> None:
    """Before: any file starting ``%PDF-``, ``FF D8 FF`` or the PNG signature was accepted as that type."""
    with pytest.raises(UploadTypeError):
        store_upload(BytesIO(content), f"{name}.bin", data_dir=tmp_path, max_bytes=1 << 20, field="document")
    assert not list((tmp_path / "uploads").rglob("*.*"))  # nothing kept, no temporary file left


@pytest.mark.parametrize(("content", "content_type"), [
    (minimal_pdf(), "application/pdf"),
    (minimal_pdf() + b"\n\n", "application/pdf"),             # trailing newlines after %%EOF
    (minimal_jpeg(), "image/jpeg"),
    (minimal_jpeg() + b"ftypmp42" + bytes(32), "image/jpeg"),  # a motion photo: a video after EOI
    (minimal_png(), "image/png"),
])
def test_well_formed_files_are_accepted(tmp_path: Path, content: bytes, content_type: str) -> None:
    stored = store_upload(BytesIO(content), "f", data_dir=tmp_path, max_bytes=1 << 20, field="document")
    assert stored.content_type == content_type and (tmp_path / stored.storage_path).read_bytes() == content


@pytest.mark.parametrize(("adjustment", "field"), [
    ({"meter_box": {"lon": "east", "lat": 29.5}}, "body.meter_box.lon"),
    ({"meter_box": {"lon": 106.49, "lat": 29.5, "crs": "mars"}}, "body.meter_box.crs"),
    ({"no_overhead_stretches": [{"type": "Point"}]}, "body.no_overhead_stretches"),
    ({"no_overhead_stretches": [{"type": "LineString", "coordinates": [[106.49, 29.5]]}]},  # GEOS refuses one point
     "body.no_overhead_stretches"),
    ({"no_overhead_stretches": [{"type": "Point", "coordinates": [506.49, 29.5]}]}, "body.no_overhead_stretches"),
    ({"no_overhead_stretches": [{"type": {}, "coordinates": [106.49, 29.5]}]}, "body.no_overhead_stretches"),
    ({"no_overhead_stretches": [{"type": "LineString", "coordinates": [[106.49, 29.5], [106.5, 29.5, 300]]}]},
     "body.no_overhead_stretches"),   # 2 and 3 numbers: GEOS failed on the mix
    ({"no_overhead_stretches": [{"type": "Polygon", "coordinates": [[[106.49, 29.5], [106.5, 29.51], [106.5, 29.5],
                                                                   [106.49, 29.51], [106.49, 29.5]]]}]},  # a bow tie
     "body.no_overhead_stretches"),
])
def test_survey_adjustments_that_make_no_design_request_are_422(writing_client: TestClient, db_conn: Connection,
                                                                adjustment: dict[str, Any], field: str) -> None:
    """Before: the adjustment was validated only when it became a ``DesignRequest`` deep in the state machine,
    and pydantic's ``ValidationError`` there answered 500."""
    teams = make_teams(db_conn)
    customer = auth_headers(writing_client, make_user(db_conn, Role.CUSTOMER))
    applied = apply(writing_client, customer, application_form(sample("overhead")))
    assert applied.status_code == 201, applied.text
    job = applied.json()
    pm = auth_headers(writing_client, teams[job["grid_area_code"]][1])
    etag = writing_client.get(f"/api/v1/terminal/jobs/{job['id']}/survey-package", headers=pm).headers["ETag"]
    response = writing_client.post(f"/api/v1/terminal/jobs/{job['id']}/adjustments", json=adjustment,
                                   headers={**pm, "If-Match": etag})
    _refused(response, field)


FORM = application_form(sample("overhead"))
GPS = {"lon_wgs84": 106.5, "lat_wgs84": 29.5, "accuracy_m": 5}


@pytest.mark.parametrize(("model", "bad", "good"), [
    (ApplicationForm, {**FORM, "kw": "10"}, {**FORM, "kw": 10}),
    (ApplicationForm, {**FORM, "lon": "106.5"}, {**FORM, "lon": 106}),
    (ApplicationForm, {**FORM, "lat": True}, {**FORM, "lat": 29}),
    (SurveyAdjustment, {"meter_box": {"lon": "106.5", "lat": 29.5}}, {"meter_box": {"lon": 106, "lat": 29.5}}),
    (GpsFix, {**GPS, "lon_wgs84": "106.5"}, {**GPS, "lon_wgs84": 106}),
    (GpsFix, {**GPS, "accuracy_m": "5"}, GPS),
    (ApplicationForm, {**FORM, "phases": True}, {**FORM, "phases": 3.0}),   # JSON Schema: 3.0 is the integer 3
    (ApplicationForm, {**FORM, "phases": "3"}, {**FORM, "phases": 1}),
])
def test_numbers_are_json_numbers(model: type[BaseModel], bad: dict[str, Any], good: dict[str, Any]) -> None:
    """Before: ``"kw": "10"`` or ``"lat": true`` were coerced, although the schema says ``number``; an integer
    is still a number."""
    with pytest.raises(ValueError, match=r"valid number|JSON integer|should be 1 or 3"):
        model.model_validate(bad)
    model.model_validate(good)


def test_an_adjustment_that_breaks_the_design_request_is_a_coded_error() -> None:
    """The last guard of ``SurveyAdjustment.apply``: pydantic's ``ValidationError`` was a 500."""
    with pytest.raises(InvalidInputError) as caught:
        SurveyAdjustment(transformer_asset_id="T-0001").apply({"lon": 106.49, "lat": 29.5})  # no kW stored
    assert caught.value.details["field"] == "kw"


# --- item 13: dates, declared constraints, the public answer ------------------------------------------------------


@pytest.mark.parametrize("value", ["0.5", "0", "1700000000", "2026-12-07", "2026-12-07T10:31"])
def test_audit_times_must_be_iso_date_times(client: TestClient, admin: dict[str, str], value: str) -> None:
    """Before: ``until=0.5`` was taken as a Unix time (1970-01-01T00:00:00.5Z) and answered 200."""
    _refused(client.get("/api/v1/audit", params={"until": value}, headers=admin), "query.until")


def test_audit_accepts_iso_date_times(client: TestClient, admin: dict[str, str]) -> None:
    for value in ("2026-12-07T10:31:00+08:00", "2026-12-07T02:31:00Z", "2026-12-07T02:31:00.250",
                  "2026-12-07 02:31:00"):
        assert client.get("/api/v1/audit", params={"since": value}, headers=admin).status_code == 200, value


@pytest.mark.parametrize("value", [0, 20261207, "0", "2026-12-07T00:00:00Z", "2026-1-7", True])
def test_wanted_power_on_must_be_an_iso_date(value: object) -> None:
    """Before: ``"wanted_power_on": 0`` was stored as 1970-01-01."""
    form = application_form(sample("overhead"), wanted_power_on=value)
    with pytest.raises(InvalidInputError) as caught:
        parse_json_field(json.dumps(form), ApplicationForm, "application")
    assert caught.value.details["field"] == "application.wanted_power_on"
    ok = application_form(sample("overhead"), wanted_power_on="2027-01-15")
    assert str(parse_json_field(json.dumps(ok), ApplicationForm, "application").wanted_power_on) == "2027-01-15"


def test_iso_types_accept_python_values() -> None:
    from datetime import date, datetime

    class Times(BaseModel):
        day: IsoDate
        moment: IsoDatetime
        id: Id

    assert Times(day=date(2027, 1, 15), moment=datetime(2027, 1, 15, 8), id=1).day.year == 2027


def test_design_wanted_power_on_must_be_an_iso_date(client: TestClient, planner: dict[str, str]) -> None:
    body = {"lon": 106.4883433, "lat": 29.499325, "kw": 10, "phases": 1, "wanted_power_on": 0}
    _refused(client.post("/api/v1/designs", json=body, headers=planner), "body.wanted_power_on")


def _parameter(document: dict[str, Any], method: str, path: str, name: str) -> dict[str, Any]:
    return next(p for p in document["paths"][path][method]["parameters"] if p["name"] == name)


def test_openapi_declares_what_these_routers_enforce(client: TestClient) -> None:
    """Before: OGC 404s undeclared, ``bbox``/``collection_id``/``layer``/``crs``/``profile`` free strings,
    tile ``z`` unbounded, text without its control-character rule."""
    doc = client.get("/openapi.json").json()
    features = "/api/v1/features/collections/{collection_id}"
    for path in (features, features + "/items", features + "/items/{feature_id}"):
        assert "404" in doc["paths"][path]["get"]["responses"], path
        assert _parameter(doc, "get", path, "collection_id")["schema"]["enum"][0] == "transformers"
    bbox = _parameter(doc, "get", features + "/items", "bbox")["schema"]
    assert "pattern" in json.dumps(bbox)
    tile = "/tiles/{layer}/{z}/{x}/{y}.mvt"
    assert "all" in _parameter(doc, "get", tile, "layer")["schema"]["enum"]
    assert (_parameter(doc, "get", tile, "z")["schema"]["minimum"], _parameter(doc, "get", tile, "z")["schema"]
            ["maximum"]) == (0, 22)
    assert "wgs84" in _parameter(doc, "get", "/api/v1/public/capacity", "crs")["schema"]["enum"]
    assert "chongqing-2019" in json.dumps(_parameter(doc, "get", "/api/v1/sources", "profile")["schema"])
    assert "pattern" in json.dumps(_parameter(doc, "get", "/api/v1/audit", "entity")["schema"])
    form = ApplicationForm.model_json_schema()["properties"]
    assert "pattern" in json.dumps(form["applicant_name"]) and form["wanted_power_on"]["anyOf"][0]["format"] == "date"
    assert form["lon"]["x-service-area"] == "lon" and form["contract_sha256"]["pattern"] == "^[0-9A-Fa-f]{64}$"


@pytest.mark.parametrize(("path", "part", "model", "file"), [
    ("/api/v1/applications", "application", "ApplicationForm", "property_document"),
    ("/api/v1/terminal/jobs/{job_id}/steps/{step_code}", "report", "StageReport", "photos"),
])
def test_openapi_declares_the_json_parts_of_multipart_forms(client: TestClient, path: str, part: str, model: str,
                                                            file: str) -> None:
    """The multipart ``application`` and ``report`` fields are JSON documents: the OpenAPI says so (``encoding``)
    and gives their schema. Before: a plain string, so every schema-valid string but JSON of the form was a 422;
    and an optional file was declared nullable (``anyOf [file, null]``), the ``null`` sent as text a 422."""
    document = client.get("/openapi.json").json()
    media = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert media["encoding"] == {part: {"contentType": "application/json"}}
    body = document["components"]["schemas"][media["schema"]["$ref"].rsplit("/", 1)[1]]
    assert body["properties"][part]["$ref"] == f"#/components/schemas/{model}"
    assert document["components"]["schemas"][model]["additionalProperties"] is False
    assert "null" not in json.dumps(body["properties"][file])


def test_a_form_sent_as_its_declared_json_part_is_accepted(writing_client: TestClient, db_conn: Connection) -> None:
    """What the OpenAPI now declares is what the server takes: the form as an ``application/json`` part."""
    customer = auth_headers(writing_client, make_user(db_conn, Role.CUSTOMER))
    form = json.dumps(application_form(sample("overhead")), ensure_ascii=False).encode()
    response = writing_client.post("/api/v1/applications", headers=customer, files=[
        ("application", (None, form, "application/json")),
        ("identity_document", ("id.pdf", minimal_pdf(), "application/pdf"))])
    assert response.status_code == 201, response.text


def test_stage_reports_assignments_and_cancels_refuse_control_characters() -> None:
    """Before: the report's ``client_time`` and ``note``, an assignment's grid area code and a cancel's reason
    were plain strings (a NUL: 500 ``DataError`` on PostGIS, stored on SpatiaLite)."""
    from app.api.applications import AssignRequest, CancelRequest
    from app.api.terminal import StageReport

    report = {"gps": GPS, "client_time": "2026-12-07T10:31:00+08:00", "note": "表箱已安装\n第二行"}
    assert parse_json_field(json.dumps(report), StageReport, "report").note == "表箱已安装\n第二行"
    for field, bad in (("client_time", "2026-12-07\x00"), ("client_time", "10:31\n"), ("note", "a\x00b")):
        with pytest.raises(InvalidInputError) as caught:
            parse_json_field(json.dumps({**report, field: bad}), StageReport, "report")
        assert caught.value.details["field"] == f"report.{field}"
    for model, data in ((AssignRequest, {"grid_area_code": "CQ-YB-01\x00"}), (CancelRequest, {"reason": "a\x1bb"})):
        with pytest.raises(ValueError, match="control characters"):
            model.model_validate(data)
    assert CancelRequest.model_validate({"reason": "客户改期\r\n下月再报"}).reason


def test_user_ids_in_bodies_are_json_integers() -> None:
    """JSON Schema's ``integer`` takes 23.0 (strict ints refused it: a schema-valid 422) but not ``true`` or
    ``"23"`` (lax ints took them)."""
    from app.api.applications import AssignRequest
    from app.identity.users import ApiKeyCreate

    assert ApiKeyCreate.model_validate({"name": "平板 3", "expires_days": 30.0, "user_id": 23.0}).user_id == 23
    assigned = AssignRequest.model_validate({"grid_area_code": "CQ-YB-01", "customer_manager_user_id": 7.0,
                                             "project_manager_user_id": 8})
    assert (assigned.customer_manager_user_id, assigned.project_manager_user_id) == (7, 8)
    for model, data in ((ApiKeyCreate, {"name": "k", "user_id": True}), (ApiKeyCreate, {"name": "k", "user_id": "5"}),
                        (ApiKeyCreate, {"name": "k", "expires_days": 1.5}),
                        (AssignRequest, {"grid_area_code": "A", "project_manager_user_id": True}),
                        (AssignRequest, {"grid_area_code": "A", "project_manager_user_id": MAX_ID + 1})):
        with pytest.raises(ValueError):
            model.model_validate(data)


def test_api_key_for_a_user_id_sent_as_an_integral_number(writing_client: TestClient, db_conn: Connection) -> None:
    """Before: 422 ``REQUEST_INVALID`` for ``"user_id": 23.0`` and ``"expires_days": 30.0``, JSON integers."""
    admin_user = make_user(db_conn, Role.ADMIN)
    admin = auth_headers(writing_client, admin_user)
    owner = make_user(db_conn, Role.PLANNER)
    answer = writing_client.post("/api/v1/auth/api-keys", headers=admin,
                                 json={"name": "平板 3", "expires_days": 30.0, "user_id": float(owner.id)})
    assert answer.status_code == 201, answer.text
    _refused(writing_client.post("/api/v1/auth/api-keys", headers=admin, json={"name": "k", "expires_days": True}),
             "body.expires_days")


def _valid(schema: dict[str, Any], document: dict[str, Any], value: dict[str, Any]) -> bool:
    """Whether ``value`` is valid for ``schema`` of the OpenAPI ``document`` (the validator schemathesis uses)."""
    import jsonschema_rs

    components = document["components"]["schemas"]
    return bool(jsonschema_rs.Draft202012Validator({**schema, "components": {"schemas": components}})
                .is_valid(value))


def test_openapi_declares_rules_across_two_fields(client: TestClient, admin: dict[str, str],
                                                  planner: dict[str, str]) -> None:
    """Grid areas only for customer and project managers; a supply-area class (A+ … E) with ``urban_rural``.
    Before: both schema-valid and refused (422 ``REQUEST_INVALID``, 422 ``INVALID_INPUT``)."""
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    user = {"username": "scope.check", "password": "x" * 12, "role": "planner", "grid_area_codes": ["CQ-YB-01"]}
    assert not _valid(schemas["UserCreate"], document, user)
    assert _valid(schemas["UserCreate"], document, {**user, "role": "project_manager"})
    assert _valid(schemas["UserUpdate"], document, {"grid_area_codes": ["CQ-YB-01"]})  # the stored role decides
    assert not _valid(schemas["UserUpdate"], document, {"role": "gis_admin", "grid_area_codes": ["CQ-YB-01"]})
    _refused(client.post("/api/v1/users", headers=admin, json=user), "body")

    design = {"lon": 106.4883433, "lat": 29.499325, "kw": 10, "phases": 1, "area_type": "D"}
    assert not _valid(schemas["DesignRequest"], document, design)
    assert not _valid(schemas["DesignRequest"], document, {**design, "urban_rural": None})
    assert _valid(schemas["DesignRequest"], document, {**design, "urban_rural": "urban"})
    assert _valid(schemas["DesignRequest"], document, {**design, "area_type": "urban"})
    _refused(client.post("/api/v1/designs", headers=planner, json=design), code="INVALID_INPUT")
    assert client.post("/api/v1/designs", headers=planner, json={**design, "urban_rural": "urban"}).status_code == 201


def test_openapi_declares_the_installed_profiles_of_a_design(client: TestClient, planner: dict[str, str]) -> None:
    """Before: ``profile`` was any short line, so a schema-valid request answered 422 ``PROFILE_UNKNOWN``."""
    document = client.get("/openapi.json").json()
    profile = document["components"]["schemas"]["DesignRequest"]["properties"]["profile"]
    declared = next(option["enum"] for option in profile["anyOf"] if option.get("type") == "string")
    assert "chongqing-2019" in declared and {"type": "null"} in profile["anyOf"]
    query = _parameter(document, "get", "/api/v1/sources", "profile")["schema"]["anyOf"]
    assert next(option["enum"] for option in query if option.get("type") == "string") == declared  # one source
    body = {"lon": 106.4883433, "lat": 29.499325, "kw": 10, "phases": 1, "profile": "atlantis-2020"}
    _refused(client.post("/api/v1/designs", headers=planner, json=body), code="PROFILE_UNKNOWN")


class Thing(BaseModel):
    name: Line


def test_install_contract_declares_area_bounds_400s_401s_and_full_allow() -> None:
    from fastapi import Depends, Query
    from fastapi.security import APIKeyHeader

    from app.platform.params import SERVICE_AREA_LAT, SERVICE_AREA_LON

    app = FastAPI()

    @app.get("/things")
    def list_things(lon: float = Query(json_schema_extra=SERVICE_AREA_LON),
                    lat: float = Query(json_schema_extra=SERVICE_AREA_LAT)) -> dict[str, float]:
        return {"lon": lon, "lat": lat}

    @app.post("/things")
    def add_thing(body: Thing, key: str = Depends(APIKeyHeader(name="X-Key"))) -> dict[str, str]:
        return {"name": body.name}

    install_contract(app, settings_for_tests("sqlite://", service_area_wgs84=(105.5, 28.5, 110.0, 32.0)))
    client = TestClient(app)
    doc = client.get("/openapi.json").json()
    lon = _parameter(doc, "get", "/things", "lon")["schema"]
    lat = _parameter(doc, "get", "/things", "lat")["schema"]
    assert (lon["minimum"], lon["maximum"], lat["minimum"], lat["maximum"]) == (105.5, 110.0, 28.5, 32.0)
    assert {"400", "401"} <= set(doc["paths"]["/things"]["post"]["responses"])  # a body; a security scheme
    assert not {"400", "401"} & set(doc["paths"]["/things"]["get"]["responses"])
    for method in ("OPTIONS", "PUT", "DELETE"):
        answer = client.request(method, "/things")
        assert answer.status_code == 405 and set(answer.headers["allow"].split(", ")) >= {"GET", "POST"}, method
    assert client.post("/things", content=b'{"name": "\xff"}',
                       headers={"Content-Type": "application/json", "X-Key": "k"}).status_code == 400


def test_openapi_declares_service_area_and_unreadable_bodies(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    lon = _parameter(doc, "get", "/api/v1/sources", "lon")["schema"]
    assert (lon["minimum"], lon["maximum"]) == (105.28, 110.20)
    assert "400" in doc["paths"]["/api/v1/users/{user_id}"]["patch"]["responses"]


def test_405_names_every_method_of_the_path(client: TestClient, admin: dict[str, str]) -> None:
    """Before: ``OPTIONS /api/v1/users`` answered ``405 allow: POST`` although GET is served there too."""
    answer = client.options("/api/v1/users", headers=admin)
    assert answer.status_code == 405 and set(answer.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_non_utf8_json_is_a_400(client: TestClient, admin: dict[str, str]) -> None:
    """The answer the OpenAPI now documents (``BODY_UNREADABLE``)."""
    answer = client.patch("/api/v1/users/1", content=b'{"full_name": "\xff\xfe"}',
                          headers={**admin, "Content-Type": "application/json"})
    assert answer.status_code == 400


def test_openapi_declares_password_length_and_username_pattern(client: TestClient) -> None:
    """Declared by app/identity/users.py (d81a80a); before, the OpenAPI said neither."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    create = schemas["UserCreate"]["properties"]
    assert "pattern" in create["username"] and create["password"]["minLength"] == 8
    assert create["password"]["maxLength"] == 256


def test_ids_are_bounded_by_the_32_bit_columns(client: TestClient, admin: dict[str, str]) -> None:
    """Ids are PostgreSQL ``Integer`` (32-bit): 2^31 was a 500 ``integer out of range`` there; 2^31 − 1 is in
    bounds and reaches the handler (an unknown user: 404 ``NOT_FOUND``)."""
    assert client.patch(f"/api/v1/users/{MAX_ID}", json={}, headers=admin).status_code == 404
    for url in (f"/api/v1/users/{MAX_ID + 1}", f"/api/v1/audit?actor={MAX_ID + 1}"):
        _refused(client.request("PATCH" if "users" in url else "GET", url, headers=admin,
                                json={} if "users" in url else None))


# --- issue 20 item 5: one CRS vocabulary for the pins of applications and survey adjustments ----------------------

CRS_ACCEPTED = "use one of wgs84, gcj02, bd09, cgcs2000, EPSG:4326, EPSG:4490"


def _wgs84_sample() -> dict[str, str]:
    row = sample("overhead")
    assert row["crs"] == "wgs84", row  # the EPSG code below is this system's
    return row


@pytest.mark.parametrize(("given", "stored"), [("EPSG:4326", "wgs84"), ("epsg:4326", "wgs84"),
                                               ("EPSG:4490", "cgcs2000")])
def test_an_application_takes_an_epsg_code_as_its_system(writing_client: TestClient, db_conn: Connection,
                                                         given: str, stored: str) -> None:
    """Before: only ``wgs84|gcj02|bd09|cgcs2000``, though imports take EPSG codes. Stored as the system's name."""
    customer = auth_headers(writing_client, make_user(db_conn, Role.CUSTOMER))
    row = _wgs84_sample()
    applied = apply(writing_client, customer, application_form(row, crs=given))
    assert applied.status_code == 201, applied.text
    assert applied.json()["pin"]["crs"] == stored and applied.json()["job_class"] == row["expected_job_class"]


@pytest.mark.parametrize(("value", "why"), [("EPSG:9999", "Unsupported coordinate system 'EPSG:9999'"),
                                            ("utm", "Unsupported coordinate system 'utm'"),
                                            ("EPSG:4545", "is a projected CRS")])
def test_an_application_in_another_system_is_422_listing_the_accepted_values(
        writing_client: TestClient, db_conn: Connection, value: str, why: str) -> None:
    """The application part answers ``INVALID_INPUT`` naming ``application.crs``, as for any of its fields."""
    customer = auth_headers(writing_client, make_user(db_conn, Role.CUSTOMER))
    body = _refused(apply(writing_client, customer, application_form(_wgs84_sample(), crs=value)),
                    "application.crs", code="INVALID_INPUT")
    assert why in body["message"] and CRS_ACCEPTED in body["message"]


@pytest.mark.parametrize(("crs", "answer"), [("EPSG:4326", 201), ("Epsg:4490", 201), ("utm", 422),
                                             ("EPSG:9999", 422)])
def test_a_moved_meter_box_speaks_the_same_vocabulary(writing_client: TestClient, db_conn: Connection,
                                                      crs: str, answer: int) -> None:
    teams = make_teams(db_conn)
    customer = auth_headers(writing_client, make_user(db_conn, Role.CUSTOMER))
    row = _wgs84_sample()
    applied = apply(writing_client, customer, application_form(row))
    assert applied.status_code == 201, applied.text
    job = applied.json()
    pm = auth_headers(writing_client, teams[job["grid_area_code"]][1])
    etag = writing_client.get(f"/api/v1/terminal/jobs/{job['id']}/survey-package", headers=pm).headers["ETag"]
    moved = {"meter_box": {"lon": float(row["lon"]) + 0.00002, "lat": float(row["lat"]), "crs": crs}}
    response = writing_client.post(f"/api/v1/terminal/jobs/{job['id']}/adjustments", json=moved,
                                   headers={**pm, "If-Match": etag})
    if answer == 201:
        assert response.status_code == 201, response.text
    else:
        body = _refused(response, "body.meter_box.crs")
        assert CRS_ACCEPTED in body["message"]


def test_the_openapi_declares_one_crs_vocabulary(client: TestClient) -> None:
    """Every pin's ``crs`` is the enum of gis.crs.CRS_NAMES: designs, sources, applications, adjustments."""
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    pins = [schemas["DesignRequest"], schemas["ApplicationForm"], schemas["MeterBoxPin"]]
    declared = [pin["properties"]["crs"] for pin in pins]
    declared.append(_parameter(document, "get", "/api/v1/sources", "crs")["schema"])
    assert all(schema["enum"] == list(CRS_NAMES) for schema in declared), declared
