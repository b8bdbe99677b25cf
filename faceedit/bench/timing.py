"""Time a callable the way a user calls it: warm-up first, then enough calls for stable percentiles."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Budget:
    """How long one measurement may take: at least min_iters calls and min_seconds, at most max_seconds."""
    warmup: int = 3
    min_iters: int = 10
    min_seconds: float = 1.0
    max_seconds: float = 3.0
    max_iters: int = 10_000


QUICK = Budget(warmup=2, min_iters=5, min_seconds=0.25, max_seconds=0.8)
FULL = Budget(warmup=3, min_iters=15, min_seconds=0.8, max_seconds=2.0)
TINY = Budget(warmup=1, min_iters=2, min_seconds=0.0, max_seconds=0.2, max_iters=3)


def measure(fn, budget: Budget = FULL) -> np.ndarray:
    """Seconds per call of fn(), after budget.warmup calls (fewer, at least one, when calls are slow)."""
    w0 = time.perf_counter()
    for _ in range(max(1, budget.warmup)):
        fn()
        if time.perf_counter() - w0 > budget.max_seconds / 2:
            break
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        spent = t1 - start
        n = len(times)
        if n >= budget.max_iters or (n >= budget.min_iters and spent >= budget.min_seconds) \
                or (n >= 2 and spent >= budget.max_seconds):
            break
    return np.asarray(times)


def summarize(seconds, items_per_call: int = 1) -> dict:
    """p50/p95/p99/mean in ms per call, and throughput in items/s (items over the total time)."""
    s = np.asarray(seconds, dtype=np.float64)
    p50, p95, p99 = np.percentile(s, [50, 95, 99]) * 1e3
    return {"p50_ms": round(float(p50), 4), "p95_ms": round(float(p95), 4), "p99_ms": round(float(p99), 4),
            "mean_ms": round(float(s.mean() * 1e3), 4), "iters": int(s.size),
            "throughput_ips": round(float(items_per_call * s.size / s.sum()), 2)}
