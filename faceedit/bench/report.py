"""Terminal tables (rich) and the markdown headline for the README, from one result dict."""
from __future__ import annotations

from faceedit.bench.targets import _b1, _best_thr


def _fmt(v, spec=".3g", none="-"):
    return none if v is None else format(v, spec)


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def _ratio(v, ci, unit="") -> str:
    """'4.9 [4.8-5.0]': a ratio with its 95% interval from interleaved rounds."""
    if v is None:
        return "-"
    if not ci or ci[0] is None or ci[1] is None:
        return f"{v:.3g}{unit}"
    return f"{v:.3g}{unit} [{ci[0]:.3g}-{ci[1]:.3g}]"


def config_rows(result: dict) -> list[dict]:
    """One summary row per configuration: batch-1 percentiles, best throughput, ratios, % of peak."""
    rows = []
    for c in result.get("configs", []):
        if not c.get("batches"):
            continue
        b1 = _b1(c) or {}
        thr, b = _best_thr(c)
        best = c["batches"][b]
        rows.append({"name": c["name"], "gflops": None if not c.get("flops_per_image") else c["flops_per_image"] / 1e9,
                     "b1_p50": b1.get("p50_ms"), "b1_p95": b1.get("p95_ms"), "b1_p99": b1.get("p99_ms"),
                     "b1_vs_eager": b1.get("vs_eager"), "b1_vs_eager_ci": b1.get("vs_eager_ci"),
                     "b1_vs_raw": b1.get("vs_raw"), "b1_vs_raw_ci": b1.get("vs_raw_ci"), "best_thr": thr, "best_batch": b,
                     "best_vs_eager": best.get("vs_eager"), "peak_fraction": best.get("fraction_of_peak"),
                     "peak_precision": c.get("peak_precision")})
    return rows


