"""Load benchmark for `faceedit serve`: closed-loop clients on loopback, bounded in requests and time.

    python -m faceedit.bench.loadgen --out benchmarks/results/serve-cpu-2core.json

Starts `faceedit serve` on a free loopback port (or uses --url, which must be loopback), then for each
workload (an aligned model-size crop; a 1-MP photo with detection) and each client count (1, 8, 64) runs
clients that each send edit requests back to back over one keep-alive connection, until --requests requests
or --seconds have passed: requests/s, p50, p99. Before the load, the engine alone (no HTTP) is measured in
this process on the same model: the batch-1 edit time and the best offline batched throughput, which the
targets compare against (crop edits at 64 clients >= 70% of the engine's best; p50 at 1 client <= the
engine's batch-1 time + 5 ms)."""
from __future__ import annotations

import argparse
import http.client
import io
import json
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _png(rgb) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(rgb) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def workloads(size: int) -> dict:
    """name -> (query, body). scikit-image's astronaut (public domain)."""
    import cv2
    from skimage.data import astronaut
    astro = astronaut()
    crop = cv2.resize(np.ascontiguousarray(astro[40:190, 150:300]), (size, size), interpolation=cv2.INTER_AREA)
    photo = cv2.resize(astro, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    return {"crop": ("aligned=true&set=smiling=0", _png(crop)),
            "photo-1mp": ("set=smiling=0&format=jpeg", _jpeg(photo))}


def engine_figures(crop_rgb: np.ndarray, batches=(1, 2, 4, 8, 16, 32), seconds: float = 2.0) -> dict:
    """The engine alone on this model: batch-1 p50 ms and the best images/s over batch sizes (Editor.edit)."""
    from faceedit.engine import Editor
    editor = Editor.load()
    out = {"backend": editor.selection, "per_batch": {}}
    for b in batches:
        crops = np.stack([crop_rgb] * b)
        editor.edit(crops, {"smiling": 0})
        times, t_end = [], time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            editor.edit(crops, {"smiling": 0})
            times.append(time.perf_counter() - t)
        p50 = statistics.median(times)
        out["per_batch"][b] = {"p50_ms": round(p50 * 1000, 3), "images_per_s": round(b / p50, 1)}
    out["batch1_p50_ms"] = out["per_batch"][1]["p50_ms"]
    best = max(out["per_batch"].items(), key=lambda kv: kv[1]["images_per_s"])
    out["best_images_per_s"], out["best_batch"] = best[1]["images_per_s"], best[0]
    return out


def _client(host, port, query, body, stop_at, budget, lock, latencies, errors):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Content-Type": "application/octet-stream"}
    while time.perf_counter() < stop_at:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        t = time.perf_counter()
        try:
            conn.request("POST", f"/v1/edit?{query}", body, headers)
            r = conn.getresponse()
            r.read()
            ok = r.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=60)
            ok = False
        dt = time.perf_counter() - t
        with lock:
            (latencies if ok else errors).append(dt)
    conn.close()


def run_load(url: str, query: str, body: bytes, clients: int, max_requests: int, seconds: float) -> dict:
    u = urlparse(url)
    # warm-up: every client's connection once, not counted
    _run_clients(u.hostname, u.port, query, body, clients, clients, 30.0)
    t = time.perf_counter()
    lat, err = _run_clients(u.hostname, u.port, query, body, clients, max_requests, seconds)
    wall = time.perf_counter() - t
    lat_ms = np.asarray(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": len(err), "seconds": round(wall, 2),
            "requests_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat_ms, 99)), 2) if len(lat) else None}


def _run_clients(host, port, query, body, clients, max_requests, seconds):
    lock, lat, err = threading.Lock(), [], []
    budget, stop_at = [max_requests], time.perf_counter() + seconds
    threads = [threading.Thread(target=_client, args=(host, port, query, body, stop_at, budget, lock, lat, err))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, err


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="A running server (loopback only); default: start one")
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--workloads", default="crop,photo-1mp")
    ap.add_argument("--requests", type=int, default=2000, help="At most this many requests per run")
    ap.add_argument("--seconds", type=float, default=15.0, help="At most this long per run")
    ap.add_argument("--server-args", default="--max-batch 32 --max-delay-ms 2", help="Options for the server it starts")
    ap.add_argument("--no-engine", action="store_true", help="Skip the in-process engine figures")
    ap.add_argument("--out", type=Path, help="Write the results as JSON here")
    a = ap.parse_args(argv)
    if a.url and urlparse(a.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load generator only targets loopback servers")
    from faceedit.core.model_dir import ModelInfo
    size = ModelInfo.load().image_size
    loads = workloads(size)
    result = {"command": "python -m faceedit.bench.loadgen " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": {"cpus": __import__("os").cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(),
                          "load_average_at_start": [round(x, 2) for x in __import__("os").getloadavg()]},
              "date": time.strftime("%Y-%m-%d"), "limits": {"requests": a.requests, "seconds": a.seconds}}
    if not a.no_engine:
        from PIL import Image
        crop = np.asarray(Image.open(io.BytesIO(loads["crop"][1])).convert("RGB"))
        result["engine"] = engine_figures(crop)
        print(f"engine: batch-1 p50 {result['engine']['batch1_p50_ms']} ms, best {result['engine']['best_images_per_s']} "
              f"img/s (batch {result['engine']['best_batch']})", flush=True)
    proc = None
    url = a.url
    if url is None:
        proc, url = start_server(a.server_args.split())
        result["server_args"] = a.server_args
    try:
        result["runs"] = {}
        for name in a.workloads.split(","):
            query, body = loads[name]
            result["runs"][name] = []
            for c in (int(x) for x in a.clients.split(",")):
                r = run_load(url, query, body, c, a.requests, a.seconds)
                result["runs"][name].append(r)
                print(f"{name:10s} {c:3d} clients: {r['requests_per_s']:7.1f} req/s  p50 {r['p50_ms']} ms  "
                      f"p99 {r['p99_ms']} ms  ({r['requests']} ok, {r['errors']} errors, {r['seconds']} s)", flush=True)
    finally:
        if proc is not None:
            stop_server(proc)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    if "engine" in result and "crop" in result["runs"]:
        e, runs = result["engine"], {r["clients"]: r for r in result["runs"]["crop"]}
        t = {}
        if 64 in runs:
            share = runs[64]["requests_per_s"] / e["best_images_per_s"]
            t["crop_64_clients_vs_engine_best"] = {"goal": ">= 0.70", "measured": round(share, 3), "pass": share >= 0.70}
        if 1 in runs and runs[1]["p50_ms"] is not None:
            budget = e["batch1_p50_ms"] + 5
            t["crop_1_client_p50_ms"] = {"goal": f"<= {budget:.2f} (engine batch-1 + 5)", "measured": runs[1]["p50_ms"],
                                         "pass": runs[1]["p50_ms"] <= budget}
        result["targets"] = t
        for k, v in t.items():
            print(f"target {k}: {v['measured']} (goal {v['goal']}): {'pass' if v['pass'] else 'miss'}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
