"""Decompression bombs against `faceedit serve`: is every request answered, and does memory stay bounded?

    python -m faceedit.bench.bombs --out benchmarks/results/serve-bombs-cpu-2core.json

Starts `faceedit serve` (its defaults: 40-MP photos at most, 80 MP in flight, one decode per core) on a free
loopback port, measures its resident memory idle (after one normal edit), then runs --clients clients for
--seconds, each sending, back to back on its own connection, a mix of small files that decode to huge
images: PNGs declaring 1.6 GP (1-bit), 50 MP (8-bit grey, ~50 kB: the issue's 47-kB kind) and 50 MP (RGB),
a JPEG and a GIF whose headers declare 65000 x 65000, and 38-MP PNGs just under the limit (these are decoded:
what the photo gate bounds). Every answer must be a JSON error with a request id and a status of 413 (too
many pixels), 422 (no face in what was decoded) or 503 (busy: the gate's wait ran out); a connection that
fails or times out is "unanswered". The server's peak resident memory (its VmHWM) must stay under
--peak-bound-mb (1.5 GB); --settle-s after the load (a minute) its resident memory must be within
--settle-bound-mb (+100 MB) of idle; and then a normal photo (the astronaut) must be edited correctly."""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from faceedit.bench import loadgen
from faceedit.bench.results import write_json


# ---- the bombs -------------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_rows(w: int, h: int, bit_depth: int, colour: int, row: bytes) -> bytes:
    """A real w x h PNG whose every row is `row` (filter byte first): small on the wire, w x h decoded."""
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def jpeg_declaring(w: int, h: int) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def gif_declaring(w: int, h: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
            + b"\x02\x02\x44\x01\x00\x3b")


def bombs(near_limit_mp: float = 38.0) -> dict:
    """name -> file bytes."""
    stripes = bytes([0]) + bytes(np.arange(6200, dtype=np.uint8).tobytes())
    near = int((near_limit_mp * 1e6) ** 0.5)
    return {
        "png-1bit-1.6GP": png_rows(40000, 40000, 1, 0, bytes(1 + 5000)),
        "png-grey-50MP": png_rows(7100, 7100, 8, 0, bytes(1 + 7100)),
        "png-rgb-50MP": png_rows(8200, 6100, 8, 2, bytes(1 + 3 * 8200)),
        "jpeg-declaring-65000": jpeg_declaring(65000, 65000),
        "gif-declaring-65535": gif_declaring(65535, 65535),
        f"png-grey-{near_limit_mp:g}MP-decoded": png_rows(near, near, 8, 0, stripes[:1 + near]),
    }


# ---- the server's memory -------------------------------------------------------------------------------
def proc_status(pid: int) -> dict:
    """VmRSS and VmHWM (peak) of a process, in MB (Linux)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0]) / 1024
    except OSError:
        pass
    return out


def reset_peak(pid: int) -> bool:
    """Start VmHWM afresh (Linux >= 4.0: writing 5 to clear_refs), so the peak is the load's, not start-up's."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---- the clients ---------------------------------------------------------------------------------------
async def _client(host, port, requests: list[tuple[str, bytes]], start: int, stop_at: float, tally: dict,
                  timeout_s: float):
    i = start
    reader = writer = None
    while time.perf_counter() < stop_at:
        name, raw = requests[i % len(requests)]
        i += 1
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
            writer.write(raw)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            body = await asyncio.wait_for(reader.readexactly(int(headers.get(b"content-length", b"0"))), timeout_s)
            status = int(head[9:12])
            try:
                d = json.loads(body)
                ok_json = (d.get("status") == status and bool(d.get("request_id"))
                           and headers.get(b"x-request-id", b"").decode() == d["request_id"])
            except (ValueError, AttributeError):
                ok_json = False
            key = f"{name} {status}" + ("" if ok_json else " (not a JSON error with its request id)")
            tally[key] = tally.get(key, 0) + 1
            if headers.get(b"connection", b"").lower() == b"close":
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
            tally[f"{name} unanswered ({type(e).__name__})"] = tally.get(f"{name} unanswered ({type(e).__name__})", 0) + 1
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _attack(host, port, requests, clients: int, seconds: float, timeout_s: float) -> dict:
    tally: dict = {}
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(*(_client(host, port, requests, c, stop_at, tally, timeout_s) for c in range(clients)))
    return tally


async def _sample_rss(pid: int, every_s: float, stop: asyncio.Event, timeline: list):
    t0 = time.perf_counter()
    while not stop.is_set():
        timeline.append([round(time.perf_counter() - t0, 1), round(proc_status(pid).get("VmRSS", 0))])
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            pass


async def _attack_sampled(host, port, requests, clients, seconds, timeout_s, pid):
    stop, timeline = asyncio.Event(), []
    sampler = asyncio.ensure_future(_sample_rss(pid, 0.5, stop, timeline))
    tally = await _attack(host, port, requests, clients, seconds, timeout_s)
    stop.set()
    await sampler
    return tally, timeline


