"""The planner map page in headless Chromium against the real app served by uvicorn (issue 6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import Engine

from app.identity.auth import Role
from tests.app.auth_helpers import TEST_JWT_SECRET, make_user
from tests.support.live_server import served_uvicorn

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/bootstrap.sh --with-test); never `playwright install`
CLASS_SELECTORS = {"<50": "path.tx-50", "50-70": "path.tx-50_70", "70-80": "path.tx-70_80", ">80": "path.tx-80"}


@pytest.fixture(scope="module")
def served_app(demo_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run `uvicorn app.main:create_app` on a free loopback port against the demo database."""
    env = {"SANLING_DATABASE_URL": demo_db_url, "SANLING_JWT_SECRET": TEST_JWT_SECRET,
           "SANLING_PASSWORD_HASH_PROFILE": "fast", "SANLING_DATA_DIR": str(tmp_path_factory.mktemp("served")),
           "SANLING_LOG_JSON": "false", "SANLING_BASEMAP_TILE_URL": ""}
    with served_uvicorn(env, tmp_path_factory.mktemp("log") / "uvicorn.log") as base:
        yield base


def test_planner_signs_in_and_sees_every_threshold_class(served_app: str, demo_engine: Engine, backend: str) -> None:
    planner = make_user(demo_engine, Role.PLANNER)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"map-{backend}.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served_app}/map")
            expect(page.locator("#signin")).to_be_visible()
            page.fill("#username", planner.username)
            page.fill("#password", planner.password)
            page.click("#signin button[type=submit]")
            expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=20_000)
            for label, selector in CLASS_SELECTORS.items():
                assert page.locator(selector).count() > 0, label
            assert page.locator("path.transformer").count() == 54
            assert page.locator("path.grid-area.precontrol").count() == 1  # CQ-YB-04
            expect(page.locator("#worklist-items li").first).to_be_visible()
            page.locator(CLASS_SELECTORS[">80"]).first.click(force=True)
            details = page.locator("#details-body .tx-details")
            expect(details).to_contain_text("Rating")
            expect(details).to_contain_text("kVA")
            expect(page.locator(".leaflet-popup-content .tx-details")).to_be_visible()
            page.uncheck("#filter-80")
            assert page.locator(CLASS_SELECTORS[">80"]).count() == 0
            page.fill("#search-input", "106.50, 29.50")
            page.press("#search-input", "Enter")
            expect(page.locator("#status")).to_contain_text("Centred on 106.5, 29.5")
            page.check("#filter-80")
            page.locator("#worklist-items li").first.click()  # pans to the most loaded transformer, opens it
            expect(page.locator(".leaflet-popup-content .tx-details")).to_contain_text("must start project")
            page.screenshot(path=str(screenshot), full_page=True)
            assert errors == []
        finally:
            browser.close()
    print(f"map screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
