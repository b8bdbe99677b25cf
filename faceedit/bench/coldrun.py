"""A cold process, timed the way a user meets it: wall time from spawn to exit, and its peak RSS from
os.wait4 (the kernel's own accounting for exactly that process; no psutil).

Why a small reaper in between: Linux carries a process's RSS high-water mark across exec, and
subprocess spawns with vfork, so a child of this (large, model-holding) process reports *our* RSS as its
peak. The reaper is a bare Python whose own child starts from its few MB; it reports that child's figures."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np


REAPER = r"""
import json, os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"wall": time.perf_counter() - t0, "maxrss": ru.ru_maxrss, "status": status,
               "user": ru.ru_utime, "sys": ru.ru_stime}, f)
"""


def run_once(argv: list[str], env: dict | None = None, timeout: float = 120.0) -> dict:
    errfile = tempfile.TemporaryFile()     # a file, not a pipe: a chatty child can never block on it
    fd, report = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        return _run_reaped(argv, env, timeout, errfile, report)
    finally:
        errfile.close()
        os.unlink(report)


def _run_reaped(argv, env, timeout, errfile, report) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", REAPER, report, *argv], stdout=subprocess.DEVNULL,
                            stderr=errfile, env=env, start_new_session=True)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)  # the reaper and the command under it
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.002)
    proc.returncode = os.waitstatus_to_exitcode(status)   # so Popen does not wait for it again
    errfile.seek(0)
    err = errfile.read().decode(errors="replace").strip().splitlines()
    try:
        with open(report) as f:
            child = json.load(f)
    except (OSError, ValueError):  # killed at the deadline: no report
        child = {"wall": time.perf_counter() - t0, "maxrss": usage.ru_maxrss, "status": status,
                 "user": usage.ru_utime, "sys": usage.ru_stime}
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss_mb = child["maxrss"] / (1024 * 1024 if sys.platform == "darwin" else 1024)
    code = os.waitstatus_to_exitcode(child["status"])
    return {"wall_s": round(child["wall"], 4), "peak_rss_mb": round(rss_mb, 1), "exit_code": code,
            "user_s": round(child["user"], 3), "sys_s": round(child["sys"], 3),
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
