"""A cold process, timed the way a user meets it: wall time from spawn to exit, and its peak RSS from
os.wait4 (the kernel's own accounting for exactly that child; no psutil)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def run_once(argv: list[str], env: dict | None = None, timeout: float = 120.0) -> dict:
    errfile = tempfile.TemporaryFile()     # a file, not a pipe: a chatty child can never block on it
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errfile, env=env)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)   # so Popen does not wait for it again
    errfile.seek(0)
    err = errfile.read().decode(errors="replace").strip().splitlines()
    errfile.close()
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"wall_s": round(wall, 4), "peak_rss_mb": round(rss_mb, 1), "exit_code": proc.returncode,
            "user_s": round(usage.ru_utime, 3), "sys_s": round(usage.ru_stime, 3),
            "stderr_tail": err[-1][:300] if err else ""}


def cold_runs(argv: list[str], repeats: int = 3, env: dict | None = None) -> dict:
    """Median wall time and the largest peak RSS over `repeats` fresh processes; every run kept."""
    runs = [run_once(argv, env) for _ in range(repeats)]
    ok = [r for r in runs if r["exit_code"] == 0]
    out = {"argv": [os.path.basename(argv[0])] + argv[1:], "runs": runs, "ok": len(ok) == len(runs)}
    if ok:
        out["wall_s_median"] = round(float(np.median([r["wall_s"] for r in ok])), 4)
        out["wall_s_min"] = round(min(r["wall_s"] for r in ok), 4)
        out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    return out
