"""Annex 2 project detail table and annex 1 roster (issue 14 deliverables 1–2; R8.1, CQ-32 四(二)1–2).

Orders are built through the HTTP API, as customers and the 1+1 team make them, on both databases. The server's
clock is authoritative (R5.3) and the tests do not edit a stored time: they set the clock the routers read
(``ServerClock``, the ``datetime`` of ``app.api.applications`` and ``app.api.terminal``) to known moments, so the
acceptance, construction and power-on times, and the working days between them, are known. One order runs over
National Day 2026 (1–7 October off, Saturday 10 October a make-up working day, 国办发明电〔2025〕7号).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, update

import app.api.applications as applications_router
import app.api.terminal as terminal_router
from app.identity.auth import Role
from app.main import create_app
from app.platform.models import AuditLog, GridArea
from tests.app.auth_helpers import make_user, override_session, settings_for_tests
from tests.app.lifecycle_helpers import (
    GRID_AREAS,
    REPO,
    application_form,
    apply,
    make_teams,
    report,
    sample,
    signed_in,
)

CST = timezone(timedelta(hours=8))

#: Annex 2's 23 header labels, verbatim from the seed (CQ-32 附件2; ../shared/REPORTING.md), in order.
ANNEX_2_HEADER = [
    "供电单位", "所在单位", "户号", "户名", "用电地址", "联系电话", "申请方式", "是否小微企业", "配套工程情况（6 类）",
    "工程资金来源", "工程金额（万元）", "业务类型", "行业分类", "用电类别", "容量（kVA）", "电压等级", "业务受理时间",
    "工程实施时间", "工程竣工时间", "装表送电时间", "全流程时长（天）", "配套工程时长(天)", "城乡类别",
]
#: Annex 1's header (CQ-32 附件1).
ANNEX_1_HEADER = ["序号", "供电单位", "供电所", "服务片区（行政区域）", "是否营配融合", "营销客户经理", "配电项目经理"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PERIOD = {"from": "2026-09-01", "to": "2026-11-30"}


class ServerClock:
    """The time the routers read as ``datetime.now(UTC)``: set by the test, the only clock the server has."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def set(self, moment: datetime) -> None:
        self.now = moment.astimezone(UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ServerClock:
    server_clock = ServerClock()

    class _ServerDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return server_clock.now.astimezone(tz) if tz else server_clock.now.replace(tzinfo=None)

    for module in (applications_router, terminal_router):
        monkeypatch.setattr(module, "datetime", _ServerDatetime)
    return server_clock


@pytest.fixture
def client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_for_tests(demo_db_url, data_dir=tmp_path,
                                  depot_stock_file=REPO / "fixtures" / "depot_stock.csv")
    app = create_app(settings)
    override_session(app, db_conn)
    yield TestClient(app)


def _supply_units(conn: Connection) -> dict[str, tuple[str, str, str]]:
    """Give every demo grid area its 供电单位 / 供电所 / 行政区域 (network data, as a grid_areas import would)."""
    units = {code: ("国网重庆市电力公司渝北供电分公司", f"双凤供电所{index}", f"渝北区双凤桥街道{index}社区")
             for index, code in enumerate(GRID_AREAS, start=1)}
    for code, (company, station, region) in units.items():
        conn.execute(update(GridArea).where(GridArea.code == code).values(
            supply_company=company, supply_station=station, admin_region=region))
    return units


def at(day: str, hour: int, minute: int = 0) -> datetime:
    """A moment in Asia/Shanghai, e.g. ``at("2026-09-30", 10)``."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=CST)


class Order:
    """One order driven through the API at known server times."""

    def __init__(self, client: TestClient, clock: ServerClock, customer: dict[str, str], job_class: str,
                 accepted: datetime, **form: Any) -> None:
        self.client, self.clock = client, clock
        clock.set(accepted)
        self.form = application_form(sample(job_class), **form)
        answer = apply(client, customer, self.form)
        assert answer.status_code == 201, answer.text
        self.body = answer.json()
        assert self.body["job_class"] == job_class
        self.id: int = self.body["id"]
        self.grid_area: str = self.body["grid_area_code"]
        self.cost_cny: float | None = None

    def survey_and_confirm(self, pm: dict[str, str], surveyed: datetime, confirmed: datetime) -> None:
        self.clock.set(surveyed)
        assert report(self.client, pm, self.id, "site_survey", photos=0).status_code == 200
        self.clock.set(confirmed)
        etag = self.client.get(f"/api/v1/terminal/jobs/{self.id}/survey-package", headers=pm).headers["ETag"]
        confirm = self.client.post(f"/api/v1/terminal/jobs/{self.id}/confirm", headers={**pm, "If-Match": etag})
        assert confirm.status_code == 200, confirm.text
        self.cost_cny = confirm.json()["materials_request"]["total_cny"]

    def step(self, pm: dict[str, str], code: str, moment: datetime, **extra: Any) -> Any:
        self.clock.set(moment)
        answer = report(self.client, pm, self.id, code, **extra)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def start_construction(self, pm: dict[str, str], moment: datetime) -> Any:
        self.clock.set(moment)
        return self.client.post(f"/api/v1/terminal/jobs/{self.id}/construction-start", headers=pm)


@pytest.fixture
def orders(client: TestClient, db_conn: Connection, clock: ServerClock) -> dict[str, Any]:
    """Three orders of autumn 2026 with known times, and one cancelled, all through the API."""
    units = _supply_units(db_conn)
    teams = make_teams(db_conn)
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))

    def pm_of(order: Order) -> dict[str, str]:
        return signed_in(client, teams[order.grid_area][1])

    # A direct meter, no supporting works: accepted Mon 2 Nov, energised Wed 4 Nov (2 working days).
    direct = Order(client, clock, customer, "direct_meter", at("2026-11-02", 9), channel="counter")
    pm = pm_of(direct)
    direct.survey_and_confirm(pm, at("2026-11-02", 15), at("2026-11-03", 10))
    direct.step(pm, "construction_prep", at("2026-11-03", 11))
    direct.step(pm, "construction", at("2026-11-03", 14))
    direct.step(pm, "meter_and_energise", at("2026-11-04", 10, 30), account_number="5000000001")

    # An overhead job over National Day: accepted Wed 30 Sep; works from Thu 8 Oct to Sat 10 Oct (a make-up
    # working day), energised that evening: 3 working days in all (8, 9, 10 Oct) against 10 calendar days.
    overhead = Order(client, clock, customer, "overhead", at("2026-09-30", 10), channel="government_platform",
                     business_type="capacity_increase")
    pm = pm_of(overhead)
    overhead.survey_and_confirm(pm, at("2026-09-30", 14), at("2026-09-30", 16))
    overhead.step(pm, "construction_prep", at("2026-09-30", 17))
    started = overhead.start_construction(pm, at("2026-10-08", 9))
    assert started.status_code == 200, started.text
    assert started.json()["construction_started_at"] == "2026-10-08T01:00:00+00:00"  # the server's time
    overhead.step(pm, "construction", at("2026-10-10", 16))
    overhead.step(pm, "meter_and_energise", at("2026-10-10", 17, 45), account_number="5000000002",
                  customer_charged_cny=0.0)

    # Accepted on Thu 5 Nov and cancelled by its customer the same afternoon.
    cancelled = Order(client, clock, customer, "overhead", at("2026-11-05", 10))
    clock.set(at("2026-11-05", 15))
    answer = client.post(f"/api/v1/applications/{cancelled.id}/cancel", json={"reason": "客户改期"}, headers=customer)
    assert answer.status_code == 200, answer.text
    return {"units": units, "teams": teams, "customer": customer, "direct": direct, "overhead": overhead,
            "cancelled": cancelled}


def _expected_row(order: Order, units: dict[str, tuple[str, str, str]], **cells: Any) -> dict[str, Any]:
    """The cells every row takes from the application form and its grid area, with ``cells`` for the rest."""
    form = order.form
    company, station, _region = units[order.grid_area]
    return {
        "application_id": order.id, "supply_company": company, "supply_station": station,
        "account_name": form["applicant_name"], "supply_address": form["address"], "contact_phone": "13800000000",
        "small_micro_enterprise": "是", "industry": "餐饮", "use_category": "小微企业",
        "capacity_kva": round(form["kw"] / 0.85, 2),
        "voltage_level": {1: "交流220V", 3: "交流380V"}[form["phases"]], "urban_rural": "城市", **cells,
    }


def _report(client: TestClient, headers: dict[str, str], path: str = "/api/v1/reports/project-detail",
            **params: str) -> Any:
    answer = client.get(path, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def test_project_detail_has_every_annex_2_cell_of_known_orders(client: TestClient, orders: dict[str, Any],
                                                               db_conn: Connection) -> None:
    """R8.1 / annex 2: each order's 23 cells, with durations in statutory working days (#21, #22)."""
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    body = _report(client, planner, **PERIOD, format="json").json()
    assert [c["label_zh"] for c in body["columns"]] == ANNEX_2_HEADER
    assert body["duration_unit"] == "working_days" and "工作日" in body["notes"][0]
    rows = {row["application_id"]: row for row in body["rows"]}
    overhead, direct, cancelled, units = orders["overhead"], orders["direct"], orders["cancelled"], orders["units"]
    assert list(rows) == [overhead.id, direct.id, cancelled.id]  # by acceptance time

    assert rows[direct.id] == _expected_row(
        direct, units, status="powered_on", account_number="5000000001", application_channel="营业厅",
        supporting_works_class="无外线工程", funding_source="专项成本",
        works_cost_10k_cny=round(direct.cost_cny / 10_000, 4), business_type="新装",
        accepted_at="2026-11-02T09:00:00+08:00", works_started_at=None, works_completed_at=None,
        energised_at="2026-11-04T10:30:00+08:00", whole_process_working_days=2, supporting_works_working_days=0)

    assert rows[overhead.id] == _expected_row(
        overhead, units, status="powered_on", account_number="5000000002", application_channel="政务服务平台",
        supporting_works_class="有外线无掘路工程", funding_source="专项成本",
        works_cost_10k_cny=round(overhead.cost_cny / 10_000, 4), business_type="增容",
        accepted_at="2026-09-30T10:00:00+08:00", works_started_at="2026-10-08T09:00:00+08:00",
        works_completed_at="2026-10-10T16:00:00+08:00", energised_at="2026-10-10T17:45:00+08:00",
        whole_process_working_days=3, supporting_works_working_days=2)

    assert rows[cancelled.id] == _expected_row(
        cancelled, units, status="cancelled", account_number=None, application_channel="手机App",
        supporting_works_class="有外线无掘路工程", funding_source="专项成本", works_cost_10k_cny=None,
        business_type="新装", accepted_at="2026-11-05T10:00:00+08:00", works_started_at=None,
        works_completed_at=None, energised_at=None, whole_process_working_days=None,
        supporting_works_working_days=None)

    only_october = _report(client, planner, **{"from": "2026-09-30", "to": "2026-10-31"}, format="json").json()
    assert [row["application_id"] for row in only_october["rows"]] == [overhead.id]
    station = units[direct.grid_area][1]
    by_station = _report(client, planner, **PERIOD, supply_unit=station, format="json").json()
    assert direct.id in {row["application_id"] for row in by_station["rows"]}
    assert all(row["supply_station"] == station for row in by_station["rows"])


def test_project_detail_xlsx_has_the_exact_header_frozen_and_typed_cells(
        client: TestClient, orders: dict[str, Any], db_conn: Connection) -> None:
    """Annex 2 as XLSX: the 23 labels verbatim as row 1, frozen; times as date-times (Asia/Shanghai), numbers as
    numbers; the note row says the durations are working days."""
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    answer = _report(client, planner, **PERIOD)  # no format, no Accept: XLSX
    assert answer.headers["content-type"] == XLSX
    assert "attachment" in answer.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == ANNEX_2_HEADER
    assert sheet.freeze_panes == "A2"
    overhead = next(row for row in rows[1:] if row[2] == "5000000002")
    assert overhead[16] == datetime(2026, 9, 30, 10, 0) and overhead[17] == datetime(2026, 10, 8, 9, 0)
    assert overhead[19] == datetime(2026, 10, 10, 17, 45)
    assert (overhead[20], overhead[21]) == (3, 2) and isinstance(overhead[14], float)
    cells = next(row for row in sheet.iter_rows(min_row=2) if row[2].value == "5000000002")
    assert cells[16].is_date and cells[16].number_format.startswith("yyyy-mm-dd")  # a date-time cell, not text
    assert [cells[i].data_type for i in (10, 14, 20, 21)] == ["n"] * 4  # 万元, kVA and the two durations: numbers
    assert len(rows) == 1 + 3 + 1 and str(rows[-1][0]).startswith("注：") and "工作日" in str(rows[-1][0])


def test_project_detail_csv_starts_with_the_bom_and_accept_chooses_the_format(
        client: TestClient, orders: dict[str, Any], db_conn: Connection) -> None:
    """CSV is UTF-8 with a BOM (so Excel reads the Chinese), chosen by ``format=csv`` or ``Accept: text/csv``."""
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    by_accept = client.get("/api/v1/reports/project-detail", params=PERIOD, headers={**planner, "Accept": "text/csv"})
    assert by_accept.status_code == 200 and by_accept.headers["content-type"].startswith("text/csv")
    assert by_accept.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(by_accept.content.decode("utf-8-sig"))))
    assert table[0] == ANNEX_2_HEADER
    direct = next(row for row in table[1:] if row[2] == "5000000001")
    assert direct[16:23] == ["2026-11-02 09:00:00", "", "", "2026-11-04 10:30:00", "2", "0", "城市"]
    assert table[-1][0].startswith("注：")
    by_format = _report(client, planner, **PERIOD, format="csv")
    assert by_format.content == by_accept.content
    as_json = client.get("/api/v1/reports/project-detail", params=PERIOD,
                         headers={**planner, "Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json" and len(as_json.json()["rows"]) == 3


def test_reports_by_role_and_every_export_is_audited(client: TestClient, orders: dict[str, Any],
                                                     db_conn: Connection) -> None:
    """Customer managers see their own grid areas, planners and admins all, customers nothing; each export is an
    audit row ``report_exported`` naming who exported which report with which filters."""
    direct = orders["direct"]
    customer_manager, project_manager = orders["teams"][direct.grid_area]
    cm = signed_in(client, customer_manager)
    mine = _report(client, cm, **PERIOD, format="json").json()["rows"]
    assert {row["application_id"] for row in mine} >= {direct.id}
    assert {row["supply_station"] for row in mine} == {orders["units"][direct.grid_area][1]}
    for role in (Role.CUSTOMER, Role.PROJECT_MANAGER, Role.GIS_ADMIN):
        headers = signed_in(client, make_user(db_conn, role, grid_areas=[direct.grid_area]
                                              if role is Role.PROJECT_MANAGER else ()))
        for path in ("/api/v1/reports/project-detail", "/api/v1/reports/roster"):
            refused = client.get(path, headers=headers)
            assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN", (role, path)
    admin_user = make_user(db_conn, Role.ADMIN)
    admin = signed_in(client, admin_user)
    assert len(_report(client, admin, **PERIOD, format="json").json()["rows"]) == 3
    _report(client, admin, **PERIOD, format="xlsx", supply_unit="国网重庆市电力公司渝北供电分公司")

    audit = AuditLog.__table__
    entries = db_conn.execute(select(audit).where(audit.c.action == "report_exported").order_by(audit.c.id)).all()
    by_cm = next(e for e in entries if e.actor_user_id == customer_manager.id)
    assert (by_cm.entity, by_cm.entity_id, by_cm.actor_role) == ("report", "project_detail", "customer_manager")
    assert by_cm.after["grid_areas"] == [direct.grid_area] and by_cm.after["format"] == "json"
    last = entries[-1]
    assert last.actor_user_id == admin_user.id and last.after == {
        "report": "project_detail", "format": "xlsx", "rows": 3, "from": "2026-09-01", "to": "2026-11-30",
        "supply_unit": "国网重庆市电力公司渝北供电分公司", "grid_areas": "all"}
    assert project_manager.id not in {e.actor_user_id for e in entries}  # refused: nothing exported, no row


def test_roster_lists_every_grid_area_with_its_1_plus_1_team(client: TestClient, db_conn: Connection) -> None:
    """Annex 1 ("1+1"双经理情况统计) as XLSX from the grid areas and the users of their teams; a customer manager
    gets their own areas; the export is audited."""
    units = _supply_units(db_conn)
    merged = GRID_AREAS[3]  # 营配融合: one person is this area's customer manager and project manager (一岗双责)
    db_conn.execute(update(GridArea).where(GridArea.code == merged).values(
        project_manager=select(GridArea.customer_manager).where(GridArea.code == merged).scalar_subquery()))
    teams = make_teams(db_conn)
    planner_user = make_user(db_conn, Role.PLANNER)
    answer = _report(client, signed_in(client, planner_user), "/api/v1/reports/roster")
    assert answer.headers["content-type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == ANNEX_1_HEADER and sheet.freeze_panes == "A2"
    # make_teams names each area's users as grid_areas names its 1+1 team
    areas = {code: (name, cm, pm) for code, name, cm, pm in db_conn.execute(
        select(GridArea.code, GridArea.name, GridArea.customer_manager, GridArea.project_manager))}
    expected = [[index, units[code][0], units[code][1], f"{areas[code][0]}（{units[code][2]}）",
                 "是" if code == merged else "否", areas[code][1], areas[code][2]]
                for index, code in enumerate(GRID_AREAS, 1)]
    assert all(cm and pm and (cm == pm) == (code == merged) for code, (_name, cm, pm) in areas.items())
    assert [list(row) for row in rows[1:1 + len(GRID_AREAS)]] == expected
    assert str(rows[-1][0]).startswith("注：")

    code = GRID_AREAS[1]
    own = _report(client, signed_in(client, teams[code][0]), "/api/v1/reports/roster", format="json").json()
    assert [row["grid_area_code"] for row in own["rows"]] == [code]
    assert [c["label_zh"] for c in own["columns"]] == ANNEX_1_HEADER
    audit = AuditLog.__table__
    audited = db_conn.execute(select(audit).where(audit.c.action == "report_exported",
                                                  audit.c.actor_user_id == planner_user.id)).one()
    assert audited.entity_id == "roster" and audited.after["format"] == "xlsx"


def test_power_on_needs_the_account_number_and_construction_starts_once(
        client: TestClient, db_conn: Connection, clock: ServerClock) -> None:
    """Deliverable 1: 户号 is required when the meter is energised; the start of construction is a terminal call
    at the server's time, accepted only when construction is the open step, and only once."""
    teams = make_teams(db_conn)
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
    order = Order(client, clock, customer, "overhead", at("2026-11-09", 9))
    pm = signed_in(client, teams[order.grid_area][1])
    early = order.start_construction(pm, at("2026-11-09", 10))
    assert early.status_code == 409 and early.json()["code"] == "STEP_OUT_OF_ORDER"
    order.survey_and_confirm(pm, at("2026-11-09", 11), at("2026-11-09", 12))
    order.step(pm, "construction_prep", at("2026-11-10", 9))
    assert order.start_construction(pm, at("2026-11-10", 10)).status_code == 200
    again = order.start_construction(pm, at("2026-11-11", 10))
    assert again.status_code == 409 and again.json()["code"] == "CONSTRUCTION_ALREADY_STARTED"
    assert again.json()["details"]["construction_started_at"] == "2026-11-10T02:00:00+00:00"
    order.step(pm, "construction", at("2026-11-12", 16))
    clock.set(at("2026-11-12", 17))
    missing = report(client, pm, order.id, "meter_and_energise", account_number=None)
    assert missing.status_code == 422 and missing.json()["code"] == "ACCOUNT_NUMBER_REQUIRED"
    powered = order.step(pm, "meter_and_energise", at("2026-11-12", 18), account_number="5000000003",
                         customer_charged_cny=120.0)
    assert powered["application_status"] == "powered_on"
    row = next(r for r in _report(client, signed_in(client, make_user(db_conn, Role.PLANNER)), format="json",
                                  **{"from": "2026-11-09", "to": "2026-11-09"}).json()["rows"])
    assert (row["account_number"], row["works_started_at"], row["supporting_works_working_days"]) == (
        "5000000003", "2026-11-10T10:00:00+08:00", 2)
    assert row["whole_process_working_days"] == 3  # 10, 11, 12 Nov


def test_a_cable_job_that_digs_the_road_is_reported_with_its_approval_in_the_works_time(
        client: TestClient, db_conn: Connection, clock: ServerClock) -> None:
    """Annex 2 #9–#11, #18–#22 of a cable job whose route digs the road (行政审批 in its plan): 有外线有掘路工程,
    专项成本, its confirmed cost in 万元; the works from the start call to the construction report."""
    units = _supply_units(db_conn)
    teams = make_teams(db_conn)
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))
    cable = Order(client, clock, customer, "underground_cable", at("2026-11-16", 9))  # Monday
    assert "admin_approval" in [step["step_code"] for step in cable.body["steps"]]
    pm = signed_in(client, teams[cable.grid_area][1])
    cable.survey_and_confirm(pm, at("2026-11-16", 14), at("2026-11-17", 9))
    cable.step(pm, "construction_prep", at("2026-11-17", 15))
    cable.step(pm, "admin_approval", at("2026-11-18", 11))
    assert cable.start_construction(pm, at("2026-11-19", 8, 30)).status_code == 200  # Thursday
    cable.step(pm, "construction", at("2026-11-23", 17))  # the next Monday: Fri 20 and Mon 23 are working days
    cable.step(pm, "meter_and_energise", at("2026-11-23", 18), account_number="5000000004")
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    rows = _report(client, planner, format="json", **{"from": "2026-11-16", "to": "2026-11-16"}).json()["rows"]
    assert rows == [_expected_row(
        cable, units, status="powered_on", account_number="5000000004", application_channel="手机App",
        supporting_works_class="有外线有掘路工程", funding_source="专项成本",
        works_cost_10k_cny=round(cable.cost_cny / 10_000, 4), business_type="新装",
        accepted_at="2026-11-16T09:00:00+08:00", works_started_at="2026-11-19T08:30:00+08:00",
        works_completed_at="2026-11-23T17:00:00+08:00", energised_at="2026-11-23T18:00:00+08:00",
        whole_process_working_days=5, supporting_works_working_days=2)]