def print_report(result: dict, console=None):
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    m = result["machine"]
    console.print(f"[bold]faceedit bench[/] on {m['kind']}: {m['cpu']}, {m['cores']} cores"
                  + (f", GPU {', '.join(m['gpus'])}" if m.get("gpus") else "") + (f" [{result['mode']}]" if result.get("mode", "full") != "full" else ""))
    load = result.get("load") or {}
    if load:
        console.print(f"load average (1, 5, 15 min): {load.get('start')} at the start, {load.get('end')} at the end"
                      f" ({m['cores']} cores: above ~{0.25 * m['cores']:g} the machine was busy and figures are slow)")
    if (result.get("precision") or {}).get("detail"):
        console.print(f"OpenVINO precision: {result['precision']['detail']}")
    paired = (result.get("plan") or {}).get("paired") or {}
    if paired:
        console.print(f"every comparison: contestants interleaved in rotating rounds until each ratio's 95% interval "
                      f"is within +-{100 * paired['target']:g}% (t interval on paired log ratios), at most "
                      f"{paired['max_seconds']:g} s; intervals in \\[brackets]")
    for device, peak in (result.get("peak") or {}).items():
        found = [f"{p} {peak[p]['gflops']:.0f} GFLOP/s ({peak[p].get('method')})" for p in ("fp32", "bf16", "fp16", "int8")
                 if p in peak]
        console.print(f"measured {device} peak (MatMul {peak.get('matmul_n')}): " + (", ".join(found) or "none"))

    t = Table(title="crop edit: batch-1 latency, best throughput, vs PyTorch eager (same run)")
    for col, j in (("configuration", "left"), ("GFLOP/img", "right"), ("b1 p50 ms", "right"), ("p95", "right"),
                   ("p99", "right"), ("b1 x eager [95%]", "right"), ("b1 x raw OV [95%]", "right"),
                   ("best img/s", "right"), ("@batch", "right"),
                   ("x eager", "right"), ("% of peak", "right")):
        t.add_column(col, justify=j)
    for r in config_rows(result):
        t.add_row(r["name"], _fmt(r["gflops"]), _fmt(r["b1_p50"]), _fmt(r["b1_p95"]), _fmt(r["b1_p99"]),
                  _ratio(r["b1_vs_eager"], r["b1_vs_eager_ci"]), _ratio(r["b1_vs_raw"], r["b1_vs_raw_ci"]),
                  f"{r['best_thr']:.0f}", str(r["best_batch"]),
                  _fmt(r["best_vs_eager"], ".2f"), _pct(r["peak_fraction"]))
    if result.get("configs"):  # none with --photo-only
        console.print(t)

    batches = sorted({int(b) for c in result.get("configs", []) for b in c["batches"]})
    t = Table(title="p50 ms per call / throughput img/s, by batch size")
    t.add_column("configuration")
    for b in batches:
        t.add_column(str(b), justify="right")
    for c in result.get("configs", []):
        if c.get("batches"):
            t.add_row(c["name"], *[f"{c['batches'][str(b)]['p50_ms']:.3g} / {c['batches'][str(b)]['throughput_ips']:.0f}"
                                   if str(b) in c["batches"] else "-" for b in batches])
    if result.get("configs"):
        console.print(t)
        for b, run in (result.get("offline_rounds") or {}).items():
            console.print(f"  batch {b}: {run['rounds']} rounds, {run['seconds']:.1f} s, {run['stopped']}", highlight=False)

    stages = (result.get("stages") or {}).get("runs") or {}
    if stages:
        t = Table(title=f"where an edit's time goes, ms per call ({result['stages'].get('editor', '')})")
        t.add_column("stage")
        for key in stages:
            t.add_column(key, justify="right")
        names = list(next(iter(stages.values()))["stages_ms"])
        for name in names + ["other (Python)", "total"]:
            cells = [v["stages_ms"].get(name) if name in v["stages_ms"] else v["other_ms"] if name.startswith("other")
                     else v["total_ms"] for v in stages.values()]
            t.add_row(name, *[_fmt(c) for c in cells])
        console.print(t)

    if result.get("concurrency"):
        t = Table(title=f"dynamic batcher ({result.get('summary', {}).get('batcher_config', '?')}) vs offline batches, "
                        "windows interleaved")
        for col in ("clients", "max delay ms", "img/s", "x offline [95%]", "p50 ms", "p99 ms", "mean batch"):
            t.add_column(col, justify="right")
        for r in result["concurrency"]:
            t.add_row(str(r["clients"]), _fmt(r["max_delay_ms"]), f"{r['throughput_ips']:.0f}",
                      _ratio(r.get("vs_offline"), r.get("vs_offline_ci")), _fmt(r.get("p50_ms")),
                      _fmt(r.get("p99_ms")), f"{r['mean_batch']:.1f}")
        console.print(t)

    for line in (auto_strength_line(result), edit_filter_line(result)):
        if line:
            console.print(line)

    e2e = result.get("end_to_end", {})
    for key, label in (("photo", "1-MP photo end to end"), ("photo_large", "12-MP photo end to end"),
                       ("load", "engine load"), ("cold_run", "cold `faceedit run`")):
        v = e2e.get(key) or {}
        if v.get("absent"):
            console.print(f"{label}: [yellow]absent[/] ({v['absent']})")
        elif key.startswith("photo") and "p50_ms" in v:
            console.print(f"{label}: p50 {_ratio(v['p50_ms'], v.get('p50_ci95_ms'))} ms, p95 {v['p95_ms']:.3g}, "
                          f"p99 {v['p99_ms']:.3g} ({v.get('detail', '')})", highlight=False)
        elif key == "load" and v:
            console.print(f"{label}: " + ", ".join(f"{k} {s:.3g} s" for k, s in v.items() if isinstance(s, (int, float))))
        elif key == "cold_run" and v.get("wall_s_median") is not None:
            console.print(f"{label}: median {v['wall_s_median']:.3g} s wall, peak RSS {v['peak_rss_mb']:.0f} MB")
        elif key == "cold_run" and v:
            console.print(f"{label}: [red]failed[/] ({v.get('error', '')})")

    for line in detection_lines(e2e.get("detection") or {}):
        console.print(line, highlight=False)

    absent = result.get("absent", {})
    if absent:
        console.print("[dim]absent: " + "; ".join(f"{k}: {v}" for k, v in absent.items()) + "[/]")

    t = Table(title="targets")
    for col in ("target", "goal", "measured", "", "detail"):
        t.add_column(col)
    for x in result.get("targets", []):
        mark = {True: "[green]pass[/]", False: "[red]miss[/]", None: "[yellow]absent[/]"}[x["pass"]]
        t.add_row(x["name"], x["target"], _fmt(x["measured"], ".3g") + (f" {x['unit']}" if x["measured"] is not None else ""),
                  mark, x["detail"])
    console.print(t)


