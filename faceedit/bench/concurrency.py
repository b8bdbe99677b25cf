"""N client threads, each sending one request at a time through the dynamic batcher and waiting for its
answer (closed loop, as a web handler would); throughput over the whole window, per-request percentiles."""
from __future__ import annotations

import threading
import time

import numpy as np


def run_clients(call, clients: int, seconds: float, warmup_s: float = 0.2, min_requests: int = 1) -> dict:
    """call(): one request, blocking until its result. Each of `clients` threads calls it in a loop for
    warmup_s (not counted) and then `seconds`, and at least once counted, however slow a request is."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start_gate = threading.Barrier(clients + 1)
    state = {"measure_from": None, "stop_at": None}

    def client(i):
        start_gate.wait()
        mine = latencies[i]
        while True:
            t0 = time.perf_counter()
            if t0 >= state["stop_at"] and len(mine) >= max(1, min_requests):
                return
            try:
                call()
            except Exception as e:   # record, stop this client; the report says how many failed
                errors.append(f"{type(e).__name__}: {e}")
                return
            t1 = time.perf_counter()
            if t0 >= state["measure_from"]:
                mine.append(t1 - t0)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    state["measure_from"] = now + warmup_s
    state["stop_at"] = now + warmup_s + seconds
    start_gate.wait()
    for t in threads:
        t.join()
    # requests still finishing after stop_at are counted up to the last completion
    done = [x for per in latencies for x in per]
    elapsed = max(1e-9, time.perf_counter() - state["measure_from"])
    out = {"clients": clients, "requests": len(done), "seconds": round(elapsed, 3),
           "throughput_ips": round(len(done) / elapsed, 2), "errors": len(errors)}
    if errors:
        out["first_error"] = errors[0][:200]
    if done:
        p50, p99 = np.percentile(done, [50, 99]) * 1e3
        out.update(p50_ms=round(float(p50), 3), p99_ms=round(float(p99), 3))
    return out


def batcher_sweep(editor, crop, changes, clients, delays_ms, seconds, max_batch: int, log=None) -> list[dict]:
    """The engine's DynamicBatcher under 1..N closed-loop clients, per max-delay setting."""
    from faceedit.engine.batcher import DynamicBatcher

    rows = []
    for delay in delays_ms:
        for n in clients:
            batcher = DynamicBatcher(editor, max_batch=max_batch, max_delay_ms=delay, max_queue=max(1024, 4 * n))
            try:
                row = run_clients(lambda: batcher.edit(crop, changes), n, seconds, warmup_s=min(0.5, seconds / 4))
                st = dict(batcher.stats)
            finally:
                batcher.close()
            row.update(max_delay_ms=delay, max_batch=max_batch,
                       mean_batch=round(st["rows"] / st["batches"], 2) if st["batches"] else 0.0,
                       batches=st["batches"], rejected=st["rejected"])
            rows.append(row)
            if log:
                log(f"  batcher {n} clients, max delay {delay:g} ms: {row['throughput_ips']:.0f} img/s, "
                    f"p50 {row.get('p50_ms', float('nan')):.3g} ms, mean batch {row['mean_batch']:.1f}"
                    + (f", {row['errors']} failed: {row.get('first_error')}" if row["errors"] else ""))
    return rows


class ClientPool:
    """n closed-loop client threads that run only inside windows: window(seconds) lets them loop call() for a
    warm-up and then `seconds`, counts the requests that finished in the measured part, and parks them again
    (between windows they cost nothing, so windows of several pools can be interleaved).

    Throughput is completions inside the measured part over its length, whenever each request started: with n
    clients each waiting for its answer, a request that starts inside the part may finish only after it (n/32
    batches later), so counting only requests that both start and finish inside it undercounts by up to a
    whole cycle; the warm-up (give it about one cycle of all n clients) lets the queue reach its steady state
    first."""

    def __init__(self, call, clients: int, warmup_s: float = 0.05):
        self.call, self.clients, self.warmup_s = call, clients, warmup_s
        self._go = threading.Event()
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._running = 0
        self._closed = False
        self._window = (0.0, 0.0)
        self._done: list[float] = []
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _client(self):
        while True:
            self._go.wait()
            if self._closed:
                return
            with self._lock:
                self._running += 1
            try:
                while self._go.is_set() and not self._closed:
                    t0 = time.perf_counter()
                    try:
                        self.call()
                    except Exception as e:  # counted, reported; the client goes on
                        self.errors.append(f"{type(e).__name__}: {e}")
                        continue
                    t1 = time.perf_counter()
                    if t1 >= self._window[0]:
                        with self._lock:
                            self._done.append((t0, t1))
            finally:
                with self._cv:
                    self._running -= 1
                    self._cv.notify_all()

    def window(self, seconds: float, max_seconds: float = 60.0) -> dict:
        """-> {"throughput_ips", "seconds_per_item", "latencies": [...]}: requests started and finished inside
        the measured part (after the warm-up), over its length: `seconds`, or longer until one has finished."""
        with self._lock:
            self._done = []
        now = time.perf_counter()
        start = now + self.warmup_s
        self._window = (start, None)
        self._go.set()
        time.sleep(self.warmup_s + seconds)
        stop = time.perf_counter()
        while not self._done and stop - start < max_seconds:  # a slow machine: wait for the first one
            time.sleep(0.005)
            stop = time.perf_counter()
        if self._done and not any(t1 <= start + seconds for _, t1 in self._done):
            stop = min(t1 for _, t1 in self._done)
        self._go.clear()
        with self._cv:  # every client back at the gate before the next window (of any pool) starts
            self._cv.wait_for(lambda: self._running == 0, timeout=max_seconds)
            done = [t1 - t0 for t0, t1 in self._done if start <= t1 <= stop]
        span = max(stop - start, 1e-9)
        thr = len(done) / span
        return {"throughput_ips": thr, "seconds_per_item": span / len(done) if done else span, "latencies": done}

    def close(self):
        self._closed = True
        self._go.set()
        for t in self._threads:
            t.join(timeout=10)


