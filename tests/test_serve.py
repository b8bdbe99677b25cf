"""`faceedit serve` as a real process on a free loopback port, with the shipped model: every route, every
error as one JSON line with its status, 503 from a tiny queue, 504 from a short time limit, SIGTERM with a
request in flight, and 64 concurrent clients each getting their own answer from shared batches.

Photos: examples/astronaut.jpg (public domain; a copy ships in the page's static files) and crops of it."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import request

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"


# ---- a real server process -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`faceedit serve ARGS` in a subprocess; stops it (SIGTERM, then SIGKILL) on close."""

    def __init__(self, *args, startup_s: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from faceedit.cli.main import app; app()", "serve", "--port", str(self.port),
             "--log-level", "warning", *map(str, args)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faceedit serve exited {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                if get(self.url + "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("faceedit serve did not start in time")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def get(url, **kw):
    return request("GET", url, **kw)


def post(url, body: bytes, **kw):
    return request("POST", url, body, {"Content-Type": "application/octet-stream"}, **kw)


def post_json(url, obj):
    return request("POST", url, json.dumps(obj).encode(), {"Content-Type": "application/json"})


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def assert_error(resp, status, kind=None, contains=None):
    code, headers, body = resp
    assert code == status, (code, body[:300])
    d = json.loads(body)
    assert set(d) == {"error", "status", "kind", "field", "request_id"} and d["status"] == status
    assert d["request_id"] and headers["x-request-id"] == d["request_id"]
    assert "\n" not in d["error"] and d["error"]
    if kind:
        assert d["kind"] == kind, d
    if contains:
        assert contains in d["error"], d["error"]
    return d, headers


def metric(text: str, name: str, **labels) -> float:
    """Sum of the samples of one metric whose labels include the given ones."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        key = head.split("{")[0]
        if key != name:
            continue
        lab = dict(kv.split("=", 1) for kv in head[len(key) + 1:-1].split(",") if "=" in kv) if "{" in head else {}
        if all(lab.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total


# ---- photos ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def astronaut_bytes() -> bytes:
    return ASTRONAUT.read_bytes()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def face_crops(astronaut: np.ndarray, n: int) -> list[np.ndarray]:
    """n different aligned-style square crops around the astronaut's face (shifted, some mirrored)."""
    out = []
    for i in range(n):
        x0, y0 = 150 + 3 * (i % 8), 40 + 3 * (i // 8)
        c = astronaut[y0:y0 + 150, x0:x0 + 150]
        out.append(np.ascontiguousarray(c[:, ::-1] if i % 2 else c))
    return out


# ---- the main server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    s = Server("--max-upload-mb", 1, "--max-pixels", 4, "--max-batch", 32, "--max-delay-ms", 20,
               "--cors", "http://allowed.example")
    yield s
    s.close()


def test_health_ready_and_model(server):
    assert get(server.url + "/healthz")[0] == 200
    code, _, body = get(server.url + "/readyz")
    assert code == 200 and json.loads(body)["status"] == "ready"
    code, _, body = get(server.url + "/v1/model")
    m = json.loads(body)
    assert code == 200 and "Smiling" in m["attributes"] and m["value_range"] == [-1.0, 2.0]
    assert m["checksum"].startswith("sha256:") and len(m["checksum"]) == 7 + 64
    assert m["backend"] and m["precision"] and m["model_id"]


def test_page_static_files_and_openapi(server, astronaut_bytes):
    code, headers, body = get(server.url + "/")
    assert code == 200 and headers["content-type"].startswith("text/html")
    assert b"/static/app.js" in body and b"http://" not in body and b"https://" not in body  # nothing external
    for name in ("app.js", "style.css"):
        code, _, body = get(f"{server.url}/static/{name}")
        assert code == 200 and b"https://" not in body and b"http://" not in body  # nothing from a CDN
    code, _, body = get(server.url + "/static/astronaut.jpg")
    assert code == 200 and body == astronaut_bytes
    code, _, body = get(server.url + "/openapi.json")
    paths = json.loads(body)["paths"]
    assert {"/v1/edit", "/v1/attributes", "/v1/reconstruct", "/v1/samples", "/v1/model"} <= set(paths)
    assert get(server.url + "/docs")[0] == 200


def test_cors_only_for_the_origin_given(server):
    ok = get(server.url + "/v1/model", headers={"Origin": "http://allowed.example"})
    assert ok[1].get("access-control-allow-origin") == "http://allowed.example"
    other = get(server.url + "/v1/model", headers={"Origin": "http://elsewhere.example"})
    assert other[0] == 200 and "access-control-allow-origin" not in other[1]


def test_attributes_of_the_astronaut(server, astronaut_bytes):
    code, _, body = post(server.url + "/v1/attributes", astronaut_bytes)
    assert code == 200
    d = json.loads(body)
    assert (d["width"], d["height"]) == (512, 512) and d["faces_found"] == 1
    f = d["faces"][0]
    x, y, w, h = f["box"]
    assert 120 < x + w / 2 < 330 and 40 < y + h / 2 < 240   # the astronaut's face
    assert len(f["eyes"]) == 2 and f["eyes"][0][0] < f["eyes"][1][0]
    assert f["attributes"]["Smiling"] > 0.5 and 0 <= min(f["attributes"].values()) <= max(f["attributes"].values()) <= 1


def test_edit_matches_the_cli_and_changes_only_the_face(server, astronaut_bytes, astronaut, tmp_path):
    code, _, body = post(server.url + "/v1/edit?set=smiling=0&format=png", astronaut_bytes)
    assert code == 200
    d = json.loads(body)
    out = decode(d["image"])
    assert out.shape == astronaut.shape and d["format"] == "png" and d["media_type"] == "image/png"
    f = d["faces"][0]
    assert f["attributes_after"]["Smiling"] < f["attributes"]["Smiling"]
    assert isinstance(f["auto_strength"], dict) and isinstance(f["implied"], dict)
    changed = np.abs(out.astype(int) - astronaut).sum(2) > 0
    x, y, w, h = f["box"]
    assert changed[y:y + h, x:x + w].mean() > 0.3      # the face changed
    outside = changed.copy()
    outside[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = False
    assert not outside.any()                           # far from the face, not one pixel did
    # the same pixels as `faceedit run` (PhotoEditor in process)
    from faceedit.engine import Editor
    from faceedit.engine.imageio import Photo
    from faceedit.engine.photo import PhotoEditor
    ref = PhotoEditor(Editor.load()).edit([Photo(astronaut, None)], {"smiling": 0})[0]
    assert np.abs(ref.photo.rgb.astype(int) - out).max() <= 2


def test_cli_service_and_editor_paths_give_the_same_bytes():
    """One edit path from request to pixels: `faceedit run`'s PhotoEditor.edit, the service's FaceService.edit
    (through its JobBatcher, in process, no HTTP; the requests in flight together, options differing) and a
    direct Editor.edit_crops pasted by PhotoEditor.finish_photo give the same photo, PNG byte for byte; and
    evaluation (eval.adapter.render, what `faceedit eval` scores) renders the same crop, pixel for pixel. The Ray
    deployment serves through the same FaceService (serve/ray_app.py)."""
    import asyncio

    from skimage.data import astronaut as skimage_astronaut

    from faceedit.engine.imageio import Photo
    from faceedit.serve.service import FaceService, ServiceConfig, encode_image
    rgb = skimage_astronaut()
    svc = FaceService(ServiceConfig(max_delay_ms=100, decode_wait_s=120))  # a cold detector may take seconds
    try:
        ed, pe = svc.editor, svc.photo_editor
        asks = [ed.request({"smiling": 0}), ed.request({"black_hair": 1}, filtered=False),
                ed.request({"mustache": 1}, implied=False, auto_strength=False), ed.request({"young": 1}, raw=True)]

        async def together():
            return await asyncio.gather(*(svc.edit(png(rgb), r) for r in asks))
        served = asyncio.run(together())
        for r, (encoded, fmt, size, found, faces) in zip(asks, served):
            cli = pe.edit([Photo(rgb, None)], r)[0]
            jobs = pe.prepare(Photo(rgb, None))
            edits = ed.edit_crops([j.crop for j in jobs], r)
            images = [pe.finish_crop(j, im, r) for j, im in zip(jobs, edits.images)]
            direct = pe.finish_photo(Photo(rgb, None), jobs, edits.finished(images, ed.attributes(images)))
            assert fmt == "PNG" and size == rgb.shape[:2] and found == 1 and len(faces) == len(cli.faces) == 1
            for photo in (cli.photo, direct.photo):
                assert encode_image(photo.rgb, None, "PNG") == encoded, r.values
            assert not np.array_equal(cli.photo.rgb, rgb)
            if not (r.raw or not r.filtered or not r.implied):  # eval renders the product's default options
                from faceedit.eval.adapter import render
                values = np.array([[r.values.get(n, 0.0) for n in ed.attribute_names]], np.float32)
                mask = np.array([[n in r.values for n in ed.attribute_names]])
                scored = render(ed, [jobs[0].crop], values, mask, auto_strength=r.auto_strength)
                assert np.array_equal(scored.images[0], edits.images[0]), r.values
            for a, b in ((faces[0], cli.faces[0]), (direct.faces[0], cli.faces[0])):
                assert (a.box, a.how, a.pushed, a.implied) == (b.box, b.how, b.pushed, b.implied)
                np.testing.assert_allclose(list(a.before.values()), list(b.before.values()), atol=1e-5)
                np.testing.assert_allclose(list(a.after.values()), list(b.after.values()), atol=1e-5)
    finally:
        svc.close()


def test_edit_formats_options_and_face_choice(server, astronaut_bytes):
    for fmt, magic in (("jpeg", b"\xff\xd8"), ("webp", b"RIFF")):
        code, _, body = post(server.url + f"/v1/edit?set=young=1&format={fmt}", astronaut_bytes)
        d = json.loads(body)
        assert code == 200 and base64.b64decode(d["image"])[:4].startswith(magic)
    code, _, body = post(server.url + "/v1/edit?set=mustache=1&literal=true&fixed_strength=true&raw=true&face=0",
                         astronaut_bytes)
    d = json.loads(body)
    assert code == 200 and d["faces"][0]["implied"] == {} and d["faces"][0]["auto_strength"] == {}
    code, _, body = post(server.url + "/v1/edit?set=mustache=1", astronaut_bytes)
    assert code == 200 and json.loads(body)["faces"][0]["implied"]  # the model's rules set Male/No_Beard


def test_edit_filter_on_by_default_and_off_on_request(server, astronaut_bytes, astronaut):
    # the shipped model filters black-hair edits (engine.edit_filter); unfiltered=true adds the change as it comes
    from faceedit.engine import Editor
    from faceedit.engine.imageio import Photo
    from faceedit.engine.photo import PhotoEditor
    assert json.loads(get(server.url + "/v1/model")[2])["edit_filter"] is True
    outs = {}
    for q in ("", "&unfiltered=true"):
        code, _, body = post(server.url + f"/v1/edit?set=black_hair=1&format=png{q}", astronaut_bytes)
        assert code == 200
        outs[q] = decode(json.loads(body)["image"]).astype(int)
    for q, on in (("", True), ("&unfiltered=true", False)):
        ref = PhotoEditor(Editor.load(edit_filter=on)).edit([Photo(astronaut, None)], {"black_hair": 1})[0]
        assert np.abs(ref.photo.rgb.astype(int) - outs[q]).max() <= 2
    assert np.abs(outs[""] - outs["&unfiltered=true"]).max() > 20


def test_aligned_crop_edit_and_reconstruction(server, astronaut):
    crop = png(face_crops(astronaut, 1)[0])
    code, _, body = post(server.url + "/v1/edit?aligned=true&set=smiling=0", crop)
    d = json.loads(body)
    assert code == 200 and (d["width"], d["height"]) == (150, 150)
    code, _, body = post(server.url + "/v1/reconstruct?aligned=true", crop)
    d = json.loads(body)
    assert code == 200
    rec, inp = decode(d["faces"][0]["reconstruction"]), decode(d["faces"][0]["crop"])
    assert rec.shape == inp.shape == (150, 150, 3)
    assert 2 < np.abs(rec.astype(int) - inp).mean() < 60   # a reconstruction: close, not a copy


def test_samples(server):
    code, _, body = post_json(server.url + "/v1/samples", {"attributes": {"smiling": 1}, "count": 3, "seed": 7})
    d = json.loads(body)
    assert code == 200 and len(d["images"]) == 3
    faces = [decode(b) for b in d["images"]]
    assert faces[0].shape[2] == 3 and not np.array_equal(faces[0], faces[1])
    again = json.loads(post_json(server.url + "/v1/samples", {"attributes": {"smiling": 1}, "count": 3, "seed": 7})[2])
    assert again["images"] == d["images"]       # same seed, same faces
    assert d["seed"] == 7 and d["prior"]["kind"] == "gaussian" and d["warnings"] == []  # how they were drawn
    fresh = json.loads(post_json(server.url + "/v1/samples", {"count": 2})[2])
    same = json.loads(post_json(server.url + "/v1/samples", {"count": 2, "seed": fresh["seed"]})[2])
    assert same["images"] == fresh["images"]    # no seed: a fresh one, given back, draws the same faces again


def test_every_bad_request_is_one_json_error(server, astronaut_bytes, astronaut):
    u = server.url
    assert_error(post(u + "/v1/attributes", b"this is not an image"), 400, "bad_image", "not an image")
    assert_error(post(u + "/v1/attributes", astronaut_bytes[:2000]), 400, "bad_image", "corrupt")
    assert_error(post(u + "/v1/attributes", b""), 400, "bad_image")
    flat = png(np.full((300, 300, 3), 128, np.uint8))
    assert_error(post(u + "/v1/edit?set=smiling=0", flat), 422, "no_face", "no face found")
    d, _ = assert_error(post(u + "/v1/edit?set=smilng=0", astronaut_bytes), 422, "bad_request", "unknown attribute")
    assert "Did you mean 'smiling'" in d["error"]
    assert_error(post(u + "/v1/edit?set=smiling=7", astronaut_bytes), 422, "bad_request", "out of range")
    assert_error(post(u + "/v1/edit?set=smiling", astronaut_bytes), 422, "bad_request", "NAME=VALUE")
    assert_error(post(u + "/v1/edit", astronaut_bytes), 422, "bad_request", "nothing to change")
    assert_error(post(u + "/v1/edit?set=young=1&face=3", astronaut_bytes), 422, "bad_request", "has 1 face")
    assert_error(post(u + "/v1/edit?set=young=1&format=gif", astronaut_bytes), 422, "bad_request", "png, jpeg, webp")
    assert_error(post(u + "/v1/edit?set=young=1&aligned=maybe", astronaut_bytes), 422, "bad_request")
    assert_error(post_json(u + "/v1/samples", {"count": 0}), 422, "bad_request", "count")
    assert assert_error(post_json(u + "/v1/samples", {"seed": -1}), 422, "bad_request", "seed")[0]["field"] == "seed"
    assert assert_error(post(u + "/v1/edit?set=smiling=7", astronaut_bytes), 422)[0]["field"] == "set"
    assert_error(post_json(u + "/v1/samples", {"attributes": {"bald": 9}}), 422, "bad_request", "out of range")
    assert_error(get(u + "/v1/nothing"), 404, "not_found")
    assert_error(get(u + "/v1/edit"), 405)
    # too many pixels (the server runs with --max-pixels 4): refused from the header, before decoding
    big = png(np.zeros((2100, 2100, 3), np.uint8))
    assert_error(post(u + "/v1/attributes", big), 413, "too_many_pixels", "over this server's 4 MP limit")
    assert get(u + "/healthz")[0] == 200  # nothing crashed


def png_bomb(side: int = 40000) -> bytes:
    """A real side x side 1-bit PNG of zeros: ~25 kB on the wire, 1.6 GP (4.8 GB as RGB) if decoded."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    comp = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_png_bomb_is_refused_before_decoding(server):
    bomb = png_bomb()
    assert len(bomb) < 1_000_000
    t = time.perf_counter()
    assert_error(post(server.url + "/v1/edit?set=smiling=0", bomb), 413, "too_many_pixels", "40000x40000")
    assert time.perf_counter() - t < 5   # decoding 1.6 GP would take far longer (and 4.8 GB)


def test_upload_over_the_byte_limit_is_refused_before_the_body_is_read(server):
    # --max-upload-mb 1: announce 50 MB, send 1 kB, and get 413 without sending the rest
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /v1/edit?set=smiling=0 HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 52428800\r\n\r\n" + b"\0" * 1024)
        reply = b""
        while True:  # the whole answer: headers, then Content-Length bytes of body
            part = s.recv(65536)
            reply += part
            head, _, body = reply.decode("latin-1").partition("\r\n\r\n")
            length = [int(h.split(":")[1]) for h in head.split("\r\n") if h.lower().startswith("content-length:")]
            if not part or (length and len(body) >= length[0]):
                break
    assert head.startswith("HTTP/1.1 413"), head
    assert "over this server's 1 MB limit" in json.loads(body)["error"]
    # a chunked body (no Content-Length) is cut off once it passes the limit
    def chunks():
        for _ in range(64):
            yield b"\0" * 65536
    req = urllib.request.Request(server.url + "/v1/attributes", data=chunks(), method="POST",
                                 headers={"Content-Type": "image/png", "Transfer-Encoding": "chunked"})
    try:
        urllib.request.urlopen(req, timeout=30)
        raise AssertionError("a 4 MB chunked upload was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 413 and json.loads(e.read())["kind"] == "too_big"
    except (ConnectionError, urllib.error.URLError):
        pass  # the server answered 413 and closed while the client was still sending: also refused


@pytest.mark.slow
def test_64_clients_each_get_their_own_answer_from_shared_batches(server, astronaut):
    names = ["smiling", "young", "male", "blond_hair", "black_hair", "eyeglasses", "bangs", "pale_skin"]
    crops = face_crops(astronaut, 64)
    jobs = [(png(c), f"set={names[i % 8]}={(i // 8) % 2}") for i, c in enumerate(crops)]

    def call(job):
        body, q = job
        code, _, raw = post(f"{server.url}/v1/edit?aligned=true&{q}", body)
        assert code == 200, raw[:200]
        return decode(json.loads(raw)["image"])
    single = [call(j) for j in jobs]  # one at a time: each alone in its batch
    before = get(server.url + "/metrics")[2].decode()
    barrier = threading.Barrier(64)

    def together(job):
        barrier.wait()
        return call(job)
    with ThreadPoolExecutor(64) as pool:
        concurrent = list(pool.map(together, jobs))
    after = get(server.url + "/metrics")[2].decode()
    for i, (a, b) in enumerate(zip(single, concurrent)):
        diff = np.abs(a.astype(int) - b)
        assert diff.max() <= 3 and diff.mean() < 0.1, (i, diff.max(), diff.mean())   # its own answer
        nearest_other = min(np.abs(b.astype(int) - single[j]).mean() for j in range(64) if j != i)
        assert nearest_other > 5 * diff.mean() + 0.5, (i, nearest_other)             # no one else's
    # batches of more than one row formed: observations above the le="1" bucket
    rows = metric(after, "faceedit_batch_rows_count", kind="edit") - metric(before, "faceedit_batch_rows_count", kind="edit")
    single_rows = (metric(after, "faceedit_batch_rows_bucket", kind="edit", le="1.0")
                   - metric(before, "faceedit_batch_rows_bucket", kind="edit", le="1.0"))
    assert rows - single_rows >= 1, (rows, single_rows)
    edited_rows = metric(after, "faceedit_batch_rows_sum", kind="edit") - metric(before, "faceedit_batch_rows_sum", kind="edit")
    assert edited_rows == 64 and rows < 64


def test_metrics_count_routes_statuses_and_faces(server, astronaut_bytes):
    post(server.url + "/v1/attributes", astronaut_bytes)
    post(server.url + "/v1/attributes", b"junk")
    text = get(server.url + "/metrics")[2].decode()
    assert metric(text, "faceedit_http_requests_total", route="/v1/attributes", status="200") >= 1
    assert metric(text, "faceedit_http_requests_total", route="/v1/attributes", status="400") >= 1
    assert metric(text, "faceedit_http_request_seconds_count", route="/v1/attributes") >= 2
    assert metric(text, "faceedit_faces_per_photo_count") >= 1
    assert "faceedit_batcher_queue_depth" in text
    assert metric(text, "faceedit_batch_rows_count", kind="attributes") >= 1


# ---- servers with other settings -------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_queue_answers_503_with_retry_after(astronaut):
    s = Server("--max-queue", 1, "--max-batch", 1, "--max-delay-ms", 0)
    try:
        crops = [png(c) for c in face_crops(astronaut, 32)]
        barrier = threading.Barrier(len(crops))

        def call(body):
            barrier.wait()
            return post(f"{s.url}/v1/edit?aligned=true&set=smiling=0", body)
        with ThreadPoolExecutor(len(crops)) as pool:
            results = list(pool.map(call, crops))
        codes = [r[0] for r in results]
        assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
        busy = next(r for r in results if r[0] == 503)
        d, headers = assert_error(busy, 503, "busy", "queue is full")
        assert int(headers["retry-after"]) >= 1
        assert get(s.url + "/readyz")[0] == 200   # it recovers
    finally:
        s.close()


@pytest.mark.slow
def test_over_the_time_limit_answers_504(astronaut):
    # the batcher waits 1.5 s for company before running a lone row; the limit is 0.2 s
    s = Server("--max-delay-ms", 1500, "--timeout-s", 0.2)
    try:
        assert_error(post(f"{s.url}/v1/edit?aligned=true&set=smiling=0", png(face_crops(astronaut, 1)[0])),
                     504, "timeout", "did not answer within 0.2 s")
    finally:
        s.close()


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_then_exits_0(astronaut):
    s = Server("--max-delay-ms", 1500)   # a lone row waits 1.5 s in the batcher: surely in flight
    body = png(face_crops(astronaut, 1)[0])
    result = {}

    def call():
        result["r"] = post(f"{s.url}/v1/edit?aligned=true&set=smiling=0", body)
    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):   # no longer accepting
        get(s.url + "/healthz", timeout=5)
    t.join(60)
    assert s.proc.wait(60) == 0
    code, _, raw = result["r"]
    assert code == 200 and decode(json.loads(raw)["image"]).shape == (150, 150, 3)
    s.close()
