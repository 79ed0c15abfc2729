"""Benchmark: the annex-2 project detail table (XLSX, CSV) and the monthly self-assessment over 100k orders
(issue 14 targets: annex-2 XLSX streamed in ≤ 10 s with RSS growth ≤ 300 MB, the self-assessment in ≤ 2 s).

Usage (one command; builds its own migrated SQLite + SpatiaLite database under a temp dir)::

    .venv/bin/python benchmarks/reports.py                  # 100k orders
    .venv/bin/python benchmarks/reports.py --orders 10000   # a quick run

The orders are synthetic rows written straight into the tables the reports read (applications of the four job
classes with a confirmed design version each, the construction step, the audit log's ``created`` row and, for one
order in five, a later ``document_added``; a few per cent charged to the customer), all accepted in autumn 2026 and
energised in November 2026 — the worst case for the monthly self-assessment, which reads only the month's orders.
Each figure is the code path of the routes (app/api/reports.py) without HTTP: the database read in batches, the
rows built with the statutory calendar, the table written to a spooled temporary file.

Peers in the same run, on the same rows: pandas ``DataFrame.to_excel`` (openpyxl engine) and ``DataFrame.to_csv``
(utf-8-sig) of the annex-2 rows already built (so the peer skips the database read and the row building Sanling's
figure includes; Sanling's writer alone on the same rows is printed too), and for the self-assessment pandas
``read_sql`` of the month's orders + ``groupby(job_class)`` mean/median/p90/max of calendar days (a lower bound: no
working-day calendar, no interactions, no targets). RSS growth is the peak (VmHWM, reset before each step where the
kernel allows) minus the RSS before the step. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JOB_CLASSES = ("direct_meter", "overhead", "underground_cable", "transformer_upgrade")
MONTH = "2026-11"
CHUNK = 5_000


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)


def measure(step: Callable[[], Any]) -> tuple[float, float, Any]:
    """Seconds and peak RSS growth (MB) of ``step()``, and what it returned."""
    _reset_peak()
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - started
    return seconds, max(0, _status_kb("VmHWM") - before) / 1024, result


def build(url: str, orders: int, seed: int = 14) -> None:
    """Write ``orders`` synthetic energised orders into the migrated database at ``url``."""
    from sqlalchemy import insert, select

    from app.platform.db import create_db_engine
    from app.platform.models import Application, ApplicationStep, AuditLog, Design, GridArea, User

    rng = random.Random(seed)
    engine = create_db_engine(url)
    china = timedelta(hours=8)
    with engine.begin() as conn:
        areas = [code for (code,) in conn.execute(select(GridArea.code))] or [None]
        user_id = conn.execute(insert(User).values(
            username="bench-customer", role="customer", password_hash="x", grid_area_codes=[])
            .returning(User.id)).scalar_one()
        next_id = 1
        for start in range(0, orders, CHUNK):
            apps, designs, steps, audit = [], [], [], []
            for _ in range(min(CHUNK, orders - start)):
                job = JOB_CLASSES[rng.randrange(4)]
                energised = datetime(2026, 11, 1, 9, tzinfo=UTC) - china + timedelta(
                    days=rng.randrange(30), minutes=rng.randrange(600))
                accepted = energised - timedelta(days=rng.randrange(1, 22), minutes=rng.randrange(300))
                design_id = str(uuid.UUID(int=rng.getrandbits(128)))
                lon, lat = 106.49 + rng.random() * 0.03, 29.49 + rng.random() * 0.02
                point = f"SRID=4326;POINT({lon:.6f} {lat:.6f})"
                apps.append({
                    "id": next_id, "customer_user_id": user_id, "applicant_name": f"客户 {next_id}",
                    "identity_kind": "business_licence", "identity_number": f"9150{next_id:014d}",
                    "contact_phone": "13800000000", "address": f"重庆市渝北区双凤桥街道 {next_id} 号", "pin_lon": lon,
                    "pin_lat": lat, "pin_crs": "wgs84", "requested_kw": float(rng.choice((10, 25, 40, 60, 100))),
                    "phases": rng.choice((1, 3)), "category": "small_enterprise", "industry": "餐饮",
                    "area_type": "urban", "status": "powered_on", "grid_area_code": rng.choice(areas),
                    "design_id": design_id, "job_class": job, "confirmed_design_version": 1,
                    "confirmed_at": accepted + timedelta(hours=3), "documents_complete": True,
                    "contract_version": "bench", "contract_sha256": "0" * 64, "contract_accepted_at": accepted,
                    "contract_accepted_by_user_id": user_id, "created_at": accepted, "updated_at": energised,
                    "powered_on_at": energised, "account_number": f"50{next_id:08d}", "channel": "app",
                    "business_type": "new", "meter_box": point,
                    "construction_started_at": None if job == "direct_meter" else accepted + timedelta(days=1),
                    "customer_charged_cny": 120.0 if rng.random() < 0.03 else 0.0})
                designs.append({"design_id": design_id, "version": 1, "profile_id": "chongqing-2019",
                                "job_class": job, "total_cost_cny": round(rng.uniform(800, 90_000), 2),
                                "request": {}, "result": {"needs_outage": job == "transformer_upgrade"},
                                "created_at": accepted, "meter_box": point})
                if job != "direct_meter":
                    steps.append({"application_id": next_id, "seq": 6, "step_code": "construction",
                                  "starts_on": accepted.date(), "deadline": energised.date(),
                                  "completed_at": energised - timedelta(hours=1), "photos": []})
                audit.append({"occurred_at": accepted, "actor_user_id": user_id, "actor_role": "customer",
                              "entity": "application", "entity_id": str(next_id), "action": "created"})
                if rng.random() < 0.2:
                    audit.append({"occurred_at": accepted + timedelta(days=1), "actor_user_id": user_id,
                                  "actor_role": "customer", "entity": "application", "entity_id": str(next_id),
                                  "action": "document_added"})
                next_id += 1
            conn.execute(insert(Application), apps)
            conn.execute(insert(Design), designs)
            if steps:
                conn.execute(insert(ApplicationStep), steps)
            conn.execute(insert(AuditLog), audit)
    engine.dispose()


def run(url: str) -> dict[str, Any]:
    """Time every report over the database at ``url``; return the figures."""
    import pandas as pd
    from sqlalchemy.orm import Session

    from app.design.service import work_calendar
    from app.platform.db import create_db_engine
    from app.reporting import project_detail, self_assessment
    from app.reporting.queries import ReportFilter, assessment_records, project_records
    from app.reporting.writers import ReportFormat, Table, write
    from design_rules.profiles import get_profile

    engine = create_db_engine(url)
    profile = get_profile("chongqing-2019")
    calendar = work_calendar()
    power_factor = profile.power_factor.value
    table = Table(title_zh=project_detail.TITLE_ZH, columns=project_detail.COLUMNS,
                  notes=project_detail.notes(power_factor), widths=project_detail.WIDTHS,
                  meta={"report": "project_detail"})
    figures: dict[str, Any] = {}

    def annex_2(report_format: ReportFormat) -> Callable[[], int]:
        def step() -> int:
            with Session(engine) as session:
                rows = (project_detail.build_row(record, calendar, power_factor=power_factor)
                        for record in project_records(session, ReportFilter()))
                written = write(table, rows, report_format)
                size = written.file.seek(0, io.SEEK_END)
                written.file.close()
                return size
        return step

    for report_format in (ReportFormat.XLSX, ReportFormat.CSV):
        seconds, rss_mb, size = measure(annex_2(report_format))
        figures[f"annex2_{report_format.value}_s"] = round(seconds, 2)
        figures[f"annex2_{report_format.value}_rss_growth_mb"] = round(rss_mb, 1)
        figures[f"annex2_{report_format.value}_bytes"] = size
        print(f"annex 2 {report_format.value}: {seconds:.2f} s, RSS +{rss_mb:.0f} MB, {size / 1e6:.1f} MB", flush=True)

    with Session(engine) as session:
        built = [project_detail.build_row(record, calendar, power_factor=power_factor)
                 for record in project_records(session, ReportFilter())]
    figures["orders"] = len(built)

    def writer_only(report_format: ReportFormat) -> Callable[[], None]:
        return lambda: write(table, iter(built), report_format).file.close()

    def pandas_peer(report_format: ReportFormat) -> Callable[[], None]:
        def step() -> None:
            frame = pd.DataFrame([[value.replace(tzinfo=None) if isinstance(value, datetime) else value
                                   for value in row.cells()] for row in built],  # Excel has no zones
                                 columns=list(project_detail.LABELS))
            with tempfile.TemporaryFile() as out:
                if report_format is ReportFormat.XLSX:
                    frame.to_excel(out, index=False, engine="openpyxl")
                else:
                    frame.to_csv(out, index=False, encoding="utf-8-sig")
        return step

    for report_format in (ReportFormat.XLSX, ReportFormat.CSV):
        mine, _rss, _ = measure(writer_only(report_format))
        peer, peer_rss, _ = measure(pandas_peer(report_format))
        key = report_format.value
        figures[f"writer_{key}_s"], figures[f"pandas_{key}_s"] = round(mine, 2), round(peer, 2)
        figures[f"pandas_{key}_rss_growth_mb"] = round(peer_rss, 1)
        figures[f"pandas_{key}_over_writer"] = round(peer / mine, 2)
        peer_name = "DataFrame.to_excel (openpyxl)" if key == "xlsx" else "DataFrame.to_csv"
        print(f"{key} writer on built rows: Sanling {mine:.2f} s, pandas {peer_name} {peer:.2f} s "
              f"(×{peer / mine:.2f}); full annex-2 path / pandas: "
              f"×{figures[f'annex2_{key}_s'] / peer:.2f}", flush=True)
    built.clear()

    first, after = self_assessment.month_bounds(MONTH)

    def assess() -> self_assessment.SelfAssessment:
        with Session(engine) as session:
            return self_assessment.assess(
                assessment_records(session, first, after, supply_unit=None, grid_areas=None), profile, calendar,
                month=MONTH, supply_unit=None, generated_at=datetime.now(UTC).isoformat())

    def pandas_assessment() -> Any:
        from sqlalchemy import text

        with engine.connect() as conn:
            frame = pd.read_sql(text(
                "SELECT a.job_class, a.contract_accepted_at, a.powered_on_at, a.customer_charged_cny, "
                "d.total_cost_cny FROM applications a LEFT JOIN designs d ON d.design_id = a.design_id "
                "AND d.version = a.confirmed_design_version WHERE a.powered_on_at >= :start "
                "AND a.powered_on_at < :end"), conn, params={
                    "start": datetime(2026, 10, 31, 16), "end": datetime(2026, 11, 30, 16)})
        local = timedelta(hours=8)
        frame["days"] = ((pd.to_datetime(frame["powered_on_at"]) + local).dt.normalize()
                         - (pd.to_datetime(frame["contract_accepted_at"]) + local).dt.normalize()).dt.days
        return frame.groupby("job_class")["days"].agg(["count", "mean", "median", lambda s: s.quantile(0.9), "max"])

    seconds, rss_mb, result = measure(assess)
    peer, _rss, _ = measure(pandas_assessment)
    figures.update({"self_assessment_s": round(seconds, 2), "self_assessment_rss_growth_mb": round(rss_mb, 1),
                    "self_assessment_orders": result.orders, "pandas_groupby_s": round(peer, 2),
                    "self_assessment_over_pandas": round(seconds / peer, 2)})
    print(f"self-assessment of {MONTH}: {result.orders} orders in {seconds:.2f} s (RSS +{rss_mb:.0f} MB); "
          f"pandas read_sql + groupby of calendar days {peer:.2f} s (Sanling ×{seconds / peer:.2f})", flush=True)
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    args = parser.parse_args()
    from app.platform import migrate

    with tempfile.TemporaryDirectory(prefix="sanling-reports-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sanling.sqlite'}"
        migrate.upgrade(url)
        started = time.perf_counter()
        build(url, args.orders)
        print(f"{args.orders} orders written in {time.perf_counter() - started:.1f} s", flush=True)
        figures = run(url)
    figures["targets"] = {"annex2_xlsx_s": 10, "annex2_xlsx_rss_growth_mb": 300, "self_assessment_s": 2}
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
