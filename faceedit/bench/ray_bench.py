"""`faceedit serve` against the same application on Ray Serve, under the same load (faceedit.bench.loadgen's
closed-loop clients on loopback, bounded in requests and time):

    python -m faceedit.bench.ray_bench --targets serve,ray-1,ray-2 --out benchmarks/results/serve-ray-cpu-2core.json

Targets: `serve` (uvicorn, one process); `ray-N` (`faceedit serve --ray --replicas N` in a subprocess: N
replicas on a local Ray cluster it starts, the machine's CPUs split evenly between them, each replica's backend
with that many threads). Both are started as commands, so this room never imports serve. For each
target and workload (loadgen's: 160 different aligned crops, 160 different photos) and each client count:
requests/s, p50, p99, errors."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from faceedit.bench import loadgen


def run_target(url: str, loads: dict, names: list[str], clients: list[int], requests: int, seconds: float) -> dict:
    out = {}
    for name in names:
        path, which = loadgen.WORKLOADS[name]
        bodies = loads[which] if which == "crops" else [b for b, _, _ in loads[which]]
        out[name] = []
        for c in clients:
            r = loadgen.run_load(url, path, bodies, c, requests, seconds)
            out[name].append(r)
            print(f"  {name:10s} {c:3d} clients: {r['requests_per_s']:7.1f} req/s  p50 {r['p50_ms']} ms  "
                  f"p99 {r['p99_ms']} ms  ({r['requests']} ok, {r['errors']} errors)", flush=True)
    return out


def bench_serve(server_args: str, **kw) -> dict:
    proc, url = loadgen.start_server(server_args.split())
    try:
        return run_target(url, **kw)
    finally:
        loadgen.stop_server(proc)


def ray_args(replicas: int, cpus: int, max_batch: int, max_delay_ms: float) -> list[str]:
    """`faceedit serve` options for N replicas on a local Ray cluster of `cpus` CPUs."""
    return ["--ray", "--replicas", str(replicas), "--replica-cpus", f"{cpus / replicas:g}", "--ray-cpus", str(cpus),
            "--max-ongoing", "64", "--max-queued", "1024", "--max-batch", str(max_batch),
            "--max-delay-ms", f"{max_delay_ms:g}"]


def bench_ray(replicas: int, cpus: int, max_batch: int, max_delay_ms: float, **kw) -> dict:
    proc, url = loadgen.start_server(ray_args(replicas, cpus, max_batch, max_delay_ms), startup_s=300)
    try:
        return run_target(url, **kw)
    finally:
        loadgen.stop_server(proc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="serve,ray-1,ray-2", help="serve, ray-N (comma-separated)")
    ap.add_argument("--workloads", default="edit-crop,edit-photo")
    ap.add_argument("--clients", default="1,16")
    ap.add_argument("--requests", type=int, default=1000, help="At most this many requests per run")
    ap.add_argument("--seconds", type=float, default=6.0, help="At most this long per run")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--out", type=Path, help="Write the results as JSON here")
    a = ap.parse_args(argv)
    loads = {"crops": loadgen.crops(), "photos": loadgen.photos()}
    kw = dict(loads=loads, names=a.workloads.split(","), clients=[int(c) for c in a.clients.split(",")],
              requests=a.requests, seconds=a.seconds)
    result = {"command": "python -m faceedit.bench.ray_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(),
                          "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
              "date": time.strftime("%Y-%m-%d"), "limits": {"requests": a.requests, "seconds": a.seconds},
              "batcher": {"max_batch": a.max_batch, "max_delay_ms": a.max_delay_ms}, "runs": {}}
    try:
        import ray
        result["machine"]["ray"] = ray.__version__
    except ImportError:
        pass
    for target in a.targets.split(","):
        print(target, flush=True)
        t = time.perf_counter()
        if target == "serve":
            runs = bench_serve(f"--max-batch {a.max_batch} --max-delay-ms {a.max_delay_ms}", **kw)
        elif target.startswith("ray-") and target[4:].isdigit():
            runs = bench_ray(int(target[4:]), os.cpu_count(), a.max_batch, a.max_delay_ms, **kw)
        else:
            raise SystemExit(f"unknown target {target!r}: serve or ray-N")
        result["runs"][target] = runs
        result.setdefault("wall_s", {})[target] = round(time.perf_counter() - t, 1)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if a.out:
        from faceedit.core.files import atomic_path
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(a.out) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