CYCLES_PER_WINDOW = 4


def cycle_seconds(editor, crop, batch, request):
    """-> cycle(n): about how long n closed-loop clients take to each get one answer (ceil(n / max_batch)
    batches, a batch's time interpolated between one row and max_batch rows, both timed here once)."""
    import math
    editor.edit_crops([crop], request)  # warm
    t0 = time.perf_counter()
    editor.edit_crops([crop], request)
    t1 = time.perf_counter()
    editor.edit_crops(batch, request)
    t_full, t_one, m = time.perf_counter() - t1, t1 - t0, len(batch)

    def cycle(n: int) -> float:
        rows = min(n, m)
        per_batch = t_one + (rows - 1) * max(t_full - t_one, 0.0) / max(m - 1, 1)
        return math.ceil(n / m) * per_batch
    return cycle


def batcher_comparison(editor, crops, changes, clients, delays_ms, seconds: float, max_batch: int, budget,
                       log=None) -> tuple[list[dict], dict]:
    """The engine's DynamicBatcher under each number of closed-loop clients (and max delay) against offline
    batches of max_batch on the same editor, windows of `seconds` interleaved in rounds until each ratio to
    offline is known to the budget's target (faceedit.bench.paired). -> (rows, the offline contestant's summary
    and the comparison's record)."""
    from faceedit.bench.paired import compare
    from faceedit.engine.batcher import DynamicBatcher

    request = editor.request(changes)
    crop = crops[0]
    batch = list(crops[:max_batch])
    cycle = cycle_seconds(editor, crop, batch, request)
    pools, batchers, lat, stats0, spans = {}, {}, {}, {}, {}
    for delay in delays_ms:
        for n in clients:
            key = f"batcher {n} clients, {delay:g} ms"
            b = DynamicBatcher(editor, max_batch=max_batch, max_delay_ms=delay, max_queue=max(1024, 4 * n))
            batchers[key] = (b, n, delay)
            # a window of at least CYCLES_PER_WINDOW full cycles of the n clients, after one cycle of warm-up: on a
            # slow machine a batch of 32 can take longer than `seconds` (0.36 s here at fp32)
            pools[key] = ClientPool(lambda b=b: b.edit(crop, request), n, warmup_s=max(0.05, cycle(n)))
            spans[key] = max(seconds, CYCLES_PER_WINDOW * cycle(n))
            lat[key] = []

    def window(key):
        def run():
            w = pools[key].window(spans[key])
            lat[key] += w["latencies"]
            return w["seconds_per_item"]
        return run

    def offline():
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            editor.edit_crops(batch, request)
            n += len(batch)
        return (time.perf_counter() - t0) / n

    contestants = {k: window(k) for k in pools}
    contestants["offline"] = offline
    try:
        for k, (b, _, _) in batchers.items():
            stats0[k] = dict(b.stats)
        out = compare(contestants, [(k, "offline") for k in pools], budget)
    finally:
        for p in pools.values():
            p.close()
        for b, _, _ in batchers.values():
            b.close()
    rows = []
    for k, (b, n, delay) in batchers.items():
        s, p = out["contestants"][k], next(p for p in out["pairs"] if p["a"] == k)
        batches, made = b.stats["batches"] - stats0[k]["batches"], b.stats["rows"] - stats0[k]["rows"]
        row = {"clients": n, "max_delay_ms": delay, "max_batch": max_batch, "throughput_ips": s["throughput_ips"],
               "requests": len(lat[k]), "windows": s["rounds"], "window_s": round(spans[k], 3),
               "mean_batch": round(made / batches, 2) if batches else 0.0, "batches": batches,
               "rejected": b.stats["rejected"], "errors": len(pools[k].errors),
               "vs_offline": p["ratio"], "vs_offline_ci": p["ci95"], "vs_offline_converged": p["converged"]}
        if pools[k].errors:
            row["first_error"] = pools[k].errors[0][:200]
        if lat[k]:
            p50, p99 = np.percentile(lat[k], [50, 99]) * 1e3
            row.update(p50_ms=round(float(p50), 3), p99_ms=round(float(p99), 3))
        rows.append(row)
        if log:
            log(f"  {k}: {row['throughput_ips']:.0f} img/s = {p['ratio']:.3g}x offline [{p['ci95'][0]}, {p['ci95'][1]}], "
                f"p50 {row.get('p50_ms', float('nan')):.3g} ms, mean batch {row['mean_batch']:.1f}")
    record = {k: out[k] for k in ("rounds", "seconds", "stopped", "target", "load_start", "load_end")}
    record["offline"] = out["contestants"]["offline"]
    return rows, record
