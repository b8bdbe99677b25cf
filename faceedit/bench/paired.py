"""Comparisons that hold up on a noisy machine: contestants interleaved in rounds, ratios from paired rounds,
repeated until each ratio's 95% interval is narrow enough (or a time cap), the interval always reported.

    out = compare({"engine": lambda: ed.edit(crops, changes), "raw": lambda: raw.run(x, t, m)},
                  pairs=[("engine", "raw")], budget=PairedBudget())
    out["pairs"][0]  # {"a": "engine", "b": "raw", "ratio": 1.07, "ci95": [1.05, 1.09], "converged": True, ...}

One round runs a block of calls of every contestant, in an order that rotates from round to round (A B, B A,
...; with three, A B C, B C A, C A B), so a machine that slows down or speeds up during the comparison slows
every contestant alike and the position in the round cancels out. A block's value is the median of its calls
(seconds per call; a contestant may instead return its own seconds per item, e.g. a window of a closed-loop
load). A pair's ratio a/b is b's time over a's (above 1: a is faster); per round d = log(b / a), and the
interval is a Student t interval on the mean of d, turned back into a ratio. It stops when every pair's
interval is within +-target of its ratio (after min_rounds), at max_rounds, or at max_seconds, and says which.
No real clock is needed to test it: pass clock= and sleep= (tests/test_bench_paired.py)."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

Z975 = 1.959963984540054
# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with df degrees of freedom (a table to 30, then the Cornish-Fisher
    expansion, within 0.001 of the exact value)."""
    if df < 1:
        return math.inf
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2) \
        + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)


@dataclass
class PairedBudget:
    """How a comparison runs and when it stops."""
    target: float = 0.03          # stop once every ratio's 95% interval lies within +-target of the ratio
    min_rounds: int = 6           # ... but never before this many rounds
    max_rounds: int = 400
    max_seconds: float = 30.0     # time cap for the whole comparison (warm-up included)
    block_seconds: float = 0.05   # a contestant's block in a round takes about this long ...
    max_block_calls: int = 64     # ... in at most this many calls (at least one)
    warmup_calls: int = 2         # untimed calls of each contestant before the first round
    gap_seconds: float = 0.002    # pause before each block: another runtime's spinning threads go to sleep


QUICK_PAIRED = PairedBudget(min_rounds=5, max_seconds=15.0, block_seconds=0.04)
FULL_PAIRED = PairedBudget(min_rounds=8, max_seconds=40.0, block_seconds=0.05)
TINY_PAIRED = PairedBudget(target=0.5, min_rounds=2, max_rounds=3, max_seconds=2.0, block_seconds=0.0,
                           max_block_calls=1, warmup_calls=1, gap_seconds=0.0)


