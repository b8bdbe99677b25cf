"""The issue's targets, computed from one result: measured value, target, pass/miss (None: not measured).
Figures for people to read; never timed assertions in tests."""
from __future__ import annotations


def _b1(cfg):
    return cfg["batches"].get("1")


def _best_thr(cfg):
    """(images/s, batch key) of the batch size with the highest throughput; keys are strings as in JSON."""
    rows = [(r["throughput_ips"], b) for b, r in cfg["batches"].items()]
    return max(rows) if rows else (0.0, "0")


def _target(name, goal, measured, unit, ok, detail=""):
    return {"name": name, "target": goal, "measured": None if measured is None else round(measured, 3),
            "unit": unit, "pass": None if measured is None else bool(ok), "detail": detail}


def evaluate(result: dict) -> list[dict]:
    configs = [c for c in result.get("configs", []) if c.get("batches")]
    eager = next((c for c in configs if c["name"] == "pytorch-eager/fp32"), None)
    engine = [c for c in configs if c.get("engine")]
    engine_b1 = [c for c in engine if _b1(c)]
    best_b1 = min(engine_b1, key=lambda c: _b1(c)["p50_ms"]) if engine_b1 else None
    out = []
    if result.get("absent", {}).get("crops"):  # --photo-only: the crop-edit targets were not measured
        why = result["absent"]["crops"]
        out = [_target(n, g, None, u, None, why) for n, g, u in (
            ("batch-1 crop edit vs PyTorch eager", ">= 4x", "x"), ("batch-1 vs OpenVINO best precision", ">= 1x", "x"),
            ("batched throughput vs roofline", ">= 80% of peak", "%"), ("batcher, 64 clients vs best offline", ">= 90%", "%"))]
        return out + photo_targets(result)

    # 1. batch-1 aligned-crop edit vs PyTorch eager (the engine's fastest configuration at batch 1)
    if best_b1 and eager and _b1(eager):
        r = _b1(eager)["p50_ms"] / _b1(best_b1)["p50_ms"]
        out.append(_target("batch-1 crop edit vs PyTorch eager", ">= 4x", r, "x", r >= 4,
                           f"{best_b1['name']} {_b1(best_b1)['p50_ms']:.3g} ms vs eager {_b1(eager)['p50_ms']:.3g} ms p50"))
    else:
        out.append(_target("batch-1 crop edit vs PyTorch eager", ">= 4x", None, "x", None,
                           "baseline absent (no torch)" if not eager else "engine not measured"))

    # 2. ... and no slower than OpenVINO's best precision run directly on the same files
    raw = [c for c in configs if c["backend"] == "openvino-raw" and _b1(c)]
    if best_b1 and raw:
        best_raw = min(raw, key=lambda c: _b1(c)["p50_ms"])
        r = _b1(best_raw)["p50_ms"] / _b1(best_b1)["p50_ms"]
        out.append(_target("batch-1 vs OpenVINO best precision", ">= 1x", r, "x", r >= 1,
                           f"{best_b1['name']} {_b1(best_b1)['p50_ms']:.3g} ms (uint8 in/out) vs {best_raw['name']} "
                           f"{_b1(best_raw)['p50_ms']:.3g} ms (float tensors)"))
    else:
        out.append(_target("batch-1 vs OpenVINO best precision", ">= 1x", None, "x", None, "OpenVINO not measured"))

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

    # 4. reduced precision vs the engine's own fp32 (per backend with both)
    for backend in sorted({c["backend"] for c in engine}):
        mine = [c for c in engine if c["backend"] == backend]
        fp32 = [_best_thr(c)[0] for c in mine if c["precision"] == "fp32"]
        low = [(c["name"], _best_thr(c)[0]) for c in mine if c["precision"] != "fp32"]
        if fp32 and low:
            name, thr = max(low, key=lambda t: t[1])
            r = thr / max(fp32)
            out.append(_target(f"reduced precision vs fp32 ({backend})", ">= 2x", r, "x", r >= 2,
                               f"{name} {thr:.0f} img/s vs fp32 {max(fp32):.0f} img/s (best batch each)"))

    # 5. batcher with 64 clients vs best offline batched throughput
    conc = [r for r in result.get("concurrency", []) if r["clients"] == 64]
    best_offline = result.get("summary", {}).get("batcher_offline_throughput_ips")
    if conc and best_offline:
        row = max(conc, key=lambda r: r["throughput_ips"])
        r = row["throughput_ips"] / best_offline
        out.append(_target("batcher, 64 clients vs best offline", ">= 90%", r * 100, "%", r >= 0.9,
                           f"{row['throughput_ips']:.0f} vs {best_offline:.0f} img/s (max delay {row['max_delay_ms']} ms, "
                           f"mean batch {row['mean_batch']:.1f})"))
    else:
        out.append(_target("batcher, 64 clients vs best offline", ">= 90%", None, "%", None, "not measured"))

    return out + photo_targets(result)


def photo_targets(result: dict) -> list[dict]:
    """The photo path: end to end, the face detector, the cold `faceedit run` and its memory."""
    out = []
    e2e = result.get("end_to_end", {})
    photo = e2e.get("photo") or {}
    out.append(_target("1-MP photo end to end p50", "<= 25 ms", photo.get("p50_ms"), "ms",
                       photo.get("p50_ms") is not None and photo["p50_ms"] <= 25, photo.get("detail", photo.get("absent", ""))))
    out += detection_targets(e2e.get("detection") or {})
    cold = e2e.get("cold_run") or {}
    out.append(_target("cold `faceedit run`", "<= 0.6 s", cold.get("wall_s_median"), "s",
                       cold.get("wall_s_median") is not None and cold["wall_s_median"] <= 0.6,
                       "median of fresh processes" if cold.get("ok") else cold.get("absent", cold.get("error", ""))))
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
    folder = det.get("folder") or {}
    if folder.get("photos"):
        share = folder["found_fraction"]
        out.append(_target("photos found with landmark eyes", ">= 99%", 100 * share, "%", share >= 0.99,
                           f"{folder['found_with_landmark_eyes_inside']}/{folder['photos']} in {folder['folder']}, "
                           f"detect p50 {folder['detect_ms_p50']:.3g} ms/photo"))
    else:
        out.append(_target("photos found with landmark eyes", ">= 99%", None, "%", None,
                           "no folder of photos given (faceedit bench --photos FOLDER)"))
    return out
