"""The demo page in a real browser: Debian's chromium (installed with apt-get when missing; nothing downloads a
browser build) driven by Playwright's Python package. Upload the astronaut, wait for the attributes, move
Smiling to 0 with the keyboard, wait for the new image: the face changed, the rest did not, and the page's
after-attributes read Smiling lower. Then the messages for a bad file and a photo without a face, the new-faces
view, and a phone-sized window.

Screenshots go to the test's temporary folder; with FACEEDIT_SCREENSHOTS=DIR also to DIR (docs/img makes the
README's figure: the astronaut is public domain)."""
from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from pathlib import Path

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


def save_screenshot(page, tmp_path: Path, name: str):
    page.screenshot(path=str(tmp_path / name), full_page=True)
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
    slider.focus()
    page.keyboard.press("Home")                             # the keyboard moves the slider to 0
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
    page.focus("#tab-sample")
    page.keyboard.press("ArrowLeft")                        # tabs switch from the keyboard
    assert page.is_visible("#view-edit") and page.is_hidden("#view-sample")
    page.close()
