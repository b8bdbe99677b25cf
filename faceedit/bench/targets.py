"""The issue's targets, computed from one result: measured value, target, pass/miss (None: not measured).
Figures for people to read; never timed assertions in tests."""
from __future__ import annotations


def _b1(cfg):
    return cfg["batches"].get("1")


def _best_thr(cfg):
    """(images/s, batch key) of the batch size with the highest throughput; keys are strings as in JSON."""
    rows = [(r["throughput_ips"], b) for b, r in cfg["batches"].items()]
    return max(rows) if rows else (0.0, "0")


def _target(name, goal, measured, unit, ok, detail="", ci=None):
    out = {"name": name, "target": goal, "measured": None if measured is None else round(measured, 3),
           "unit": unit, "pass": None if measured is None else bool(ok), "detail": detail}
    if ci is not None:
        out["ci95"] = ci
    return out


def _ci_text(ci) -> str:
    return f" [95% {ci[0]:.3g}-{ci[1]:.3g}]" if ci and ci[0] is not None and ci[1] is not None else ""


CROP_TARGETS = (("batch-1 crop edit vs PyTorch eager", ">= 5x", "x"),
                ("engine vs raw OpenVINO, batch 1", ">= 1.05x, interval above 1", "x"),
                ("engine vs raw OpenVINO, batch 32", ">= 1.05x, interval above 1", "x"),
                ("batched throughput vs roofline", ">= 80% of peak", "%"),
                ("batcher, 64 clients vs offline", ">= 90%", "%"))


def evaluate(result: dict) -> list[dict]:
    configs = [c for c in result.get("configs", []) if c.get("batches")]
    eager = next((c for c in configs if c["name"] == "pytorch-eager/fp32"), None)
    engine = [c for c in configs if c.get("engine")]
    engine_b1 = [c for c in engine if _b1(c)]
    best_b1 = min(engine_b1, key=lambda c: _b1(c)["p50_ms"]) if engine_b1 else None
    out = []
    if result.get("absent", {}).get("crops"):  # --photo-only: the crop-edit targets were not measured
        why = result["absent"]["crops"]
        return [_target(n, g, None, u, None, why) for n, g, u in CROP_TARGETS] + photo_targets(result)

    # 1. batch-1 aligned-crop edit vs PyTorch eager (the engine's fastest configuration at batch 1; the ratio
    # from rounds where the two ran interleaved)
    row = _b1(best_b1) if best_b1 else None
    if row and eager and row.get("vs_eager") is not None:
        r, ci = row["vs_eager"], row.get("vs_eager_ci")
        out.append(_target("batch-1 crop edit vs PyTorch eager", ">= 5x", r, "x", r >= 5,
                           f"{best_b1['name']} {row['p50_ms']:.3g} ms vs eager {_b1(eager)['p50_ms']:.3g} ms p50"
                           + _ci_text(ci), ci))
    else:
        out.append(_target("batch-1 crop edit vs PyTorch eager", ">= 5x", None, "x", None,
                           "baseline absent (no torch)" if not eager else "engine not measured"))

    # 2. the engine against raw OpenVINO on the same files at the precision the engine picks here
    precision = (result.get("precision") or {}).get("openvino") or "fp32"
    ov = next((c for c in engine if c["name"] == f"openvino/{precision}/fused"), None) or \
        next((c for c in engine if c["backend"] == "openvino" and c["precision"] == precision), None)
    sizes = sorted(int(b) for b in (ov or {}).get("batches", {}))
    for label, b in (("batch 1", 1), ("batch 32", max((x for x in sizes if x <= 32), default=None))):
        name = f"engine vs raw OpenVINO, {label}"
        row = (ov or {}).get("batches", {}).get(str(b)) if b else None
        if row and row.get("vs_raw") is not None:
            r, ci = row["vs_raw"], row.get("vs_raw_ci")
            ok = r >= 1.05 and ci is not None and ci[0] is not None and ci[0] > 1.0
            out.append(_target(name, ">= 1.05x, interval above 1", r, "x", ok,
                               f"{ov['name']} vs openvino-raw/{ov['precision']}/{ov['graph']} at batch {b} "
                               f"({row['p50_ms']:.3g} ms, uint8 in/out vs float tensors; "
                               f"{(result.get('precision') or {}).get('detail', precision)})" + _ci_text(ci), ci))
        else:
            out.append(_target(name, ">= 1.05x, interval above 1", None, "x", None,
                               "OpenVINO (engine or raw) not measured at this batch size"))

    # 3. batched throughput vs the roofline of the precision used
    roof = [(c["batches"][b].get("fraction_of_peak"), c, b) for c in engine for b in c["batches"]
            if c["batches"][b].get("fraction_of_peak") is not None]
    if roof:
        best_cfg = max(engine, key=lambda c: _best_thr(c)[0])
        thr, b = _best_thr(best_cfg)
        frac = best_cfg["batches"][b].get("fraction_of_peak")
        out.append(_target("batched throughput vs roofline", ">= 80% of peak", None if frac is None else frac * 100,
                           "%", frac is not None and frac >= 0.8,
                           f"{best_cfg['name']} {thr:.0f} img/s at batch {b} vs {best_cfg.get('peak_precision')} peak"))
    else:
        out.append(_target("batched throughput vs roofline", ">= 80% of peak", None, "%", None, "no FLOP count or peak"))

    # 4. reduced precision vs the engine's own fp32 (per backend with both), at the largest batch, interleaved
    for backend in sorted({c["backend"] for c in engine}):
        mine = [c for c in engine if c["backend"] == backend]
        low = [c for c in mine if c["precision"] != "fp32"]
        best = max(low, key=lambda c: _best_thr(c)[0], default=None)
        if best is None:
            continue
        big = str(max(int(b) for b in best["batches"]))
        row = best["batches"][big]
        if row.get("vs_fp32") is not None:
            r, ci = row["vs_fp32"], row.get("vs_fp32_ci")
            out.append(_target(f"reduced precision vs fp32 ({backend})", ">= 2x", r, "x", r >= 2,
                               f"{best['name']} vs {backend} fp32 at batch {big}" + _ci_text(ci), ci))

    # 5. batcher with 64 clients vs offline batches on the same editor, windows interleaved
    conc = [r for r in result.get("concurrency", []) if r["clients"] == 64 and r.get("vs_offline") is not None]
    if conc:
        row = max(conc, key=lambda r: r["vs_offline"])
        ci = [None if v is None else round(100 * v, 2) for v in (row.get("vs_offline_ci") or [None, None])]
        out.append(_target("batcher, 64 clients vs offline", ">= 90%", 100 * row["vs_offline"], "%",
                           row["vs_offline"] >= 0.9,
                           f"{row['throughput_ips']:.0f} img/s (max delay {row['max_delay_ms']} ms, mean batch "
                           f"{row['mean_batch']:.1f}) vs offline batches of {row['max_batch']} on the same editor"
                           + _ci_text(ci), ci))
    else:
        out.append(_target("batcher, 64 clients vs offline", ">= 90%", None, "%", None, "not measured"))

    return out + photo_targets(result)


