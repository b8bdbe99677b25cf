"""The demo page in a real browser: Debian's chromium (installed with apt-get when missing; nothing downloads a
browser build) driven by Playwright's Python package. Upload the astronaut, wait for the attributes, move
Smiling to 0, wait for the new image: the face changed, the rest did not, and the page's after-attributes read
Smiling lower. The sliders span the API's range (-1..2) in plain words ("Beard" sends No_Beard = 1 - value); an
edit that does not take says so, untouched attributes that moved are marked; Reset during a request in flight
leaves the original photo; experimental attributes are grouped apart; /favicon.ico, /docs and /redoc load
nothing from elsewhere. Then the messages for a bad file and a photo without a face (in words, no CLI flags),
the new-faces view, and a phone-sized window.

Screenshots go to the test's temporary folder; with FACEEDIT_SCREENSHOTS=DIR also to DIR (docs/img makes the
README's figure and docs/serving.md's: the astronaut is public domain), each kept under 300 KB."""
from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from test_serve import ASTRONAUT, Server, png

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")


def chromium_path() -> str:
    """Debian's chromium, installed by apt-get when missing (the test machines run as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.fail("chromium is missing and there is no apt-get to install it: install Debian's chromium package")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.fail("apt-get installed chromium but it is not on PATH")
    return found


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def small_png(path: Path, max_bytes: int = 300_000):
    """Rewrite a screenshot as a 256-colour PNG, smaller until it is under max_bytes (the figures live in git)."""
    im = Image.open(path).convert("RGB")
    while True:
        im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
        if path.stat().st_size <= max_bytes:
            return
        im = im.resize((int(im.width * 0.85), int(im.height * 0.85)), Image.LANCZOS)


def save_screenshot(page, tmp_path: Path, name: str):
    page.screenshot(path=str(tmp_path / name), full_page=True)
    small_png(tmp_path / name)
    target = os.environ.get("FACEEDIT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(target) / name)


def data_url_image(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,"), url[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def test_upload_move_smiling_and_see_only_the_face_change(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.set_input_files("#file", str(ASTRONAUT))
    slider = page.locator("#attr-Smiling")
    slider.wait_for(state="visible", timeout=60_000)
    start = float(slider.input_value())
    assert start > 0.5                                      # the model reads the astronaut as smiling
    page.wait_for_selector("#recon[src]", timeout=60_000)    # the reconstruction arrived
    box = page.evaluate("state.faces[state.face].box")
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("-1", "2")  # the API's range
    slider.focus()
    page.keyboard.press("Home")                             # the keyboard reaches both ends
    assert float(slider.input_value()) == -1.0
    page.keyboard.press("End")
    assert float(slider.input_value()) == 2.0
    slider.fill("0")                                        # the newest value wins: the edits before are dropped
    assert float(slider.input_value()) == 0.0
    page.wait_for_selector("#result[data-seq]", timeout=60_000)
    page.wait_for_selector("#out-Smiling[data-after]", timeout=10_000)
    after = float(page.get_attribute("#out-Smiling", "data-after"))
    assert after < start, (start, after)
    assert "→" in page.inner_text("#out-Smiling")

    edited = data_url_image(page.get_attribute("#result", "src"))
    original = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    assert edited.shape == original.shape                   # full resolution
    changed = np.abs(edited.astype(int) - original).sum(2) > 0
    x, y, w, h = box
    assert changed[y:y + h, x:x + w].mean() > 0.3           # the face region changed
    outside = changed.copy()
    outside[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = False
    assert not outside.any()                                # the rest did not
    assert page.get_attribute("#download", "aria-disabled") == "false"
    assert page.get_attribute("#download", "href").startswith("data:image/png;base64,")
    assert "last edit" in page.inner_text("#latency")
    page.locator("#compare").fill("50")                     # the before/after split
    save_screenshot(page, tmp_path, "serve-demo.png")

    page.set_viewport_size({"width": 390, "height": 844})   # a phone: one column, nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    save_screenshot(page, tmp_path, "serve-demo-phone.png")
    assert not errors, errors
    page.close()


def open_astronaut(server, browser, **kw):
    page = browser.new_page(viewport={"width": 1200, "height": 900}, **kw)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.set_input_files("#file", str(ASTRONAUT))
    page.locator("#attr-Smiling").wait_for(state="visible", timeout=60_000)
    return page, errors


def edit(page, selector: str, value: str) -> dict:
    """Move one slider and wait for the page to show the answer; returns the face of the API's JSON answer
    (kept by the page: Chromium may drop a large response body before the test can read it)."""
    page.locator(selector).fill(value)
    page.wait_for_selector("#result[data-seq]", timeout=120_000)
    return page.evaluate("state.lastFace")


def test_range_labels_readings_and_an_edit_that_does_not_take(server, browser, tmp_path):
    page, errors = open_astronaut(server, browser)
    start = page.evaluate("({...state.before})")
    beard = page.locator("#attr-No_Beard")                  # No_Beard, shown the other way round
    assert page.inner_text("label[for=attr-No_Beard]") == "Beard"
    assert page.inner_text("label[for=attr-Mouth_Slightly_Open]") == "Mouth open"
    assert page.inner_text("label[for=attr-Pale_Skin]") == "Pale skin"
    assert abs(float(beard.input_value()) - round(start["No_Beard"], 2)) < 1e-9
    assert start["No_Beard"] < 0.5                          # the astronaut has no beard: "Beard" reads low
    labels = page.evaluate("[...document.querySelectorAll('.attr label')].map(l => [l.textContent, "
                           "l.scrollWidth <= l.clientWidth + 1, l.getBoundingClientRect().height])")
    assert len(labels) == 14 and all(fits for _, fits, _ in labels), labels   # nothing cut off
    assert all(h > 0 for _, _, h in labels)

    # beyond 1: the Beard slider at 1.5 sends No_Beard = 1 - 1.5 = -0.5, within the API's -1..2
    with page.expect_request(lambda r: "/v1/edit?" in r.url, timeout=60_000) as sent:
        beard.fill("1.5")
    assert parse_qs(urlsplit(sent.value.url).query)["set"] == ["No_Beard=-0.50"]
    assert float(beard.input_value()) == 1.5
    assert "beyond" in page.get_attribute("#row-No_Beard", "class")
    page.wait_for_selector("#out-No_Beard[data-after]", timeout=120_000)
    assert "→" in page.inner_text("#out-No_Beard")         # before -> after, the model's own reading

    # an edit that does not take: the shipped model asked for a mustache on the astronaut still reads none
    page.click("#reset")
    face = edit(page, "#attr-Mustache", "1")
    after = face["attributes_after"]
    assert after["Mustache"] < 0.5, f"the test needs an edit that does not take; Mustache read {after['Mustache']}"
    note = page.inner_text("#note-Mustache")
    assert "did not take" in note and "off" in note
    summary = page.inner_text("#summary")
    assert summary.startswith("Did not take: Mustache") and "not-taken" in page.get_attribute("#row-Mustache", "class")
    out = page.inner_text("#out-Mustache")
    assert out == f"{face['attributes']['Mustache']:.2f} → {after['Mustache']:.2f}", out
    # every attribute shows its reading before -> after; the untouched ones that moved by more than 0.15 are marked
    implied = set(face["implied"] or {})
    for name, p in after.items():
        assert "→" in page.inner_text(f"#out-{name}")
        moved = abs(p - face["attributes"][name]) > 0.15 and name != "Mustache" and name not in implied
        assert moved == ("drift" in page.get_attribute(f"#row-{name}", "class")), name
        if moved:
            assert "moved by itself" in page.inner_text(f"#note-{name}")
            label = page.inner_text(f"label[for=attr-{name}]")
            assert label in summary and "Also moved, untouched" in summary
    page.locator("#compare").fill("50")
    save_screenshot(page, tmp_path, "page-edit-not-taken.png")
    assert (tmp_path / "page-edit-not-taken.png").stat().st_size < 300_000
    assert not errors, errors
    page.close()


def test_reset_during_a_request_in_flight_leaves_the_original(server, browser):
    page, errors = open_astronaut(server, browser)
    smiling = page.locator("#attr-Smiling")
    start = smiling.input_value()
    finished = []
    page.on("requestfinished", lambda r: finished.append(r.url) if "/v1/edit?" in r.url else None)
    page.on("requestfailed", lambda r: finished.append(r.url) if "/v1/edit?" in r.url else None)
    with page.expect_request(lambda r: "/v1/edit?" in r.url, timeout=60_000):
        smiling.fill("0")
    assert not finished                                     # the edit is in flight (the model takes > 100 ms)
    page.click("#reset")
    page.wait_for_function("document.getElementById('edit-state').textContent === ''", timeout=10_000)
    page.wait_for_timeout(200)
    deadline = 120_000
    while not finished and deadline > 0:                    # its answer came (or the page aborted it) ...
        page.wait_for_timeout(250)
        deadline -= 250
    page.wait_for_timeout(1500)                              # ... and, had it been shown, would be by now
    assert page.get_attribute("#result", "src") is None     # the original photo, not the stale edit
    assert page.is_hidden("#result") and page.is_visible("#photo")
    assert smiling.input_value() == start
    assert page.get_attribute("#out-Smiling", "data-after") is None
    assert page.inner_text("#summary") == "" and page.inner_text("#message") == ""
    assert not errors, errors
    page.close()


def with_tiers(page, server, tiers):
    """Answer /v1/model with the real model info, its tiers replaced (None: the entry absent, an older model)."""
    def handle(route):
        info = route.fetch().json()
        info.pop("tiers", None)
        if tiers is not None:
            info["tiers"] = tiers
        route.fulfill(json=info)
    page.route(server.url + "/v1/model", handle)


@pytest.mark.parametrize("tiers", [{"Bald": "experimental", "Mustache": "experimental", "Smiling": "stable"}, None])
def test_experimental_attributes_are_grouped_apart(server, browser, tiers):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    with_tiers(page, server, tiers)
    page.goto(server.url + "/")
    page.set_input_files("#file", str(ASTRONAUT))
    page.locator("#attr-Smiling").wait_for(state="visible", timeout=60_000)
    stable = page.evaluate("[...document.querySelectorAll('#sliders .attr')].map(r => r.dataset.name)")
    experimental = page.evaluate("[...document.querySelectorAll('#sliders-experimental .attr')].map(r => r.dataset.name)")
    if tiers is None:                                       # no tiers: every attribute is stable
        assert len(stable) == 14 and experimental == [] and page.is_hidden("#experimental")
    else:
        assert experimental == ["Bald", "Mustache"] and len(stable) == 12 and "Smiling" in stable
        assert page.is_visible("#experimental")
        assert "do not look like photos yet" in page.inner_text("#experimental")
    page.close()


def test_favicon_and_the_api_docs_load_nothing_from_elsewhere(server, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    icon = page.request.get(server.url + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
    answered = []
    page.on("response", lambda r: answered.append(r.url))
    for path, rendered in (("/docs", ".swagger-ui .opblock"), ("/redoc", "h1:has-text('faceedit')")):
        answered.clear()
        page.goto(server.url + path, wait_until="commit", timeout=120_000)
        page.wait_for_selector(rendered, timeout=120_000)   # the viewer ran and drew the API
        scripts = page.evaluate("[...document.scripts].map(s => s.src).filter(Boolean)")
        assert scripts and all(s.startswith(server.url + "/docs-assets/") for s in scripts), scripts
        assert all(u.startswith((server.url, "blob:", "data:")) for u in answered), answered
        if path == "/docs":
            assert page.locator(".swagger-ui .opblock", has_text="/v1/edit").count() == 1
    page.close()


def test_messages_for_a_bad_file_and_no_face(server, browser, tmp_path):
    page = browser.new_page()
    page.goto(server.url + "/")
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image at all")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("document.getElementById('message').textContent.includes('not an image')", timeout=30_000)
    blank = tmp_path / "blank.png"
    blank.write_bytes(png(np.full((200, 200, 3), 200, np.uint8)))
    page.set_input_files("#file", str(blank))
    page.wait_for_function("document.getElementById('message').textContent.includes('No face found')", timeout=30_000)
    assert page.is_hidden("#workspace")
    assert "--" not in page.inner_text("#message")          # the server's text names CLI flags; the page does not
    page.close()


def test_new_faces_view(server, browser):
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#sample-attrs select", state="attached", timeout=30_000)
    page.click("#tab-sample")
    page.select_option("#sample-attrs select[data-name=Smiling]", "1")
    page.fill("#sample-count", "4")
    page.click("#sample-go")
    page.wait_for_function("document.querySelectorAll('#samples img').length === 4", timeout=30_000)
    how = page.inner_text("#sample-how")                    # how they were drawn (/v1/samples' prior and seed)
    assert "latent prior (temperature" in how and "seed" in how, how
    page.focus("#tab-sample")
    page.keyboard.press("ArrowLeft")                        # tabs switch from the keyboard
    assert page.is_visible("#view-edit") and page.is_hidden("#view-sample")
    page.close()
