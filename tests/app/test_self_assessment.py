"""Monthly self-assessment by the World Bank "Getting Electricity" method (issue 14 item 4; R8.3, CQ-45 措施14).

A small known month (November 2026) of orders is built through the HTTP API as customers and the 1+1 teams make
them, at known server times (the clock the routers read is set, as in tests/app/test_reports.py), on both
databases; the self-assessment's figures for that month are asserted exactly against the chongqing-2019 profile
(direct meter 4, overhead 10, cable / MV upgrade 15 working days, CQ-45 一.2; 2 procedures, CQ-45 一.1; ≤ 2
interactions, CQ-32 四(二); customer cost 0, CQ-45 一.3; SAIDI < 1 h and SAIFI < 1, CQ-45 一.4).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from app.design.service import work_calendar
from app.identity.auth import Role
from app.platform.models import AuditLog
from app.reporting import self_assessment
from app.reporting.self_assessment import AssessmentRecord
from design_rules.profiles import get_profile
from tests.app import test_reports
from tests.app.auth_helpers import make_user
from tests.app.lifecycle_helpers import (
    JPEG,
    SAMPLES,
    application_form,
    apply,
    make_teams,
    report,
    signed_in,
)
from tests.app.test_reports import XLSX, ServerClock, _supply_units, at

URL = "/api/v1/reports/getting-electricity"
MONTH = "2026-11"
SHEET_HEADER = ["指标", "分项", "数值", "单位", "目标", "是否达标", "目标依据"]


# the server clock and the client of the annex-2 tests (one definition: tests/app/test_reports.py)
clock = test_reports.clock
client = test_reports.client


def _sample(job_class: str, index: int) -> dict[str, str]:
    return [s for s in SAMPLES if s["expected_job_class"] == job_class][index]


class Job:
    """One order driven through the API at known server times: applied, surveyed, confirmed, every planned step
    reported, energised."""

    def __init__(self, client: TestClient, clock: ServerClock, customer: dict[str, str], job_class: str,
                 index: int, accepted: datetime, *, property_proof: bool = True) -> None:
        self.client, self.clock, self.job_class = client, clock, job_class
        clock.set(accepted)
        answer = apply(client, customer, application_form(_sample(job_class, index)), property_proof=property_proof)
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["job_class"] == job_class
        self.id: int = body["id"]
        self.grid_area: str = body["grid_area_code"]
        self.steps = [step["step_code"] for step in body["steps"]]
        self.cost_cny = 0.0

    def run(self, pm: dict[str, str], day: str, energised: datetime, **power_on: Any) -> None:
        """Survey and confirm on ``day``, report the remaining steps that day, energise at ``energised``."""
        self.clock.set(at(day, 9))
        assert report(self.client, pm, self.id, "site_survey", photos=0).status_code == 200
        self.clock.set(at(day, 10))
        etag = self.client.get(f"/api/v1/terminal/jobs/{self.id}/survey-package", headers=pm).headers["ETag"]
        confirm = self.client.post(f"/api/v1/terminal/jobs/{self.id}/confirm", headers={**pm, "If-Match": etag})
        assert confirm.status_code == 200, confirm.text
        self.cost_cny = confirm.json()["materials_request"]["total_cny"]
        for hour, code in enumerate((c for c in self.steps if c not in {"accept_and_sign", "site_survey",
                                                                          "design_and_bom", "meter_and_energise"}),
                                    start=11):
            self.clock.set(at(day, hour))
            answer = report(self.client, pm, self.id, code)
            assert answer.status_code == 200, (code, answer.text)
        self.clock.set(energised)
        answer = report(self.client, pm, self.id, "meter_and_energise", account_number=f"59{self.id:08d}",
                        **power_on)
        assert answer.status_code == 200, answer.text
        assert answer.json()["application_status"] == "powered_on"


@pytest.fixture
def month(client: TestClient, db_conn: Connection, clock: ServerClock) -> dict[str, Any]:
    """November 2026: six orders energised in the month (three direct meters, an overhead, a cable and an MV
    transformer upgrade), one energised in October and one cancelled in November (neither counted)."""
    units = _supply_units(db_conn)
    teams = make_teams(db_conn)
    customer = signed_in(client, make_user(db_conn, Role.CUSTOMER))

    def pm(job: Job) -> dict[str, str]:
        return signed_in(client, teams[job.grid_area][1])

    # Direct meters (deadline 4 working days). A: Mon 2 → Wed 4 Nov: 2 working days, 2 calendar days.
    direct_a = Job(client, clock, customer, "direct_meter", 0, at("2026-11-02", 9))
    direct_a.run(pm(direct_a), "2026-11-03", at("2026-11-04", 10))
    # B: accepted Thu 5 Nov without the property proof (容缺), which the customer hands in on Mon 9 Nov: three
    # interactions (application, document, power-on). Energised Wed 11 Nov: 6, 9, 10, 11 → 4 working days, 6 days.
    direct_b = Job(client, clock, customer, "direct_meter", 1, at("2026-11-05", 9), property_proof=False)
    clock.set(at("2026-11-09", 9))
    handed_in = client.post(f"/api/v1/applications/{direct_b.id}/documents", data={"kind": "property_proof"},
                            files={"document": ("deed.jpg", JPEG, "image/jpeg")}, headers=customer)
    assert handed_in.status_code == 201, handed_in.text
    direct_b.run(pm(direct_b), "2026-11-09", at("2026-11-11", 15))
    # C: Mon 9 → Mon 16 Nov: 10, 11, 12, 13, 16 → 5 working days (overdue), 7 days; the customer paid 120 CNY.
    direct_c = Job(client, clock, customer, "direct_meter", 2, at("2026-11-09", 10))
    direct_c.run(pm(direct_c), "2026-11-10", at("2026-11-16", 11), customer_charged_cny=120.0)
    # Overhead (10): Mon 2 → Fri 13 Nov: 9 working days, 11 days.
    overhead = Job(client, clock, customer, "overhead", 0, at("2026-11-02", 11))
    overhead.run(pm(overhead), "2026-11-04", at("2026-11-13", 16))
    # Cable (15): Mon 16 → Mon 23 Nov: 5 working days, 7 days.
    cable = Job(client, clock, customer, "underground_cable", 0, at("2026-11-16", 9))
    cable.run(pm(cable), "2026-11-17", at("2026-11-23", 18))
    # MV transformer upgrade (15; its design needs an outage): Tue 17 → Fri 27 Nov: 8 working days, 10 days.
    upgrade = Job(client, clock, customer, "transformer_upgrade", 0, at("2026-11-17", 9))
    upgrade.run(pm(upgrade), "2026-11-18", at("2026-11-27", 17))

    # Energised in October: not in November's figures.
    october = Job(client, clock, customer, "overhead", 1, at("2026-10-26", 9))
    october.run(pm(october), "2026-10-27", at("2026-10-30", 17))
    # Cancelled in November: never energised, not counted.
    cancelled = Job(client, clock, customer, "overhead", 2, at("2026-11-03", 9))
    clock.set(at("2026-11-03", 15))
    assert client.post(f"/api/v1/applications/{cancelled.id}/cancel", json={"reason": "客户改期"},
                       headers=customer).status_code == 200
    jobs = [direct_a, direct_b, direct_c, overhead, cable, upgrade]
    return {"units": units, "teams": teams, "jobs": jobs, "direct_b": direct_b, "direct_c": direct_c}


def _get(client: TestClient, headers: dict[str, str], **params: str) -> Any:
    answer = client.get(URL, params={"month": MONTH, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def _days(mean: float, median: float, p90: int, maximum: int) -> dict[str, Any]:
    return {"mean": mean, "median": median, "p90": p90, "max": maximum}


def test_self_assessment_figures_of_a_known_month(client: TestClient, month: dict[str, Any],
                                                  db_conn: Connection) -> None:
    """R8.3 / CQ-45 措施14: procedures and interactions, time per job class (working and calendar days, on time,
    overdue), customer cost with the charged order listed, grid cost in 万元, no-outage rate, SAIDI/SAIFI null."""
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    body = _get(client, planner, format="json").json()
    assert (body["report"], body["month"], body["profile_id"], body["orders"]) == (
        "getting_electricity", MONTH, "chongqing-2019", 6)

    procedures = body["procedures"]
    assert (procedures["per_order"], procedures["target"], procedures["met"]) == (2, 2, True)
    assert procedures["source"].startswith("CQ-45 一.1")
    interactions = procedures["customer_interactions"]
    direct_b = month["direct_b"]
    assert (interactions["mean"], interactions["max"], interactions["target_max"]) == (2.17, 3, 2)  # 13 / 6
    assert interactions["above_target"] == [
        {"application_id": direct_b.id, "account_number": f"59{direct_b.id:08d}", "interactions": 3}]
    assert interactions["source"].startswith("CQ-32 四(二)")

    by_class = {row["job_class"]: row for row in body["time"]["by_job_class"]}
    assert list(by_class) == ["direct_meter", "overhead", "underground_cable", "transformer_upgrade"]
    direct = by_class["direct_meter"]
    assert (direct["count"], direct["label_zh"], direct["deadline_days"], direct["deadline_day_kind"]) == (
        3, "直接装表（无外线工程）", 4, "working")
    assert direct["working_days"] == _days(3.67, 4.0, 5, 5)  # 2, 4, 5
    assert direct["calendar_days"] == _days(5.0, 6.0, 7, 7)  # 2, 6, 7
    assert (direct["on_time"], direct["on_time_share"], direct["overdue"]) == (2, 0.6667, 1)
    for code, working, calendar, deadline in (("overhead", 9, 11, 10), ("underground_cable", 5, 7, 15),
                                              ("transformer_upgrade", 8, 10, 15)):
        row = by_class[code]
        assert (row["count"], row["deadline_days"], row["on_time"], row["on_time_share"], row["overdue"]) == (
            1, deadline, 1, 1.0, 0), code
        assert row["working_days"] == _days(float(working), float(working), working, working), code
        assert row["calendar_days"] == _days(float(calendar), float(calendar), calendar, calendar), code
    assert by_class["overhead"]["deadline_source"].startswith("CQ-45 一.2")
    assert body["time"]["all_orders"] is None and body["time"]["target_mean_days"] is None  # CQ: no average target

    direct_c = month["direct_c"]
    assert body["customer_cost"] == {
        "total_cny": 120.0, "orders_charged": 1, "target_cny": 0.0, "source": "CQ-45 一.3 (红线外零投资)",
        "met": False, "orders": [{"application_id": direct_c.id, "account_number": f"59{direct_c.id:08d}",
                                  "account_name": f"客户 {_sample('direct_meter', 2)['app_id']}",
                                  "customer_charged_cny": 120.0}]}
    costs = [job.cost_cny for job in month["jobs"]]  # in the order they were energised
    costs = [costs[0], costs[1], costs[3], costs[2], costs[4], costs[5]]
    assert all(cost > 0 for cost in costs)
    assert body["grid_cost"] == {"total_10k_cny": round(sum(costs) / 10_000, 4),
                                 "mean_10k_cny": round(sum(costs) / 6 / 10_000, 4),
                                 "orders_with_cost": 6, "orders_without_cost": 0}

    no_outage = body["no_outage"]  # the MV upgrade's design needs an outage, the five LV connections do not
    assert (no_outage["orders_with_data"], no_outage["without_outage"], no_outage["rate_pct"]) == (6, 5, 83.33)
    assert no_outage["target_pct"] is None and no_outage["met"] is None and "needs_outage" in no_outage["basis"]

    reliability = body["reliability"]
    assert (reliability["saidi_hours"], reliability["saifi"]) == (None, None)  # no data: null, never 0
    assert (reliability["period_from"], reliability["period_to"]) == ("2025-12-01", "2026-11-30")
    assert reliability["targets"]["saidi_max_hours"] == 1.0 and reliability["targets"]["saifi_max"] == 1.0
    assert "reliability import layer" in reliability["warning"] and reliability["warning"] in body["warnings"]


def test_self_assessment_xlsx_opens_with_its_header_and_figures(client: TestClient, month: dict[str, Any],
                                                                db_conn: Connection) -> None:
    """The XLSX (default without `format` or `Accept`): one sheet, the header 指标 · 分项 · 数值 · 单位 · 目标 ·
    是否达标 · 目标依据 frozen, one line per figure next to its target, the note rows with the warnings."""
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    answer = _get(client, planner)
    assert answer.headers["content-type"] == XLSX and "attachment" in answer.headers["content-disposition"]
    assert answer.headers["x-report-rows"] == "6"
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    sheet = book.worksheets[0]
    assert sheet.title == "获得电力指标月度自评" and sheet.freeze_panes == "A2"
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == SHEET_HEADER
    lines = {row[1]: row for row in rows[1:] if row[0] and not str(row[0]).startswith("注：")}
    assert lines["环节数（每户）"][2:6] == [2, "个", 2, "是"]
    assert lines["交互超过目标的工单数"][2] == 1
    assert lines["直接装表（无外线工程）：平均（工作日）"][2:5] == [3.67, "工作日", "≤4"]
    assert lines["直接装表（无外线工程）：超时户数"][2:6] == [1, "户", 0, "否"]
    assert lines["中压配变改造：90%分位（日历日）"][2:4] == [10, "日历日"]
    assert lines["客户红线外费用合计"][2:6] == [120, "元", 0, "否"]
    saidi = next(row for key, row in lines.items() if key.startswith("SAIDI"))
    assert saidi[2] is None and saidi[4] == "<1"
    notes = [row[0] for row in rows if row[0] and str(row[0]).startswith("注：")]
    assert any("reliability import layer" in note for note in notes)
    as_json = client.get(URL, params={"month": MONTH}, headers={**planner, "Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json" and as_json.json()["orders"] == 6


def test_bad_month_is_refused_with_a_code(client: TestClient, db_conn: Connection) -> None:
    planner = signed_in(client, make_user(db_conn, Role.PLANNER))
    for bad in ("2026-13", "2026-1", "2026-11-01", "November", "0000-01"):
        answer = client.get(URL, params={"month": bad}, headers=planner)
        assert answer.status_code == 422 and answer.json()["code"] == "REQUEST_INVALID", bad
    missing = client.get(URL, headers=planner)
    assert missing.status_code == 422 and missing.json()["code"] == "REQUEST_INVALID"


def test_self_assessment_by_role_and_audited(client: TestClient, month: dict[str, Any], db_conn: Connection) -> None:
    """Customer managers assess their own grid areas, planners and admins all, the other roles nothing (403); each
    export is a `report_exported` audit row with the month, the format and the number of orders."""
    direct_c = month["direct_c"]
    area = direct_c.grid_area
    customer_manager = month["teams"][area][0]
    own = _get(client, signed_in(client, customer_manager), format="json").json()
    assert own["orders"] == sum(job.grid_area == area for job in month["jobs"]) < 6
    assert own["customer_cost"]["orders"][0]["application_id"] == direct_c.id
    for role in (Role.CUSTOMER, Role.PROJECT_MANAGER, Role.GIS_ADMIN):
        headers = signed_in(client, make_user(db_conn, role, grid_areas=[area] if role is Role.PROJECT_MANAGER
                                              else ()))
        refused = client.get(URL, params={"month": MONTH}, headers=headers)
        assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN", role
    admin_user = make_user(db_conn, Role.ADMIN)
    company = month["units"][area][0]
    assert _get(client, signed_in(client, admin_user), format="json", supply_unit=company).json()["orders"] == 6
    assert _get(client, signed_in(client, admin_user), format="json", supply_unit="别的供电公司").json()["orders"] == 0

    audit = AuditLog.__table__
    entries = db_conn.execute(select(audit).where(audit.c.action == "report_exported",
                                                  audit.c.entity_id == "getting_electricity")
                              .order_by(audit.c.id)).all()
    by_cm = next(e for e in entries if e.actor_user_id == customer_manager.id)
    assert by_cm.after == {"report": "getting_electricity", "format": "json", "rows": own["orders"],
                           "from": "2026-11-01", "to": "2026-11-30", "supply_unit": None, "grid_areas": [area],
                           "month": MONTH}
    assert entries[-1].actor_user_id == admin_user.id and entries[-1].after["grid_areas"] == "all"
    assert entries[-1].after["supply_unit"] == "别的供电公司" and entries[-1].actor_role == "admin"


def _record(application_id: int, job_class: str, accepted: str, energised: str, **extra: Any) -> AssessmentRecord:
    values: dict[str, Any] = {"account_number": None, "applicant_name": f"客户 {application_id}",
                              "customer_charged_cny": 0.0, "confirmed_cost_cny": 10_000.0, "needs_outage": False,
                              "application_interactions": 1, **extra}
    return AssessmentRecord(application_id=application_id, job_class=job_class,
                            accepted_at=at(accepted, 9).astimezone(UTC), powered_on_at=at(energised, 17), **values)


def test_the_shanghai_targets_add_the_average_and_the_no_outage_rate() -> None:
    """SH (shanghai-2019): every job class 10 working days, the average ≤ 10 days (SH 二) as its own line, the
    no-outage rate against 90 % (SH 20), SAIDI/SAIFI −3 % a year; a design without needs_outage is left out of the
    rate with a warning. Pure: ``assess`` on records, no database."""
    records = [
        _record(1, "direct_meter", "2026-11-02", "2026-11-04"),  # 2 working days
        _record(2, "overhead", "2026-11-02", "2026-11-17"),  # 11 working days: overdue (10)
        _record(3, "transformer_upgrade", "2026-11-09", "2026-11-20", needs_outage=True),  # 9
        _record(4, "underground_cable", "2026-11-16", "2026-11-19", needs_outage=None, confirmed_cost_cny=None),
    ]
    result = self_assessment.assess(records, get_profile("shanghai-2019"), work_calendar(), month=MONTH,
                                    supply_unit=None, generated_at="2026-12-01T00:00:00+00:00")
    everything = result.time.all_orders
    assert everything is not None and (everything.count, everything.deadline_days) == (4, 10)
    assert everything.working_days.model_dump() == _days(6.25, 6.0, 11, 11)  # 2, 3, 9, 11
    assert (everything.on_time, everything.overdue) == (3, 1)
    assert (result.time.target_mean_days, result.time.mean_met) == (10.0, True)
    assert result.time.target_mean_source.startswith("SH 二")
    assert [row.overdue for row in result.time.by_job_class] == [0, 1, 0, 0]
    assert (result.no_outage.orders_with_data, result.no_outage.without_outage, result.no_outage.rate_pct) == (
        3, 2, 66.67)
    assert (result.no_outage.target_pct, result.no_outage.met) == (90.0, False)
    assert any("without a confirmed design" in warning for warning in result.warnings)
    assert (result.grid_cost.total_10k_cny, result.grid_cost.orders_without_cost) == (3.0, 1)
    assert result.reliability.targets["saidi_yearly_reduction_pct"] == 3.0
    assert result.reliability.saidi_hours is None and result.reliability.saifi is None
    lines = {line.item: line for line in self_assessment.lines(result)}
    assert (lines["全部：平均（工作日）"].value, lines["全部：平均（工作日）"].target) == (6.25, "平均≤10")
    assert lines["业扩不停电接火率（按设计是否需停电）"].met == "否"
    assert lines[next(k for k in lines if k.startswith("SAIDI"))].target == "同比−3%"