def photo_targets(result: dict) -> list[dict]:
    """The photo path: 1-MP and 12-MP photos end to end, the face detector, the cold `faceedit run` and its memory."""
    out = []
    e2e = result.get("end_to_end", {})
    for key, label, goal in (("photo", "1-MP photo end to end p50", 25), ("photo_large", "12-MP photo end to end p50", 120)):
        photo = e2e.get(key) or {}
        ci = photo.get("p50_ci95_ms")
        out.append(_target(label, f"<= {goal} ms", photo.get("p50_ms"), "ms",
                           photo.get("p50_ms") is not None and photo["p50_ms"] <= goal,
                           photo.get("detail", photo.get("absent", "")) + _ci_text(ci), ci))
    out += detection_targets(e2e.get("detection") or {})
    cold = e2e.get("cold_run") or {}
    out.append(_target("cold `faceedit run`", "<= 0.45 s", cold.get("wall_s_median"), "s",
                       cold.get("wall_s_median") is not None and cold["wall_s_median"] <= 0.45,
                       "median of fresh processes, a 1-MP JPEG" if cold.get("ok") else cold.get("absent", cold.get("error", ""))))
    out.append(_target("runtime peak RSS", "<= 250 MB", cold.get("peak_rss_mb"), "MB",
                       cold.get("peak_rss_mb") is not None and cold["peak_rss_mb"] <= 250,
                       "peak RSS of the cold `faceedit run` process (os.wait4)"))
    return out


def detection_targets(det: dict) -> list[dict]:
    """The face detector: synthetic faces found with eyes within 5% of the eye distance (true eyes known),
    and real photos (bench --photos) found with eyes from landmarks."""
    out = []
    syn = det.get("synthetic") or {}
    if syn.get("faces"):
        share = syn["within_5pct"] / syn["faces"]
        out.append(_target("synthetic faces found, eyes within 5%", "100%", 100 * share, "%",
                           share == 1 and syn.get("false_faces", 0) == 0,
                           f"{det.get('detector')}: {syn['found']}/{syn['faces']} found, mean eye error "
                           f"{100 * (syn.get('eye_error_mean') or 0):.1f}%, max {100 * (syn.get('eye_error_max') or 0):.1f}% "
                           f"of the eye distance, {syn.get('false_faces', 0)} false faces"))
    else:
        out.append(_target("synthetic faces found, eyes within 5%", "100%", None, "%", None,
                           syn.get("absent", "not measured")))
    none = det.get("no_face") or {}
    if none.get("images"):
        out.append(_target("no face on images that hold none", f"0 of {none['images']}", none["with_false_faces"],
                           "images", none["with_false_faces"] == 0,
                           f"{none.get('set')}: {none['false_faces']} false faces"
                           + (f" on {', '.join(none['false_on'])}" if none["false_on"] else "")))
    else:
        out.append(_target("no face on images that hold none", "0", None, "images", None,
                           none.get("absent", "not measured")))
    folder = det.get("folder") or {}
    if folder.get("photos"):
        share = folder["found_fraction"]
        out.append(_target("photos found with landmark eyes", ">= 98%", 100 * share, "%", share >= 0.98,
                           f"{folder['found_with_landmark_eyes_inside']}/{folder['photos']} in {folder['folder']}, "
                           f"detect p50 {folder['detect_ms_p50']:.3g} ms/photo"))
    else:
        out.append(_target("photos found with landmark eyes", ">= 98%", None, "%", None,
                           "no folder of photos given (faceedit bench --photos FOLDER)"))
    return out
