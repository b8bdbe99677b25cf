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
