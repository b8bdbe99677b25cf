"""/docs (Swagger UI) and /redoc (ReDoc) without a CDN: FastAPI's own pages (get_swagger_ui_html,
get_redoc_html) pointed at script and style files served from here, out of the fastapi-offline package (MIT;
it ships Swagger UI 5's dist files, Apache-2.0, and ReDoc 2's standalone bundle, MIT). create_app turns off
FastAPI's default docs routes, which load their scripts from a CDN and stay blank without internet.

Both pages go out with a Content-Security-Policy that lets them load nothing from elsewhere: ReDoc's sidebar
logo (an image on ReDoc's CDN) is blocked and hidden rather than fetched, and Swagger UI's online validator
badge is off (validatorUrl null).

Without fastapi-offline installed (an older `serve` extra), both pages say how to get it and point at
/openapi.json, which needs no script."""
from __future__ import annotations

import html
from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)
ASSETS_URL = "/docs-assets"
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript"}
PACKAGE = "fastapi-offline"
# this server only; inline script and style: FastAPI's pages start the viewer inline; blob: ReDoc's search worker
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")


def assets_dir() -> Path | None:
    """The folder holding the Swagger UI and ReDoc files (fastapi_offline/static), None when not installed.
    Found without importing the package."""
    spec = find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "static"
    return folder if all((folder / name).is_file() for name in ASSETS) else None


def _missing(title: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                        f"<p>The API documentation page needs the <code>{PACKAGE}</code> package, which ships its "
                        "scripts: <code>pip install 'faceedit[serve]'</code>. The OpenAPI schema itself is at "
                        "<a href=\"/openapi.json\">/openapi.json</a>.</p>", status_code=200)


def _root(request: Request) -> str:
    return request.scope.get("root_path", "") or ""


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


@router.get("/docs")
async def swagger_ui(request: Request):
    title = f"{request.app.title} - API docs"
    if assets_dir() is None:
        return _missing(title)
    root = _root(request)
    return _local_only(get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url, title=title,
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}/favicon.ico",
        swagger_ui_parameters={"validatorUrl": None, **(request.app.swagger_ui_parameters or {})}))


@router.get("/redoc")
async def redoc(request: Request):
    title = f"{request.app.title} - API reference"
    if assets_dir() is None:
        return _missing(title)
    root = _root(request)
    return _local_only(get_redoc_html(openapi_url=root + request.app.openapi_url, title=title,
                                      redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                                      redoc_favicon_url=f"{root}/favicon.ico", with_google_fonts=False))


@router.get(ASSETS_URL + "/{name}")
async def asset(name: str):
    folder = assets_dir()
    if name not in ASSETS or folder is None:  # only the three files, never a path into the package
        raise HTTPException(404, f"no such file: {name}")
    return FileResponse(folder / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})
