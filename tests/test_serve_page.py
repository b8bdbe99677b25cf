"""The page's own routes without a model or a browser: /favicon.ico, and /docs and /redoc served from the
installed fastapi-offline package (no CDN), called straight through the ASGI app (the model-loading lifespan
does not run: these routes do not need the service). The static files speak to a web user: no CLI flags."""
from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")
from faceedit.serve.app import create_app  # noqa: E402
from faceedit.serve.routes import docs, page  # noqa: E402

STATIC = Path(page.STATIC)


def asgi_get(app, path: str) -> tuple[int, dict, bytes]:
    """One GET through the ASGI app: (status, headers, body)."""
    out = {"status": 0, "headers": {}, "body": b""}

    sent = []

    async def receive():  # the request once; after it the client stays connected (Starlette listens for a disconnect)
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return out["status"], out["headers"], out["body"]


@pytest.fixture(scope="module")
def app():
    return create_app()


def test_favicon_is_served_and_is_an_icon(app):
    status, headers, body = asgi_get(app, "/favicon.ico")
    assert status == 200 and headers["content-type"] == "image/x-icon"
    icon = Image.open(io.BytesIO(body))
    assert icon.format == "ICO" and {(16, 16), (32, 32)} <= set(icon.info["sizes"])
    svg = (STATIC / "favicon.svg").read_text()
    assert svg.startswith("<svg") and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize("path, script", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_pages_load_everything_from_this_server(app, path, script):
    assert docs.assets_dir() is not None, "fastapi-offline is part of the serve extra: pip install -e '.[serve]'"
    status, headers, body = asgi_get(app, path)
    assert status == 200
    html = body.decode()
    urls = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html)
    assert f"/docs-assets/{script}" in urls
    assert all(u.startswith("/") for u in urls), urls       # no CDN, no Google fonts
    assert "cdn." not in html and "fonts.googleapis" not in html
    csp = headers["content-security-policy"]                 # what the viewers may load: this server only
    assert "default-src 'self'" in csp and "img-src 'self' data:" in csp
    if path == "/docs":
        assert '"validatorUrl": null' in html                # Swagger UI's online validator badge is off


def test_docs_assets_are_the_three_files_and_nothing_else(app):
    for name, media in docs.ASSETS.items():
        status, headers, body = asgi_get(app, f"/docs-assets/{name}")
        assert status == 200 and headers["content-type"].startswith(media) and len(body) > 100_000
    for bad in ("/docs-assets/core.py", "/docs-assets/..%2Fcore.py", "/docs-assets/favicon.png"):
        assert asgi_get(app, bad)[0] == 404


def test_docs_without_fastapi_offline_say_how_to_get_it(app, monkeypatch):
    monkeypatch.setattr(docs, "assets_dir", lambda: None)
    status, _, body = asgi_get(app, "/docs")
    assert status == 200 and b"fastapi-offline" in body and b"/openapi.json" in body
    assert asgi_get(app, "/docs-assets/swagger-ui-bundle.js")[0] == 404


def test_the_page_speaks_to_a_web_user():
    js = (STATIC / "app.js").read_text()
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"--[a-z]", js + html), "CLI flags on the page"
    assert not re.search(r"(src|href)=\"https?:", html), "the page loads nothing from elsewhere"
    assert 'No_Beard: "Beard"' in js and 'Mouth_Slightly_Open: "Mouth open"' in js
    assert 'min="-1" max="2"' in js                        # the API's range, not 0..1
    assert 'rel="icon"' in html
