"""The public disclosure page /public and its items endpoint (R6.2; issue 17 item 7; BS 四(五)1, SH 22).

The page is opened in Debian's Chromium as a phone would (touch, small viewport) against the real app under
uvicorn, with every request that is not to the test server aborted (as in tests/app/test_docs_pages.py): the
Chinese is drawn with a CJK font, tapping the map shows the aggregated capacity the API answers for that
point, the located position does too, and the process, time limits, documents, 12398 and the service phone are
on the page. The screenshot is kept at tests/artifacts/public-<backend>.png.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Route, expect, sync_playwright

from app.main import create_app
from app.network.loading import DEMO_DIR
from design_rules.profiles import JobClass, StepCode, get_profile
from tests.app.auth_helpers import TEST_JWT_SECRET, settings_for_tests
from tests.app.test_docs_pages import assert_cjk_font, chinese_text_fonts
from tests.support.live_server import served_uvicorn

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/bootstrap.sh --with-test); never `playwright install`
HOST = "sanling.test"  # resolved to 127.0.0.1 by Chromium itself (--host-resolver-rules)
PATH = "/api/v1/public/disclosure"
JINSHAN = "金山网格"  # a demo grid area (urban, not pre-controlled)
LOCATED = (29.495, 106.5125)  # lat, lon inside CQ-YB-04, the pre-controlled rural grid area


# ---------------------------------------------------------------- the items endpoint, on both databases
@pytest.fixture(scope="module")
def client(demo_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = settings_for_tests(demo_db_url, data_dir=tmp_path_factory.mktemp("data"), public_rate_burst=1000,
                                  public_rate_per_minute=6000)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_disclosure_items_come_from_the_profile_with_their_sources(client: TestClient) -> None:
    """Issue 17 item 7: process steps, time limits per job class and documents of the active profile, each cited."""
    response = client.get(PATH)
    assert response.status_code == 200
    body = response.json()
    profile = get_profile("chongqing-2019")
    assert body["profile"]["profile_id"] == profile.profile_id
    assert [job["job_class"] for job in body["job_classes"]] == [j.value for j in JobClass]
    for job in body["job_classes"]:
        deadline = profile.deadlines[JobClass(job["job_class"])]
        assert job["total_days"] == deadline.total_days == sum(step["days"] for step in job["steps"])
        assert [step["step"] for step in job["steps"]] == [s.value for s in StepCode]
        assert job["source"] == deadline.source and job["steps_source"] == deadline.steps_source
    assert body["schedule"]["day_kind"] == "working" and body["schedule"]["day_kind_zh"] == "工作日"
    documents = body["documents_required"]
    assert [item["kind"] for item in documents["items"]] == ["identity", "property_proof"]
    assert documents["items"][1]["deferrable"] and documents["source"] == profile.required_documents.source
    assert {key: value for key, value in body["capacity_publication"].items() if key != "source"} == {
        "cap_kva": 160.0, "rounding_kva": 10.0, "cell_size_m": 500.0}
    keys = {document["key"] for document in body["profile"]["documents"]}
    assert keys == {"CQ-45", "CQ-32"}


def test_phones_are_12398_and_the_service_phone_setting(client: TestClient, demo_db_url: str,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """BS 四(五)1: the 12398 hotline and the company's service phone (SANLING_SERVICE_PHONE, default 95598)."""
    phones = {phone["kind"]: phone for phone in client.get(PATH).json()["phones"]}
    assert phones["regulator_hotline"]["number"] == "12398" and "BS 四(五)1" in phones["regulator_hotline"]["source"]
    assert phones["service_phone"]["number"] == "95598"
    settings = settings_for_tests(demo_db_url, data_dir=tmp_path_factory.mktemp("phone"), service_phone="023-63000000")
    with TestClient(create_app(settings)) as other:
        phones = {phone["kind"]: phone for phone in other.get(PATH).json()["phones"]}
    assert phones["service_phone"]["number"] == "023-63000000" and "95598" not in phones["service_phone"]["source"]


def test_grid_area_names_for_search_and_no_asset_data(client: TestClient) -> None:
    """The grid areas' public names (with a 3-decimal point to centre on) and nothing of any asset."""
    response = client.get(PATH)
    body = response.json()
    names = [area["name"] for area in body["grid_areas"]]
    assert JINSHAN in names and names == sorted(names)
    west, south, east, north = body["service_area_wgs84"]
    for area in body["grid_areas"]:
        assert set(area) == {"name", "area_type", "lon_wgs84", "lat_wgs84"}
        assert west <= area["lon_wgs84"] <= east and south <= area["lat_wgs84"] <= north
        assert round(area["lon_wgs84"], 3) == area["lon_wgs84"] and round(area["lat_wgs84"], 3) == area["lat_wgs84"]
    transformers = json.loads((DEMO_DIR / "transformers.geojson").read_text(encoding="utf-8"))["features"]
    for feature in transformers:
        assert feature["properties"]["asset_id"] not in response.text
        assert feature["properties"]["name"] not in response.text
    assert "CQ-YB" not in response.text  # no grid-area code either


def test_the_endpoint_has_a_schema_and_is_public(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"][PATH]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/PublicDisclosureItems"}
    assert {"job_classes", "documents_required", "phones", "grid_areas"} <= set(
        document["components"]["schemas"]["PublicDisclosureItems"]["properties"])
    assert "401" not in operation["responses"] and "429" in operation["responses"]
    page = document["paths"]["/public"]["get"]
    assert "text/html" in page["responses"]["200"]["content"]