def log_ratio_interval(d, level_t=None) -> dict:
    """d: per-round log(b / a). -> ratio exp(mean), its 95% interval, and the interval's half-width as a
    fraction of the ratio (exp(half) - 1)."""
    d = np.asarray(d, np.float64)
    n = d.size
    mean = float(d.mean()) if n else 0.0
    if n < 2:
        return {"ratio": math.exp(mean), "ci95": [0.0, math.inf], "half_width": math.inf, "rounds": int(n)}
    half = (level_t or t975(n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return {"ratio": math.exp(mean), "ci95": [math.exp(mean - half), math.exp(mean + half)],
            "half_width": math.expm1(half), "rounds": int(n)}


def median_ci(samples) -> dict:
    """The median with a distribution-free 95% interval (order statistics: ranks n/2 -+ 1.96 sqrt(n)/2)."""
    s = np.sort(np.asarray(samples, np.float64))
    n = s.size
    if n == 0:
        return {"p50": None, "ci95": [None, None]}
    k = Z975 * math.sqrt(n) / 2
    lo, hi = max(0, int(math.floor(n / 2 - k))), min(n - 1, int(math.ceil(n / 2 + k)))
    return {"p50": float(np.median(s)), "ci95": [float(s[lo]), float(s[hi])]}


def _order(names: list, r: int) -> list:
    """Round r's order: the list rotated by r (A B, B A, ... for two)."""
    k = r % len(names)
    return names[k:] + names[:k]


def compare(contestants: dict, pairs: list, budget: PairedBudget = FULL_PAIRED, items: dict | None = None,
            clock=time.perf_counter, sleep=time.sleep) -> dict:
    """contestants: {name: fn}; fn() does one unit of work, timed here, unless it returns a float: its own
    seconds per item (anything else it returns is ignored).
    pairs: [(a, b)]: report b's time / a's time with its 95% interval (a contestant may be in many pairs).
    items: {name: items per call} for throughput (default 1). Returns {"contestants": {name: summary},
    "pairs": [...], "rounds", "seconds", "stopped", "order", "load_start", "load_end"}."""
    names = list(contestants)
    missing = [x for p in pairs for x in p if x not in contestants]
    if missing:
        raise ValueError(f"pairs name unknown contestants: {', '.join(sorted(set(missing)))}")
    items = items or {}
    load_start = _load()
    t_start = clock()
    per_call = {}
    for name in names:  # warm-up, and how many calls fill a block
        spent = []
        for _ in range(max(1, budget.warmup_calls)):
            t0 = clock()
            got = contestants[name]()
            spent.append(float(got) if isinstance(got, float) else clock() - t0)
        per_call[name] = max(min(spent), 1e-9)
    # the same odd number of calls in every contestant's block: a block's median then is one of its calls, and
    # medians of blocks of different sizes would differ on skewed timings even between equal contestants
    k = max(1, min(budget.max_block_calls, int(budget.block_seconds / max(per_call.values()))))
    calls = dict.fromkeys(names, k - 1 + k % 2)
    rounds = {n: [] for n in names}
    samples = {n: [] for n in names}
    stopped, r = "round cap", 0
    while r < budget.max_rounds:
        for name in _order(names, r):
            if budget.gap_seconds > 0:
                sleep(budget.gap_seconds)
            fn, block = contestants[name], []
            for _ in range(calls[name]):
                t0 = clock()
                got = fn()
                block.append(float(got) if isinstance(got, float) else clock() - t0)
            rounds[name].append(float(np.median(block)))
            samples[name] += block
        r += 1
        stats = [_pair(a, b, rounds) for a, b in pairs]
        if r >= budget.min_rounds and all(s["half_width"] <= budget.target for s in stats):
            stopped = "converged"
            break
        if clock() - t_start >= budget.max_seconds:
            stopped = "time cap"
            break
    stats = [_pair(a, b, rounds) for a, b in pairs]
    for s in stats:
        s["converged"] = s["half_width"] <= budget.target
    return {"contestants": {n: _summary(samples[n], rounds[n], items.get(n, 1), calls[n]) for n in names},
            "pairs": stats, "rounds": r, "seconds": round(clock() - t_start, 3), "stopped": stopped,
            "target": budget.target, "order": "rotating: " + ", ".join(" ".join(_order(names, i)) for i in range(min(len(names), 3)))
            + (", ..." if len(names) > 3 else ""), "load_start": load_start, "load_end": _load()}


def _pair(a: str, b: str, rounds: dict) -> dict:
    d = np.log(np.asarray(rounds[b], np.float64)) - np.log(np.asarray(rounds[a], np.float64))
    out = {"a": a, "b": b, **log_ratio_interval(d)}
    out["ratio"] = round(out["ratio"], 4)
    out["ci95"] = [round(v, 4) if math.isfinite(v) else None for v in out["ci95"]]
    out["half_width"] = round(out["half_width"], 4) if math.isfinite(out["half_width"]) else math.inf
    return out


def _summary(samples: list, rounds: list, items: int, calls: int) -> dict:
    s = np.asarray(samples, np.float64)
    p50, p95, p99 = np.percentile(s, [50, 95, 99]) * 1e3
    med = median_ci(s * 1e3)
    return {"p50_ms": round(float(p50), 4), "p50_ci95_ms": [round(v, 4) for v in med["ci95"]],
            "p95_ms": round(float(p95), 4), "p99_ms": round(float(p99), 4), "mean_ms": round(float(s.mean() * 1e3), 4),
            "iters": int(s.size), "block_calls": calls, "rounds": len(rounds),
            "round_median_ms": round(float(np.median(rounds)) * 1e3, 4),
            "throughput_ips": round(float(items / np.median(rounds)), 2)}


def _load():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def pair(result: dict, a: str, b: str) -> dict | None:
    """The (a, b) entry of compare()'s pairs, or None."""
    return next((p for p in result.get("pairs", []) if p["a"] == a and p["b"] == b), None)


def describe_pair(p: dict, unit: str = "x") -> str:
    """'1.07x [1.05, 1.09], 12 rounds' (and 'not converged' where the interval stayed wider than the target)."""
    lo, hi = p["ci95"]
    ci = f"[{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else "[-]"
    return f"{p['ratio']:.3g}{unit} {ci}, {p['rounds']} rounds" + ("" if p.get("converged", True) else ", not converged")