def detection_lines(det: dict) -> list[str]:
    """The face detector's report: synthetic cases by kind, and the folder of photos when given."""
    lines = []
    syn = det.get("synthetic") or {}
    if syn.get("cases"):
        kinds = {}
        for c in syn["cases"]:
            k = kinds.setdefault(c["kind"], {"faces": 0, "found": 0, "errors": [], "false": 0, "ms": []})
            k["faces"] += c["faces"]
            k["found"] += c["found"]
            k["false"] += c["false_faces"]
            k["errors"] += [e for e in c["eye_errors"] if e is not None]
            k["ms"].append(c["ms"])
        lines.append(f"face detection ({det.get('detector')}), synthetic astronaut cases: {syn['found']}/{syn['faces']} "
                     f"found, {syn['within_5pct']} with both eyes within 5% of the eye distance, {syn['false_faces']} false")
        for kind, k in kinds.items():
            err = f", eye error mean {100 * sum(k['errors']) / len(k['errors']):.1f}% max {100 * max(k['errors']):.1f}%" \
                if k["errors"] else ""
            lines.append(f"  {kind:<9} {k['found']}/{k['faces']} found{err}, {k['false']} false, "
                         f"{sorted(k['ms'])[len(k['ms']) // 2]:.3g} ms/photo")
    none = det.get("no_face") or {}
    if none.get("images"):
        lines.append(f"face detection on images without a face ({none.get('set')}): {none['with_false_faces']} of "
                     f"{none['images']} with a false face" + (f" ({', '.join(none['false_on'])})" if none["false_on"] else "")
                     + f", {none['ms_p50']:.3g} ms per image")
    folder = det.get("folder") or {}
    if folder.get("photos"):
        lines.append(f"face detection on {folder['folder']}: {folder['found_with_landmark_eyes_inside']}/{folder['photos']} "
                     f"found with landmark eyes ({100 * folder['found_fraction']:.1f}%), detect p50 "
                     f"{folder['detect_ms_p50']:.3g} ms, p95 {folder['detect_ms_p95']:.3g} ms, decode p50 "
                     f"{folder['decode_ms_p50']:.3g} ms; not found: {', '.join(folder['missed']) or 'none'}")
    return lines


def _before_after(a: dict, before: str, after: str) -> str:
    """'batch-1 p50 X ms BEFORE -> Y ms AFTER; batch B T1 -> T2 img/s' of a block timed both ways."""
    big = max(int(k.rsplit("_", 1)[1]) for k in a if k.startswith(f"{before}_batch_"))
    return (f"batch-1 p50 {a[f'{before}_batch_1']['p50_ms']:.3g} ms {before} -> {a[f'{after}_batch_1']['p50_ms']:.3g} ms "
            f"{after}; batch {big} {a[f'{before}_batch_{big}']['throughput_ips']:.0f} -> "
            f"{a[f'{after}_batch_{big}']['throughput_ips']:.0f} img/s")


