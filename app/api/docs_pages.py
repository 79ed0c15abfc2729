"""The API documentation pages (/docs: Swagger UI, /redoc: ReDoc) and /favicon.ico, all from vendored files.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so offline (the service's usual place) /docs was a
blank page. Here the same HTML comes from FastAPI's ``get_swagger_ui_html`` / ``get_redoc_html`` ("Self-hosting
JavaScript and CSS for docs") with the scripts of ``app/static/vendor`` (npm ``swagger-ui-dist`` and ``redoc``,
copied by ``web/vendor.sh``); ``create_app`` turns FastAPI's pages off (``docs_url=None, redoc_url=None``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(tags=["docs"], include_in_schema=False)

#: Served at /static by create_app; the vendored libraries are under vendor/ (web/vendor.sh).
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
FAVICON = STATIC_DIR / "favicon.ico"
SWAGGER_JS = "/static/vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "/static/vendor/swagger-ui/swagger-ui.css"
REDOC_JS = "/static/vendor/redoc/redoc.standalone.js"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
#: The pages load nothing from elsewhere, whatever the bundles try: ReDoc 2 always asks cdn.redoc.ly for its
#: "API docs by Redocly" logo (and hides it when that fails). Inline script: the pages' set-up code (FastAPI's);
#: inline styles: Swagger UI and ReDoc's styled-components; blob: workers: ReDoc's search.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
#: Swagger UI's online validator sends the OpenAPI document's URL to validator.swagger.io: never.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def _self_contained(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def _root(request: Request) -> str:
    """The path prefix the app is served under (``root_path`` behind a proxy), as FastAPI's own pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs", response_class=HTMLResponse)
def read_swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI of the OpenAPI document, with its script, style sheet and icon from this server."""
    root, app = _root(request), request.app
    return _self_contained(get_swagger_ui_html(
        openapi_url=root + app.openapi_url, title=f"{app.title} - Swagger UI",
        swagger_js_url=root + SWAGGER_JS, swagger_css_url=root + SWAGGER_CSS,
        swagger_favicon_url=root + "/favicon.ico", oauth2_redirect_url=root + OAUTH2_REDIRECT,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})}))


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
def read_swagger_ui_oauth2_redirect() -> HTMLResponse:
    """The page Swagger UI's OAuth2 authorisation-code and implicit flows return to."""
    return _self_contained(get_swagger_ui_oauth2_redirect_html())


@router.get("/redoc", response_class=HTMLResponse)
def read_redoc(request: Request) -> HTMLResponse:
    """ReDoc of the OpenAPI document, from this server and without Google Fonts (the system's fonts)."""
    root, app = _root(request), request.app
    return _self_contained(get_redoc_html(openapi_url=root + app.openapi_url, title=f"{app.title} - ReDoc",
                                          redoc_js_url=root + REDOC_JS, redoc_favicon_url=root + "/favicon.ico",
                                          with_google_fonts=False))


@router.get("/favicon.ico", response_class=FileResponse)
def read_favicon() -> FileResponse:
    """Sanling's icon (三 on blue, drawn by ``web/favicon.py``), which browsers ask for on every page."""
    return FileResponse(FAVICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
