"""The staff's reads do not wait for an import's write lock either (issue 13 item 4, the routes that were left).

Same set-up as tests/app/test_reads_during_import.py (another connection holds SQLite's write lock with
uncommitted changes; the app's lock-wait bound is 300 ms): each of these GETs began ``BEGIN IMMEDIATE`` and
answered 503 ``DATABASE_BUSY`` after the bound (30 s in production); now each is a read-only unit of work.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from tests.app.test_reads_during_import import READ_LIMIT_S, served, timed, write_lock_held  # noqa: F401

STAFF_READS = [
    "/api/v1/applications",
    "/api/v1/applications/1",
    "/api/v1/admin/unassigned",
    "/api/v1/designs/00000000-0000-0000-0000-000000000000",
    "/api/v1/designs/00000000-0000-0000-0000-000000000000/drawing.svg",
    "/api/v1/designs/00000000-0000-0000-0000-000000000000/bom.csv",
    "/api/v1/imports",
    "/api/v1/imports/00000000-0000-0000-0000-000000000000",
    "/api/v1/audit",
    "/api/v1/notifications",
    "/api/v1/auth/me",
    "/api/v1/auth/api-keys",
    "/api/v1/users",
]


def test_staff_reads_answer_while_a_writer_holds_the_lock(
        served: tuple[TestClient, Path, dict[str, str]], write_lock_held: sqlite3.Connection) -> None:  # noqa: F811
    client, _db_path, headers = served
    for path in STAFF_READS:
        response, elapsed_s = timed(client, "GET", path, headers=headers)
        assert response.status_code not in (500, 503), (path, response.status_code, response.text[:300])
        assert elapsed_s < READ_LIMIT_S, (path, elapsed_s)