def auto_strength_line(result: dict) -> str:
    """One line: what auto strength (an edit the model does not see land is rendered again, harder) costs."""
    a = result.get("auto_strength") or {}
    if not a or a.get("absent"):
        return f"auto strength: absent ({a['absent']})" if a.get("absent") else ""
    return (f"auto strength ({a['editor']}; {a['attribute']} flipped on {a['faces']} sampled faces, up to "
            f"x{a['top_multiplier']:g}, {a['share_pushed']:.0%} pushed): " + _before_after(a, "fixed", "auto")
            + _cost(a))


def edit_filter_line(result: dict) -> str:
    """One line: what the edit filter (the guided filter on the edit's change) costs."""
    a = result.get("edit_filter") or {}
    if not a or a.get("absent"):
        return f"edit filter: absent ({a['absent']})" if a.get("absent") else ""
    return (f"edit filter ({a['attribute']} edits, radius {a['filter']['radius']}, eps {a['filter']['eps']:g}): "
            + _before_after(a, "off", "on") + _cost(a))


def _cost(a: dict) -> str:
    """'; time x1.3 [1.2-1.4] at batch 1, ...': the step's cost as an interleaved ratio."""
    parts = [f"x{_ratio(v['ratio'], v.get('ci95'))} at batch {k.rsplit('_', 1)[1]}" for k, v in a.items()
             if k.startswith("cost_batch_") and v.get("ratio") is not None]
    return ("; time " + ", ".join(parts)) if parts else ""


def markdown(result: dict) -> str:
    """The headline table for the README (and benchmarks/README.md)."""
    m = result["machine"]
    lines = [f"Measured by `faceedit bench` on {m['kind']} ({m['cpu']}, {m['cores']} cores"
             + (f", {', '.join(m['gpus'])}" if m.get("gpus") else "") + f"), {result['created'][:10]}"
             + {"quick": " (quick run)", "tiny": " (tiny smoke run: timings meaningless)"}.get(result.get("mode"), "")
             + f". Aligned {result.get('model', {}).get('image_size', '?')}px crops, uint8 in and out, one attribute edit each; "
             "x PyTorch eager = eager's time / this one's at batch 1, from rounds where they ran interleaved, with the "
             "95% interval; x raw OV the same against raw OpenVINO at the same precision; % of peak at the best batch."
             + (f" Load average {(result.get('load') or {}).get('start')} at the start, "
                f"{(result.get('load') or {}).get('end')} at the end." if result.get("load") else ""), "",
             "| configuration | batch-1 p50 ms | p99 ms | x PyTorch eager | x raw OV | best img/s (batch) | % of peak |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in config_rows(result):
        lines.append(f"| {r['name']} | {_fmt(r['b1_p50'])} | {_fmt(r['b1_p99'])} | {_ratio(r['b1_vs_eager'], r['b1_vs_eager_ci'])} | "
                     f"{_ratio(r['b1_vs_raw'], r['b1_vs_raw_ci'])} | {r['best_thr']:.0f} ({r['best_batch']}) | {_pct(r['peak_fraction'])} |")
    line = auto_strength_line(result)
    if line:
        lines += ["", "Engine rows above are fixed-strength edits without the edit filter (the same maths as the eager "
                      "baseline); " + line + "."]
    line = edit_filter_line(result)
    if line and not line.startswith("edit filter: absent"):
        lines += ["", line + "."]
    lines += ["", "| target | goal | measured | |", "| --- | --- | ---: | --- |"]
    for x in result.get("targets", []):
        mark = {True: "pass", False: "miss", None: "absent"}[x["pass"]]
        lines.append(f"| {x['name']} | {x['target']} | "
                     f"{_fmt(x['measured'], '.3g') + ' ' + x['unit'] if x['measured'] is not None else '-'} | {mark} |")
    return "\n".join(lines) + "\n"
