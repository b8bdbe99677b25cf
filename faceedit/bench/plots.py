"""One PNG per run: p50 latency vs batch, throughput vs batch, and throughput vs client threads."""
from __future__ import annotations

import io
from pathlib import Path

from faceedit.core.files import atomic_write_bytes


def plot(result: dict, path) -> Path | None:
    """Write the figure to `path` (atomically); None when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    lat, thr, conc = axes
    for cfg in result.get("configs", []):
        rows = sorted((int(b), r) for b, r in cfg["batches"].items())
        if not rows:
            continue
        xs = [b for b, _ in rows]
        style = "--" if cfg["backend"].startswith("pytorch") else "-"
        lat.plot(xs, [r["p50_ms"] for _, r in rows], style, marker="o", ms=3, label=cfg["name"])
        thr.plot(xs, [r["throughput_ips"] for _, r in rows], style, marker="o", ms=3, label=cfg["name"])
    for ax, title, ylabel in ((lat, "p50 latency per call", "ms"), (thr, "throughput", "images/s")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    lat.legend(fontsize=7)
    series: dict[str, list] = {}
    for row in result.get("concurrency", []):
        series.setdefault(f"max delay {row['max_delay_ms']} ms", []).append(row)
    for label, rows in series.items():
        rows.sort(key=lambda r: r["clients"])
        conc.plot([r["clients"] for r in rows], [r["throughput_ips"] for r in rows], marker="o", label=label)
    best = result.get("summary", {}).get("best_offline_throughput_ips")
    if best:
        conc.axhline(best, color="grey", ls=":", label="best offline batched")
    conc.set_xscale("log", base=2)
    conc.set_xlabel("client threads")
    conc.set_ylabel("images/s")
    conc.set_title("dynamic batcher: throughput vs clients")
    conc.grid(True, which="both", alpha=0.3)
    if series:
        conc.legend(fontsize=8)
    m = result.get("machine", {})
    fig.suptitle(f"faceedit bench: {m.get('kind', '?')} ({m.get('cpu', '?')}, {m.get('cores', '?')} cores)"
                 + (f" [{result['mode']}]" if result.get("mode", "full") != "full" else ""))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
