"""The bench's interleaved comparisons and their stop rule, on synthetic timers: a fake clock that each
contestant advances by a known, seeded amount. Deterministic; nothing here times real work."""
from __future__ import annotations

import math

import numpy as np
import pytest

from faceedit.bench import paired
from faceedit.bench.paired import PairedBudget, compare, log_ratio_interval, median_ci, t975


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.log = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def contestant(clock, name, seconds, noise=0.0, seed=0, drift=0.0):
    """A call that takes `seconds` x (1 + drift x elapsed time) x lognormal(noise) on the fake clock."""
    rng = np.random.default_rng(seed)

    def call():
        clock.log.append(name)
        clock.now += seconds * (1 + drift * clock.now) * math.exp(noise * rng.standard_normal())
    return call


BUDGET = PairedBudget(target=0.03, min_rounds=6, max_rounds=400, max_seconds=60.0, block_seconds=0.05,
                      max_block_calls=8, warmup_calls=1, gap_seconds=0.0)


def test_t_quantiles():
    assert t975(1) == pytest.approx(12.706) and t975(10) == pytest.approx(2.228)
    assert t975(31) == pytest.approx(2.0395, abs=1e-3) and t975(60) == pytest.approx(2.0003, abs=1e-3)
    assert t975(10_000) == pytest.approx(paired.Z975, abs=1e-3)
    assert all(t975(d) > t975(d + 1) for d in range(1, 200))   # no step where the table meets the expansion


def test_interval_on_log_ratios():
    d = np.log([1.10, 1.12, 1.08, 1.11, 1.09])
    out = log_ratio_interval(d)
    assert out["ratio"] == pytest.approx(math.exp(d.mean()))
    lo, hi = out["ci95"]
    half = t975(4) * d.std(ddof=1) / math.sqrt(5)
    assert lo == pytest.approx(math.exp(d.mean() - half)) and hi == pytest.approx(math.exp(d.mean() + half))
    assert out["half_width"] == pytest.approx(math.expm1(half))
    assert log_ratio_interval([0.1])["half_width"] == math.inf   # one round: no interval


def test_a_clear_difference_converges_and_the_interval_holds_the_truth():
    clock = FakeClock()
    out = compare({"fast": contestant(clock, "fast", 0.010, 0.02, seed=1),
                   "slow": contestant(clock, "slow", 0.011, 0.02, seed=2)},
                  [("fast", "slow")], BUDGET, clock=clock, sleep=clock.sleep)
    p = out["pairs"][0]
    assert out["stopped"] == "converged" and p["converged"]
    assert p["ci95"][0] <= 1.1 <= p["ci95"][1] and p["ci95"][0] > 1.0   # the truth inside, 1.0 outside
    assert p["half_width"] <= 0.03 and out["rounds"] >= BUDGET.min_rounds
    assert out["contestants"]["fast"]["p50_ms"] == pytest.approx(10, rel=0.05)
    assert out["contestants"]["slow"]["throughput_ips"] == pytest.approx(1 / 0.011, rel=0.05)
    calls = {c["block_calls"] for c in out["contestants"].values()}
    assert len(calls) == 1 and calls.pop() % 2 == 1   # one odd block size for all: medians stay comparable


def test_rounds_interleave_and_rotate():
    clock = FakeClock()
    budget = PairedBudget(target=0.0, min_rounds=1, max_rounds=4, max_seconds=1e9, block_seconds=0.0,
                          max_block_calls=1, warmup_calls=1, gap_seconds=0.0)
    compare({n: contestant(clock, n, 0.01, 0.1, seed=i) for i, n in enumerate("ABC")}, [("A", "B")], budget, clock=clock, sleep=clock.sleep)
    assert "".join(clock.log) == "ABC" + "ABC" + "BCA" + "CAB" + "ABC"   # warm-up, then rotating rounds


def test_a_noisy_comparison_stops_at_the_time_cap_and_says_so():
    clock = FakeClock()
    budget = PairedBudget(target=0.03, min_rounds=4, max_rounds=10_000, max_seconds=5.0, block_seconds=0.02,
                          max_block_calls=2, warmup_calls=1, gap_seconds=0.0)
    out = compare({"a": contestant(clock, "a", 0.01, 0.8, seed=3), "b": contestant(clock, "b", 0.01, 0.8, seed=4)},
                  [("a", "b")], budget, clock=clock, sleep=clock.sleep)
    assert out["stopped"] == "time cap" and not out["pairs"][0]["converged"]
    assert 5.0 <= out["seconds"] < 5.5 and out["pairs"][0]["half_width"] > 0.03
    lo, hi = out["pairs"][0]["ci95"]
    assert lo < 1.0 < hi   # equal contestants: the interval says "no difference shown"


def test_interleaving_cancels_a_machine_that_slows_down():
    # both contestants are equally fast, but the machine slows by 50% per second of the run: timed one after
    # the other, the second would look slower; interleaved, the ratio stays 1
    clock = FakeClock()
    out = compare({"a": contestant(clock, "a", 0.005, 0.01, seed=5, drift=0.5),
                   "b": contestant(clock, "b", 0.005, 0.01, seed=6, drift=0.5)},
                  [("a", "b")], BUDGET, clock=clock, sleep=clock.sleep)
    lo, hi = out["pairs"][0]["ci95"]
    assert out["stopped"] == "converged" and lo < 1.0 < hi and abs(out["pairs"][0]["ratio"] - 1) < 0.02


def test_contestants_that_report_their_own_cost_and_several_pairs():
    clock = FakeClock()

    def window(per_item):  # e.g. a closed-loop load window: advances the clock, returns seconds per item
        def call():
            clock.now += 0.2
            return per_item
        return call
    out = compare({"batcher": window(1 / 900), "offline": window(1 / 1000), "other": window(1 / 500)},
                  [("batcher", "offline"), ("other", "offline")], BUDGET, clock=clock, sleep=clock.sleep)
    ratios = {(p["a"], p["b"]): p["ratio"] for p in out["pairs"]}
    assert ratios[("batcher", "offline")] == pytest.approx(0.9) and ratios[("other", "offline")] == pytest.approx(0.5)
    assert out["contestants"]["batcher"]["throughput_ips"] == pytest.approx(900)
    assert paired.pair(out, "other", "offline")["converged"]
    assert "0.9x" in paired.describe_pair(paired.pair(out, "batcher", "offline"))


def test_unknown_pair_names_are_an_error():
    with pytest.raises(ValueError, match="unknown contestants: c"):
        compare({"a": lambda: None, "b": lambda: None}, [("a", "c")], BUDGET)


def test_median_interval_is_distribution_free():
    out = median_ci(np.arange(1, 101, dtype=float))
    assert out["p50"] == 50.5 and out["ci95"][0] < 50.5 < out["ci95"][1]
    assert out["ci95"] == [41.0, 61.0]