def normal_edit(url: str) -> dict:
    """The astronaut, edited: 200, one face, the photo's size, and pixels changed on the face alone."""
    import http.client
    from urllib.parse import urlparse

    from PIL import Image
    from skimage.data import astronaut
    import base64
    rgb = astronaut()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    c.request("POST", "/v1/edit?set=smiling=0", buf.getvalue(), {"Content-Type": "image/png"})
    r = c.getresponse()
    body = r.read()
    out = {"status": r.status}
    if r.status == 200:
        d = json.loads(body)
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(d["image"]))).convert("RGB"))
        x, y, w, h = d["faces"][0]["box"]
        changed = np.abs(img.astype(int) - rgb).sum(2) > 0
        far = changed.copy()
        far[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = False
        out.update(faces=d["faces_found"], size=list(img.shape[:2]),
                   face_changed=round(float(changed[y:y + h, x:x + w].mean()), 3), far_changed=int(far.sum()))
        out["ok"] = bool(d["faces_found"] == 1 and img.shape == rgb.shape and out["face_changed"] > 0.3
                         and out["far_changed"] == 0)
    else:
        out["ok"], out["body"] = False, body[:300].decode("latin-1")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60.0, help="How long the attack runs")
    ap.add_argument("--settle-s", type=float, default=60.0, help="How long after the attack memory is read again")
    ap.add_argument("--peak-bound-mb", type=float, default=1536.0)
    ap.add_argument("--settle-bound-mb", type=float, default=100.0, help="Most MB over idle, --settle-s after")
    ap.add_argument("--timeout-s", type=float, default=60.0, help="A request unanswered this long is a failure")
    ap.add_argument("--server-args", default="", help="Options for the server it starts (default: its defaults)")
    ap.add_argument("--out", type=Path, help="Write the results as JSON here")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    files = bombs()
    print("bombs: " + ", ".join(f"{k} {len(v) / 1e3:.0f} kB" for k, v in files.items())
          + f" (made in {time.perf_counter() - t0:.1f} s)", flush=True)
    proc, url = loadgen.start_server(a.server_args.split())
    result = {"command": "python -m faceedit.bench.bombs " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": loadgen.machine(), "date": time.strftime("%Y-%m-%d"), "server_args": a.server_args,
              "clients": a.clients, "seconds": a.seconds, "files": {k: len(v) for k, v in files.items()}}
    try:
        warm = normal_edit(url)
        if not warm["ok"]:
            raise SystemExit(f"the server does not edit the astronaut before the attack: {warm}")
        time.sleep(1.0)
        idle = proc_status(proc.pid)
        result["idle_rss_mb"] = round(idle.get("VmRSS", 0))
        result["peak_reset"] = reset_peak(proc.pid)
        print(f"idle: {result['idle_rss_mb']} MB resident", flush=True)
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        requests = [(name, loadgen._request_bytes(host, port, "/v1/edit?set=smiling=0", body, "image/png"))
                    for name, body in files.items()]
        tally, timeline = loadgen._run(_attack_sampled(host, port, requests, a.clients, a.seconds, a.timeout_s, proc.pid))
        during = proc_status(proc.pid)
        result["answers"] = dict(sorted(tally.items()))
        result["rss_timeline_mb"] = timeline
        result["peak_rss_mb"] = round(during.get("VmHWM", 0))
        answered = sum(n for k, n in tally.items() if "unanswered" not in k)
        bad = {k: n for k, n in tally.items()
               if "unanswered" in k or "not a JSON" in k or k.rsplit(" ", 1)[-1] not in ("413", "422", "503")}
        print(f"{answered} answers in {a.seconds:g} s: " + ", ".join(f"{k}: {n}" for k, n in sorted(tally.items())),
              flush=True)
        print(f"peak resident: {result['peak_rss_mb']} MB (bound {a.peak_bound_mb:g})", flush=True)
        time.sleep(a.settle_s)
        result["settled_rss_mb"] = round(proc_status(proc.pid).get("VmRSS", 0))
        print(f"{a.settle_s:g} s later: {result['settled_rss_mb']} MB resident (idle {result['idle_rss_mb']}, "
              f"bound +{a.settle_bound_mb:g})", flush=True)
        result["normal_edit_after"] = after = normal_edit(url)
        print(f"the astronaut after: {after}", flush=True)
        result["checks"] = {
            "every_request_answered_413_422_503_json": {"pass": not bad and answered > 0, "other": bad},
            "peak_rss_under_bound": {"pass": result["peak_rss_mb"] <= a.peak_bound_mb,
                                     "measured_mb": result["peak_rss_mb"], "bound_mb": a.peak_bound_mb},
            "settled_rss_near_idle": {"pass": result["settled_rss_mb"] - result["idle_rss_mb"] <= a.settle_bound_mb,
                                      "over_idle_mb": result["settled_rss_mb"] - result["idle_rss_mb"],
                                      "bound_mb": a.settle_bound_mb},
            "normal_edit_after": {"pass": after["ok"]},
        }
    finally:
        loadgen.stop_server(proc)
    for k, v in result["checks"].items():
        print(f"check {k}: {'pass' if v['pass'] else 'FAIL'}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(a.out, result)  # the bench's one writer: temp file, then rename
        print(f"wrote {a.out}")
    return result


if __name__ == "__main__":
    main()
