"""The API docs, the icon and the CJK font work offline, in headless Chromium against uvicorn (issue 17 items 2 and 4).

The browser reaches the test server under a name that is not localhost (as a deployment's users do), and every
request that is not to it is aborted and recorded: the pages must neither need nor even try a CDN. Item 4: with
Debian's ``fonts-noto-cjk`` (scripts/bootstrap.sh) the Chinese of the map page and of a drawing is drawn with a CJK
font, as Chromium itself reports it (the platform fonts that rendered a node's text, over CDP).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from app.platform import migrate
from tests.support.live_server import served_uvicorn

CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/bootstrap.sh --with-test); never `playwright install`
CJK = re.compile(r"[\u4e00-\u9fff]")
HOST = "sanling.test"  # resolved to 127.0.0.1 by Chromium itself (--host-resolver-rules)


@pytest.fixture(scope="module")
def served_app(fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """`uvicorn app.main:create_app` on a free loopback port and a migrated, empty SpatiaLite database (the pages
    read no data, so one backend is enough)."""
    url = fresh_database("spatialite")
    migrate.upgrade(url)
    env = {"SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(tmp_path_factory.mktemp("served")),
           "SANLING_LOG_JSON": "false", "SANLING_BASEMAP_TILE_URL": ""}
    with served_uvicorn(env, tmp_path_factory.mktemp("log") / "uvicorn.log") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=[f"--host-resolver-rules=MAP {HOST} 127.0.0.1"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OfflinePage:
    """A page whose requests beyond the test server are aborted (as with no network) and recorded."""

    page: Page
    base: str
    blocked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@pytest.fixture
def offline(browser: Browser, served_app: str) -> Iterator[OfflinePage]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    result = OfflinePage(page, served_app.replace("127.0.0.1", HOST))

    def route(route: Route) -> None:
        if route.request.url.startswith(result.base + "/"):
            route.continue_()
        else:
            result.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    page.on("pageerror", lambda error: result.errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and "Content Security Policy" in message.text
            and result.refused.append(message.text))
    page.on("requestfailed", lambda request: result.failed.append(request.url))
    page.on("response", lambda response: response.status >= 400 and result.failed.append(
        f"{response.status} {response.url}"))
    try:
        yield result
    finally:
        context.close()


def rendering_fonts(page: Page, selector: str) -> dict[str, int]:
    """The platform fonts Chromium drew the text of ``selector``'s first match with: family name → glyphs."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, f"no {selector} on the page"
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {font["familyName"]: font["glyphCount"] for font in fonts}


MARK_CHINESE = """(wanted) => {
  // the first rendered element whose own text holds Chinese (and ``wanted``, if given), marked for CDP
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    const element = node.parentElement;
    if (/[\\u4e00-\\u9fff]/.test(text) && (!wanted || text.includes(wanted)) && element.getClientRects().length) {
      element.setAttribute("data-cjk-probe", "");
      return text;
    }
  }
  return null;
}"""


def chinese_text_fonts(page: Page, wanted: str | None = None) -> tuple[str, dict[str, int]]:
    """The first visible Chinese text of the page (holding ``wanted``) and the fonts it was drawn with."""
    text = page.evaluate(MARK_CHINESE, wanted)
    assert text, f"no visible Chinese text{f' with {wanted}' if wanted else ''} on the page"
    return text, rendering_fonts(page, "[data-cjk-probe]")


def assert_cjk_font(fonts: dict[str, int], text: str) -> None:
    """Every Chinese character of ``text`` was drawn with a CJK font (none fell back to a box of another font)."""
    cjk_glyphs = sum(count for name, count in fonts.items() if "CJK" in name)
    assert cjk_glyphs >= len(CJK.findall(text)) > 0, fonts


def test_swagger_ui_renders_the_operations_offline(offline: OfflinePage) -> None:
    """Issue 17 item 2: /docs is Swagger UI from app/static/vendor; it showed a blank page without a CDN."""
    page = offline.page
    page.goto(f"{offline.base}/docs")
    create_design = page.locator('.opblock.opblock-post:has(.opblock-summary-path[data-path="/api/v1/designs"])')
    expect(create_design).to_have_count(1, timeout=20_000)
    assert page.locator(".opblock").count() > 40  # every operation, not only the first tag's
    expect(page.locator(".info .title")).to_contain_text("Sanling")
    create_design.locator(".opblock-summary-control").click()  # an operation opens with its request body
    expect(create_design.locator(".opblock-body")).to_be_visible()
    assert offline.blocked == [] and offline.failed == [] and offline.errors == [] and offline.refused == []


def test_redoc_renders_offline(offline: OfflinePage) -> None:
    """Issue 17 item 2: /redoc is ReDoc from app/static/vendor, without Google Fonts."""
    page = offline.page
    page.goto(f"{offline.base}/redoc")
    expect(page.locator(".api-info h1")).to_contain_text("Sanling", timeout=20_000)
    expect(page.locator("[data-section-id='operation/designs-create']")).to_have_count(1)  # POST /api/v1/designs
    assert page.locator("[data-section-id^='operation/']").count() > 40
    assert offline.blocked == [] and offline.errors == []
    # ReDoc 2 always asks cdn.redoc.ly for its logo: the page's Content-Security-Policy keeps that in the browser
    assert offline.failed == ["https://cdn.redoc.ly/redoc/logo-mini.svg"]
    assert len(offline.refused) == 1 and "cdn.redoc.ly" in offline.refused[0]


def test_favicon_is_an_icon(served_app: str) -> None:
    """Issue 17 item 6 (done here with item 2): /favicon.ico was a 404 on every page."""
    response = httpx.get(f"{served_app}/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/x-icon"
    assert response.content[:4] == b"\0\0\1\0"  # an ICO file


def test_docs_pages_are_not_api_operations(served_app: str) -> None:
    """The documentation pages are not operations of the API they document."""
    paths = httpx.get(f"{served_app}/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc", "/docs/oauth2-redirect", "/favicon.ico"} & set(paths)


def test_map_page_chinese_is_drawn_with_a_cjk_font(offline: OfflinePage) -> None:
    """Issue 17 item 4: with Debian's default fonts every Chinese label of the map was a box."""
    page = offline.page
    page.goto(f"{offline.base}/map")
    expect(page.locator("h1")).to_be_visible()
    page.evaluate("document.fonts.ready")
    text, fonts = chinese_text_fonts(page)
    assert_cjk_font(fonts, text)
    assert offline.blocked == [] and offline.errors == []


def test_drawing_chinese_is_drawn_with_the_declared_cjk_font(offline: OfflinePage) -> None:
    """Issue 17 item 4: the works sketch declares a CJK font-family stack, and the installed font draws its title."""
    from design_rules.drawing import render_svg
    from tests.design_rules.test_drawing import sketch

    svg = render_svg(sketch())
    assert "Noto Sans CJK SC" in svg.split("<text", 1)[0]  # the root's font-family, inherited by every text
    page = offline.page
    page.set_content(f"<!doctype html><html lang='zh-CN'><body>{svg}</body></html>")
    text, fonts = chinese_text_fonts(page, "工程建设简图")  # the title block's heading
    assert_cjk_font(fonts, text)
    assert "Noto Sans CJK SC" in fonts, fonts  # the stack's first family, as declared
