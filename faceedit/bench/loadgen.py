"""Load benchmark for `faceedit serve`: closed-loop clients on loopback, per route, against the engine's
offline rate measured in the same run.

    python -m faceedit.bench.loadgen --out benchmarks/results/serve-cpu-2core.json

First, in this process and with no server running, the offline rates on the same inputs: the engine's
(`Editor.edit_crops` + `Editor.attributes` on the decoded crops, batches of --max-batch: the model work the
server's batcher does) and the offline photo pipeline's (what `faceedit run` does: per chunk of 8 photos,
decode + detect + align in a thread pool (a large JPEG's face found on a reduced decode), one batched edit,
paste, JPEG encode). Then `faceedit serve` starts
on a free loopback port (or --url, loopback only) and, per workload and client count (1, 8, 64), clients send
requests back to back over keep-alive connections, until --requests requests or --seconds have passed:
requests/s, p50, p99, errors by status.

Nothing repeats: the crops are 160 different aligned crops (astronaut's face shifted, scaled 96-192 px,
mirrored, lit differently) and the photos 160 different photos (0.1-2.3 MP; one, two or three faces: the
astronaut scaled, mirrored, tiled beside herself and scikit-image's other sample pictures, pasted into larger
scenes), each client starting at its own place in the list, and every photo request carries bytes of its own (a JPEG
comment with a counter: the same pixels, another sha256), so no detection is ever answered from the server's
face cache (with the 160 photos alone, 64 clients a few places apart in the list re-sent each photo within the
cache's 128 and the photo rows read 1.6x the offline pipeline). Workloads: edit-crop (/v1/edit?aligned=true), edit-photo
(/v1/edit, JPEG answers), attributes-photo (/v1/attributes), reconstruct-crop (/v1/reconstruct?aligned=true).

Targets (checked on the 64-client runs): edit-crop >= 75% of the engine's offline rate; edit-photo >= 60% of
the offline photo pipeline's. The clients run in this process, on one asyncio loop (uvloop when installed),
so on a small machine they take some of the cores the server would use: say which machine, and compare runs
of one machine only."""
from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import http.client
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from faceedit.bench.results import write_json

WORKLOADS = {  # name -> (path and query, which inputs)
    "edit-crop": ("/v1/edit?aligned=true&set=smiling=0", "crops"),
    "edit-photo": ("/v1/edit?set=smiling=0&format=jpeg", "photos"),
    "attributes-photo": ("/v1/attributes", "photos"),
    "reconstruct-crop": ("/v1/reconstruct?aligned=true", "crops"),
}
CHANGES = {"smiling": 0.0}
TARGETS = {"edit-crop": ("engine", 0.75), "edit-photo": ("photo_pipeline", 0.60)}
N_INPUTS = 160  # more than the server's face cache (128 photos)


# ---- inputs ------------------------------------------------------------------------------------------------
def _encode(rgb: np.ndarray, fmt: str) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 6}))
    return buf.getvalue()


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_CUBIC)


def _lit(img: np.ndarray, rng) -> np.ndarray:
    gain, shift = rng.uniform(0.85, 1.15), rng.uniform(-12, 12)
    return np.clip(img.astype(np.float32) * gain + shift, 0, 255).astype(np.uint8)


def _pictures() -> dict:
    from skimage import data
    cam = data.camera()
    return {"astronaut": data.astronaut(), "camera": np.repeat(cam[:, :, None], 3, 2), "coffee": data.coffee(),
            "chelsea": data.chelsea(), "rocket": data.rocket()}


def crops(n: int = N_INPUTS, seed: int = 0) -> list[bytes]:
    """n different aligned crops of the astronaut's face (PNG): square, 96-192 px, shifted, mirrored, lit."""
    rng = np.random.default_rng(seed)
    astro = _pictures()["astronaut"]
    out = []
    for _ in range(n):
        side = int(rng.integers(140, 161))
        x0, y0 = 150 + int(rng.integers(-6, 7)), 40 + int(rng.integers(-6, 7))
        c = astro[y0:y0 + side, x0:x0 + side]
        c = c[:, ::-1] if rng.random() < 0.5 else c
        size = int(rng.integers(96, 193))
        out.append(_encode(_lit(_resize(np.ascontiguousarray(c), size, size), rng), "PNG"))
    return out