# ---------------------------------------------------------------- the page in Chromium, offline
@pytest.fixture(scope="module")
def served_app(demo_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run `uvicorn app.main:create_app` on a free loopback port against the demo database."""
    env = {"SANLING_DATABASE_URL": demo_db_url, "SANLING_JWT_SECRET": TEST_JWT_SECRET,
           "SANLING_PASSWORD_HASH_PROFILE": "fast", "SANLING_DATA_DIR": str(tmp_path_factory.mktemp("served")),
           "SANLING_LOG_JSON": "false", "SANLING_BASEMAP_TILE_URL": "", "SANLING_PUBLIC_RATE_BURST": "50"}
    with served_uvicorn(env, tmp_path_factory.mktemp("log") / "uvicorn.log") as base:
        yield base


def kva_text(value: float) -> str:
    return f"{value:,.0f} kVA"


def test_public_page_offline_on_a_phone(served_app: str, backend: str) -> None:
    """Issue 17 item 7 (R6.2): tap the map, read the capacity the API gives for that point and the disclosure items."""
    base = served_app.replace("127.0.0.1", HOST)
    blocked: list[str] = []
    errors: list[str] = []
    failed: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"public-{backend}.png"
    with sync_playwright() as playwright:
        # geolocation is offered only to a secure context: the test origin stands in for a deployment's HTTPS one
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=[f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
                                                   f"--unsafely-treat-insecure-origin-as-secure={base}"])
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                          device_scale_factor=2, locale="zh-CN", permissions=["geolocation"],
                                          geolocation={"latitude": LOCATED[0], "longitude": LOCATED[1]})

            def route(route: Route) -> None:
                if route.request.url.startswith(base + "/"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort("internetdisconnected")

            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on("response", lambda response: response.status >= 400 and failed.append(
                f"{response.status} {response.url}"))
            page.goto(f"{base}/public")
            try:
                expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=20_000)
            except AssertionError:  # say why: the page's status line and what failed
                raise AssertionError((page.text_content("#status"), failed, errors, blocked)) from None
            page.evaluate("document.fonts.ready")
            text, fonts = chinese_text_fonts(page, "供电能力公开")
            assert_cjk_font(fonts, text)

            # the disclosure items: process and limits per job class, documents, 12398 and the service phone
            assert page.locator("#job-classes .job-class").count() == len(JobClass)
            overhead = page.locator(".job-class[data-job-class=overhead]")
            expect(overhead.locator("h3")).to_contain_text("10 个工作日内接电")
            for step in StepCode:
                expect(overhead).to_contain_text(step.label_zh)
            expect(overhead).to_contain_text("CQ-45 一.2")  # the profile's source, cited
            expect(page.locator("#documents-list")).to_contain_text("有效身份证明或营业执照")
            expect(page.locator("#documents-list")).to_contain_text("用电地址物权（权属）证明（可容缺后补）")
            hotline = page.locator("#phones-list li[data-kind=regulator_hotline] a[href='tel:12398']")
            expect(hotline).to_have_text("12398")
            expect(page.locator("#phones-list li[data-kind=service_phone] a[href='tel:95598']")).to_have_text("95598")
            assert page.locator("path.service-area").count() == 1

            # search by grid-area name centres the map there; then a tap on the map asks the API for that point
            page.fill("#search-input", JINSHAN)
            page.press("#search-input", "Enter")
            expect(page.locator("#capacity-body .grid-area-name")).to_have_text(JINSHAN)
            centre = next(area for area in httpx.get(f"{served_app}{PATH}").json()["grid_areas"]
                          if area["name"] == JINSHAN)
            map_box = page.locator("#map").bounding_box()
            assert map_box is not None
            with page.expect_response(re.compile(r"/api/v1/public/capacity\?")) as tapped:
                # 12 px right of and above the centre: ~60 m at z15, still inside the grid area
                x, y = map_box["x"] + map_box["width"] / 2, map_box["y"] + map_box["height"] / 2
                page.touchscreen.tap(x + 12, y - 12)
            answer = tapped.value.json()
            assert 0 < answer["lon_wgs84"] - centre["lon_wgs84"] < 0.002
            assert 0 < answer["lat_wgs84"] - centre["lat_wgs84"] < 0.002
            here = next(cell for cell in answer["cells"] if cell["is_location_cell"])
            expect(page.locator("#capacity-body .location-largest")).to_have_text(
                kva_text(here["largest_connection_kva"]))
            expect(page.locator("#capacity-body .location-available")).to_have_text(kva_text(here["available_kva"]))
            expect(page.locator("#capacity-body .grid-area-name")).to_have_text(answer["grid_area"]["name"])
            assert page.locator("path.cell").count() == len(answer["cells"]) == 7
            assert page.locator("path.cell.location").count() == 1

            # the browser's position (WGS-84) is a pin too: the pre-controlled rural grid area
            with page.expect_response(re.compile(r"/api/v1/public/capacity\?")) as located:
                page.locator("#locate").tap()
            assert located.value.json()["grid_area"]["precontrol"] is True
            expect(page.locator("#capacity-body .precontrol")).to_contain_text("预管控")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"public page screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert blocked == [] and errors == [] and failed == []
