"""Crop edits through a Triton server against the engine in this process, in the same run and the same way:
N closed-loop client threads (faceedit.bench.concurrency), each editing one aligned crop at a time.

- engine: the in-process Editor behind the engine's DynamicBatcher (what `faceedit serve` runs), on the
  backend the server's python models run, fp32;
- triton: the engine's Editor with its graphs on the server (faceedit.engine.backends.triton_client.remote_editor,
  built by the caller): every client's request goes to Triton on its own and Triton's
  dynamic batcher merges them; mean batch from Triton's own statistics (rows inferred / executions).

`faceedit triton bench` starts the server (or takes --url) and prints the table."""
from __future__ import annotations

from faceedit.bench.concurrency import batcher_sweep, run_clients


def sweep(local, remote, crop, changes: dict, clients=(1, 8, 64), seconds: float = 5.0, max_batch: int = 32,
          max_delay_ms: float = 2.0, statistics=None, log=None) -> list[dict]:
    """One row per (target, clients). statistics(): Triton's {"inference_count", "execution_count"} of the
    editor model, or None (then no mean batch for the triton rows)."""
    rows = []
    for n in clients:
        # the in-process engine behind its own dynamic batcher: the same measurement as the batcher bench's
        row, = batcher_sweep(local, crop, changes, [n], [max_delay_ms], seconds, max_batch)
        row.update(target="engine")
        rows.append(row)
        _log(log, row)
        before = statistics() if statistics else None
        row = run_clients(lambda: remote.edit(crop, changes), n, seconds, warmup_s=min(0.5, seconds / 4))
        after = statistics() if statistics else None
        mean = None
        if before and after and after["execution_count"] > before["execution_count"]:
            mean = round((after["inference_count"] - before["inference_count"])
                         / (after["execution_count"] - before["execution_count"]), 2)
        row.update(target="triton", mean_batch=mean)
        rows.append(row)
        _log(log, row)
    return rows


def _log(log, row):
    if log:
        log(f"  {row['target']:7s} {row['clients']:3d} clients: {row['throughput_ips']:7.1f} crops/s, "
            f"p50 {row.get('p50_ms', float('nan')):.3g} ms, p99 {row.get('p99_ms', float('nan')):.3g} ms, "
            f"mean batch {row['mean_batch'] if row['mean_batch'] is not None else '-'}"
            + (f", {row['errors']} failed: {row.get('first_error')}" if row["errors"] else ""))


def table(rows: list[dict]) -> str:
    """Markdown: one line per client count, engine and Triton side by side."""
    by = {(r["target"], r["clients"]): r for r in rows}
    out = ["| clients | engine crops/s | engine p50 ms | Triton crops/s | Triton p50 ms | Triton mean batch |",
           "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in sorted({r["clients"] for r in rows}):
        e, t = by.get(("engine", n), {}), by.get(("triton", n), {})
        out.append(f"| {n} | {e.get('throughput_ips', '-')} | {e.get('p50_ms', '-')} | {t.get('throughput_ips', '-')} "
                   f"| {t.get('p50_ms', '-')} | {t.get('mean_batch') if t.get('mean_batch') is not None else '-'} |")
    return "\n".join(out)