def photos(n: int = N_INPUTS, seed: int = 1) -> list[tuple[bytes, int, tuple[int, int]]]:
    """n different photos (JPEG), each (bytes, faces put in it, (width, height)): the astronaut alone at
    360-1500 px, two of her side by side, her beside another sample picture in a 2x2 grid (two faces), three
    of her in a row, or her pasted small into a large scene."""
    rng = np.random.default_rng(seed)
    pics = _pictures()
    astro, others = pics["astronaut"], [pics[k] for k in ("camera", "coffee", "chelsea", "rocket")]

    def face(side):
        a = astro[:, ::-1] if rng.random() < 0.5 else astro
        return _lit(_resize(np.ascontiguousarray(a), side, side), rng)
    out = []
    for i in range(n):
        kind = i % 5
        if kind == 0:    # alone, 0.1-2.3 MP
            side = int(rng.integers(360, 1501))
            img, faces = face(side), 1
        elif kind == 1:  # two side by side
            side = int(rng.integers(300, 801))
            img, faces = np.concatenate([face(side), face(side)], axis=1), 2
        elif kind == 2:  # 2x2: her twice, two other pictures
            side = int(rng.integers(300, 701))
            tiles = [face(side), _resize(others[int(rng.integers(4))], side, side),
                     _resize(others[int(rng.integers(4))], side, side), face(side)]
            order = rng.permutation(4)
            t = [tiles[k] for k in order]
            img, faces = np.concatenate([np.concatenate(t[:2], 1), np.concatenate(t[2:], 1)], 0), 2
        elif kind == 3:  # three in a row
            side = int(rng.integers(256, 501))
            img, faces = np.concatenate([face(side) for _ in range(3)], axis=1), 3
        else:            # small in a large scene
            w, h = int(rng.integers(1200, 1801)), int(rng.integers(900, 1301))
            img = _lit(_resize(others[int(rng.integers(4))], w, h), rng)
            side = int(rng.integers(300, min(w, h) // 2 + 1))
            x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            img[y:y + side, x:x + side] = face(side)
            faces = 1
        out.append((_encode(np.ascontiguousarray(img), "JPEG"), faces, (img.shape[1], img.shape[0])))
    return out


# ---- offline rates -----------------------------------------------------------------------------------------
def _timed(fn, seconds: float) -> tuple[float, int]:
    """Run fn() (which returns how many items it did) until seconds have passed: (items per s, items)."""
    fn()  # warm
    done, t0 = 0, time.perf_counter()
    while True:
        done += fn()
        wall = time.perf_counter() - t0
        if wall >= seconds:
            return done / wall, done


def engine_rate(editor, crop_bodies: list[bytes], batch: int, seconds: float) -> dict:
    """Crops per second of the model work the server's batcher does for aligned-crop edits: Editor.edit_crops
    on decoded crops (their own sizes), then Editor.attributes on the results, in batches of `batch`."""
    from faceedit.engine.imageio import read_photo_bytes
    rgbs = [read_photo_bytes(b).rgb for b in crop_bodies]
    request = editor.request(CHANGES)
    at = [0]

    def one_batch():
        i = at[0]
        rows = [rgbs[(i + k) % len(rgbs)] for k in range(batch)]
        at[0] = (i + batch) % len(rgbs)
        out = editor.edit_crops(rows, request)
        editor.attributes(out.images)
        return batch
    rate, n = _timed(one_batch, seconds)
    return {"crops_per_s": round(rate, 1), "batch": batch, "crops": n}


def photo_pipeline_rate(photo_editor, photo_bodies: list[bytes], seconds: float, chunk: int = 8) -> dict:
    """Photos per second of the offline photo pipeline (`faceedit run`'s, in memory): per chunk of `chunk`
    photos, engine.photo_file.read_prepared (decode + detect + align; a large JPEG's face found on a reduced
    decode while the full one runs) in a thread pool of one worker per core, one batched edit
    (PhotoEditor.edit, in place), then JPEG encodes in the pool."""
    from faceedit.engine.imageio import encode
    from faceedit.engine.photo_file import read_prepared
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    request = photo_editor.editor.request(CHANGES)
    at, faces = [0], [0]

    def prepare(body):
        return read_prepared(photo_editor, body, "largest")

    def to_jpeg(pe):
        buf = io.BytesIO()
        encode(pe.photo.rgb, None, "JPEG", buf, pe.photo.jpeg_sampling)
        return len(buf.getvalue())

    def one_chunk():
        i = at[0]
        bodies = [photo_bodies[(i + k) % len(photo_bodies)] for k in range(chunk)]
        at[0] = (i + chunk) % len(photo_bodies)
        ready = list(pool.map(prepare, bodies))
        edited = photo_editor.edit([p for p, _ in ready], request, prepared=[j for _, j in ready], in_place=True)
        list(pool.map(to_jpeg, edited))
        faces[0] += sum(len(pe.faces) for pe in edited)
        return chunk
    try:
        rate, n = _timed(one_chunk, seconds)
    finally:
        pool.shutdown()
    return {"photos_per_s": round(rate, 2), "chunk": chunk, "photos": n}


def offline_rates(crop_bodies, photo_bodies, batch: int, seconds: float) -> dict:
    from faceedit.engine import Editor
    from faceedit.engine.photo import PhotoEditor
    editor = Editor.load()
    out = {"backend": editor.selection, "engine": engine_rate(editor, crop_bodies, batch, seconds),
           "photo_pipeline": photo_pipeline_rate(PhotoEditor(editor), [b for b, _, _ in photo_bodies], seconds)}
    del editor
    gc.collect()
    return out


# ---- the clients -------------------------------------------------------------------------------------------
def _request_bytes(host: str, port: int, path: str, body: bytes, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def unique_jpeg(body: bytes, n: int) -> bytes:
    """The JPEG with a comment segment (COM, ignored by every decoder) holding n: the same pixels in bytes of
    their own, so a server that remembers faces by the upload's hash never answers from that memory."""
    tag = b"faceedit-loadgen %012d" % n
    return body[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + body[2:]


async def _client(host, port, requests, start: int, stop_at: float, budget: list, lat: list, statuses: dict):
    """requests(i) -> the bytes of request i (a client sends start, start + 1, ...)."""
    reader = writer = None
    i = start
    while time.perf_counter() < stop_at and budget[0] > 0:
        budget[0] -= 1
        req = requests(i)
        i += 1
        t = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"connection" and v.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            if close:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0  # the connection failed
            if writer is not None:
                writer.close()
            reader = writer = None
        dt = time.perf_counter() - t
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            lat.append(dt)
    if writer is not None:
        writer.close()


async def _clients(host, port, requests, n_inputs: int, clients: int, max_requests: int, seconds: float):
    lat, statuses = [], {}
    budget, stop_at = [max_requests], time.perf_counter() + seconds
    step = max(1, n_inputs // clients)
    await asyncio.gather(*(_client(host, port, requests, c * step, stop_at, budget, lat, statuses)
                           for c in range(clients)))
    return lat, statuses


def _run(coro):
    try:
        import uvloop
        run = uvloop.run
    except (ImportError, AttributeError):
        run = asyncio.run
    return run(coro)


def run_load(url: str, path: str, bodies: list[bytes], clients: int, max_requests: int, seconds: float,
             content_type: str = "application/octet-stream") -> dict:
    """One closed-loop run: clients each sending requests back to back on one keep-alive connection, each
    starting at its own place in bodies. The first request of every client is a warm-up, not counted."""
    u = urlparse(url)
    if all(b[:2] == b"\xff\xd8" for b in bodies):  # photos: bytes never seen before, every request
        sent = itertools.count()

        def request(i):
            return _request_bytes(u.hostname, u.port, path, unique_jpeg(bodies[i % len(bodies)], next(sent)),
                                  content_type)
    else:  # aligned crops: nothing is remembered for them
        reqs = [_request_bytes(u.hostname, u.port, path, b, content_type) for b in bodies]

        def request(i):
            return reqs[i % len(reqs)]
    _run(_clients(u.hostname, u.port, request, len(bodies), clients, clients, 60.0))
    t = time.perf_counter()
    lat, statuses = _run(_clients(u.hostname, u.port, request, len(bodies), clients, max_requests, seconds))
    wall = time.perf_counter() - t
    ms = np.asarray(lat) * 1000
    errors = sum(n for s, n in statuses.items() if s != 200)
    return {"clients": clients, "requests": len(lat), "errors": errors,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "seconds": round(wall, 2),
            "requests_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(lat) else None}


# ---- the server --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], startup_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    """`faceedit serve ARGS` on a free loopback port, once /readyz answers 200: (process, url)."""
    port = _free_port()
    cmd = [sys.executable, "-c", "from faceedit.cli.main import app; app()", "serve", "--port", str(port),
           "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"faceedit serve exited {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise SystemExit(f"faceedit serve did not start in {startup_s:g} s")


def stop_server(proc: subprocess.Popen, wait_s: float = 60.0):
    """SIGTERM (the server drains and exits), then SIGKILL if it has not gone by wait_s."""
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def machine() -> dict:
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def targets(result: dict) -> dict:
    out = {}
    for name, (offline, goal) in TARGETS.items():
        runs = {r["clients"]: r for r in result.get("runs", {}).get(name, [])}
        off = result.get("offline", {}).get(offline)
        if 64 not in runs or not off:
            continue
        rate = off.get("crops_per_s") or off.get("photos_per_s")
        share = runs[64]["requests_per_s"] / rate
        out[f"{name}_64_clients_vs_{offline}"] = {"goal": f">= {goal:.2f}", "offline_per_s": rate,
                                                 "measured": round(share, 3), "pass": share >= goal}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="A running server (loopback only); default: start one")
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--workloads", default="edit-crop,edit-photo,attributes-photo",
                    help=f"Comma-separated: {', '.join(WORKLOADS)}")
    ap.add_argument("--requests", type=int, default=3000, help="At most this many requests per run")
    ap.add_argument("--seconds", type=float, default=15.0, help="At most this long per run")
    ap.add_argument("--offline-seconds", type=float, default=10.0, help="How long each offline rate is measured")
    ap.add_argument("--max-batch", type=int, default=32, help="The server's --max-batch, and the engine rate's batch")
    ap.add_argument("--server-args", default="--max-delay-ms 2", help="More options for the server it starts")
    ap.add_argument("--inputs", type=int, default=N_INPUTS, help="How many different crops and photos")
    ap.add_argument("--no-offline", action="store_true", help="Skip the in-process offline rates")
    ap.add_argument("--out", type=Path, help="Write the results as JSON here")
    a = ap.parse_args(argv)
    if a.url and urlparse(a.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load generator only targets loopback servers")
    names = a.workloads.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}: choose from {', '.join(WORKLOADS)}")
    t0 = time.perf_counter()
    inputs = {"crops": crops(a.inputs), "photos": photos(a.inputs)}
    mp = [w * h / 1e6 for _, _, (w, h) in inputs["photos"]]
    result = {"command": "python -m faceedit.bench.loadgen " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "limits": {"requests": a.requests, "seconds": a.seconds},
              "inputs": {"crops": len(inputs["crops"]), "photos": len(inputs["photos"]),
                         "photo_mp": [round(min(mp), 2), round(statistics.median(mp), 2), round(max(mp), 2)],
                         "faces_put_in_photos": int(sum(f for _, f, _ in inputs["photos"]))}}
    print(f"inputs: {len(inputs['crops'])} crops, {len(inputs['photos'])} photos ({min(mp):.2f}-{max(mp):.2f} MP, "
          f"{result['inputs']['faces_put_in_photos']} faces) in {time.perf_counter() - t0:.1f} s", flush=True)
    if not a.no_offline:
        result["offline"] = off = offline_rates(inputs["crops"], inputs["photos"], a.max_batch, a.offline_seconds)
        print(f"offline ({off['backend']}): engine {off['engine']['crops_per_s']} crops/s (batch {a.max_batch}), "
              f"photo pipeline {off['photo_pipeline']['photos_per_s']} photos/s", flush=True)
    proc, url = None, a.url
    if url is None:
        server_args = f"--max-batch {a.max_batch} {a.server_args}".split()
        proc, url = start_server(server_args)
        result["server_args"] = " ".join(server_args)
    try:
        result["runs"] = {}
        for name in names:
            path, which = WORKLOADS[name]
            bodies = inputs[which] if which == "crops" else [b for b, _, _ in inputs[which]]
            ctype = "image/png" if which == "crops" else "image/jpeg"
            result["runs"][name] = []
            for c in (int(x) for x in a.clients.split(",")):
                r = run_load(url, path, bodies, c, a.requests, a.seconds, ctype)
                result["runs"][name].append(r)
                print(f"{name:17s} {c:3d} clients: {r['requests_per_s']:7.1f} req/s  p50 {r['p50_ms']} ms  "
                      f"p99 {r['p99_ms']} ms  ({r['requests']} ok, {r['errors']} errors {r['statuses']}, "
                      f"{r['seconds']} s)", flush=True)
    finally:
        if proc is not None:
            stop_server(proc)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = targets(result)
    for k, v in result["targets"].items():
        print(f"target {k}: {v['measured']} of {v['offline_per_s']}/s (goal {v['goal']}): "
              f"{'pass' if v['pass'] else 'miss'}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(a.out, result)  # the bench's one writer: temp file, then rename
        print(f"wrote {a.out}")
    return result


if __name__ == "__main__":
    main()
