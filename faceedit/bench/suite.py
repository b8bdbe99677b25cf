"""One benchmark run, start to finish, torch-free. The PyTorch-eager baseline comes in as a module
(faceedit.bench.eager, passed by the CLI when torch is installed); nothing here imports it."""
from __future__ import annotations

import gc
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from faceedit.bench import end_to_end, machine, offline, peak, targets
from faceedit.bench.plan import Plan
from faceedit.bench.results import SCHEMA


def model_flops(info) -> dict:
    """FLOPs per image for each graph path, counted from the fp32 ONNX files (other precisions do the same
    work). three-graph (and eager) = encoder + attributes + decoder over 2 rows per image."""
    from faceedit.bench.flops import count_macs
    g = info.graphs
    per = {name: count_macs(info.path / g[name]["fp32"]["path"]) for name in ("encoder", "attributes", "decoder")
           if "fp32" in (g.get(name) or {})}
    out = {}
    if len(per) == 3:
        three = per["encoder"]["flops_per_image"] + per["attributes"]["flops_per_image"] + 2 * per["decoder"]["flops_per_image"]
        out["three-graph"] = {"flops_per_image": three, "graphs": {k: v["flops_per_image"] for k, v in per.items()}}
        out["eager"] = dict(out["three-graph"])
    if "fp32" in (g.get("editor") or {}):
        e = count_macs(info.path / g["editor"]["fp32"]["path"])
        out["fused"] = {"flops_per_image": e["flops_per_image"], "by_op": e["by_op"], "unknown_nodes": e["unknown_nodes"]}
    return out


def run(plan: Plan, eager_module=None, log=print) -> dict:
    """Everything the plan asks for; returns the result dict (schema faceedit-bench-1)."""
    from faceedit.core.model_dir import ModelInfo

    t_start = time.perf_counter()
    load_start = _load()
    info = ModelInfo.load(plan.model)
    result: dict = {"schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "mode": plan.mode, "quick": plan.quick, "machine": machine.describe(),
                    "model": {"path": str(info.path), "image_size": info.image_size,
                              "attributes": list(info.attribute_names),
                              "checkpoint": str(plan.checkpoint) if plan.checkpoint else None,
                              "exported_from": (info.manifest.get("checkpoint") or {})},
                    "plan": {"batches": list(plan.batches), "clients": list(plan.clients),
                             "delays_ms": list(plan.delays_ms), "budget": vars(plan.budget),
                             "paired": vars(plan.paired)},
                    "load": {"start": load_start}, "absent": {}, "summary": {}}
    log(f"model {info.path} ({info.image_size}px, {len(info.attribute_names)} attributes); "
        f"machine {result['machine']['kind']}: {result['machine']['cpu']}; load average {load_start}")
    if load_start and load_start[0] > 0.25 * result["machine"]["cores"]:
        log(f"warning: this machine is busy (1-minute load {load_start[0]:g} on {result['machine']['cores']} cores): "
            "the figures will be slow and wide; compare only figures taken in one run")
    result["precision"] = precision_report(info)
    log("OpenVINO precision here: " + result["precision"]["detail"])
    work = offline.workload(info, max(plan.batches))
    if plan.crops:
        measure_roofline(info, plan, result, log)
        measure_offline(info, work, plan, eager_module, result, log)
    else:
        result.update(flops={}, peak={}, configs=[])
        result["absent"]["crops"] = "crop edits not measured in this run (--photo-only)"
    auto = auto_editor(info, result)
    result["stages"] = measure_stages(auto, work, plan, log) if plan.crops else {"absent": "--photo-only"}
    result["auto_strength"] = measure_auto_strength(auto, plan, log) if plan.crops else {"absent": "--photo-only"}
    result["edit_filter"] = measure_edit_filter(auto, plan, log) if plan.crops else {"absent": "--photo-only"}
    result["concurrency"] = measure_concurrency(info, work, plan, result, log) if plan.concurrency and plan.crops else []
    result["end_to_end"] = measure_end_to_end(info, work, plan, auto, log) if plan.end_to_end else \
        {"photo": {"absent": "not run in this plan"}, "cold_run": {"absent": "not run in this plan"}}
    del auto
    result["load"]["end"] = _load()
    result["targets"] = targets.evaluate(result)
    result["duration_s"] = round(time.perf_counter() - t_start, 1)
    return result


def _load():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def precision_report(info) -> dict:
    """Which OpenVINO precision this machine runs the model in, and why: bf16 only where the CPU has it
    natively (OpenVINO's BF16 capability) and the export accepted it; else fp32 (emulated bf16 would be slower
    than fp32, so OpenVINO does not offer it)."""
    from faceedit.engine.backends import backend_class
    cls = backend_class("openvino")
    ok, why = cls.available()
    if not ok:
        return {"openvino": None, "detail": f"OpenVINO absent ({why})"}
    b = cls(threads=1)
    caps = list(b.core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    chosen = b.auto_precision(info)
    native = "BF16" in caps
    accepted = bool(((info.manifest.get("precisions") or {}).get("openvino_bf16") or {}).get("accepted"))
    why = ("bf16: native on this CPU and accepted by the export" if chosen == "bf16" else
           "fp32: " + ("this CPU has no native bf16 (OpenVINO capabilities: " + ", ".join(caps) + ")" if not native
                       else "the export did not accept bf16 for this model"))
    return {"openvino": chosen, "native_bf16": native, "bf16_accepted_by_export": accepted, "capabilities": caps,
            "detail": why}


def measure_roofline(info, plan, result, log):
    try:
        result["flops"] = model_flops(info)
    except ImportError as e:
        result["flops"] = {}
        result["absent"]["flops"] = f"the onnx package is needed to count FLOPs ({e.name} missing: pip install 'faceedit[bench]')"
    log("measuring the machine's peak (large MatMul per precision)")
    result["peak"] = {"cpu": peak.measure_peaks(plan.peak_n)}
    if result["machine"]["gpus"]:
        result["peak"]["gpu"] = peak.measure_gpu_peaks()
    else:
        result["absent"]["gpu"] = ("no NVIDIA GPU on this machine: PyTorch CUDA, fp16, CUDA graphs, ONNX Runtime CUDA "
                                   "and TensorRT not run")


def measure_offline(info, work, plan, eager_module, result, log):
    """PyTorch eager, every engine configuration, raw OpenVINO, all loaded and then timed interleaved per batch
    size (offline.interleaved): result["configs"], the comparisons' records and the best offline one."""
    entries, eager_out, absent = [], {}, result["absent"]
    if eager_module is None:
        absent["pytorch-eager/fp32"] = "baseline absent: torch is not installed (pip install 'faceedit[train]')"
    elif plan.backends is None or any(b.startswith("pytorch") for b in plan.backends):
        more, why, eager_out = offline.eager_entries(eager_module, plan.checkpoint, info, work, plan, log)
        entries += more
        absent.update(why)
    more, why = offline.engine_entries(info, work, plan, log, eager_out.get("pytorch-eager/fp32"))
    entries += more
    absent.update(why)
    if plan.backends is None or "openvino-raw" in plan.backends:
        more, why = offline.raw_openvino_entries(info, work, plan, log)
        entries += more
        absent.update(why)
    log(f"{len(entries)} configurations, interleaved in rounds per batch size (+-{100 * plan.paired.target:g}% "
        f"or {plan.paired.max_seconds:g} s each)")
    result["offline_rounds"] = offline.interleaved(entries, plan, log)
    configs = [e.cfg for e in entries]
    offline.add_ratios(configs, result["flops"], result["peak"])
    result["configs"] = configs
    del entries
    gc.collect()
    engine = [c for c in configs if c["engine"]]
    if engine:
        best = max(engine, key=lambda c: max(r["throughput_ips"] for r in c["batches"].values()))
        result["summary"]["best_offline_config"] = best["name"]
        result["summary"]["best_offline_throughput_ips"] = max(r["throughput_ips"] for r in best["batches"].values())


def auto_editor(info, result):
    """The editor a user gets with no options (what `faceedit run` uses): for the photo and the summary."""
    from faceedit.engine.editor import Editor
    try:
        ed = Editor.load(info)
    except Exception as e:
        result["absent"]["auto"] = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None
    result["summary"]["auto_selection"] = ed.describe()
    result["summary"]["default_backend"] = ed.backend.name
    return ed


def measure_stages(auto, work, plan, log) -> dict:
    """Where an edit's time goes, step by step (Editor.stage_times), at batch 1 and the largest batch up to
    32, on the editor a user gets: the bench's crop edit (fixed strength, no filter: the engine rows' maths)
    and the default edit of an attribute the filter and auto strength both apply to, where there is one."""
    import numpy as np

    from faceedit.bench.timing import measure
    from faceedit.engine.editor import MAX_BATCH
    if auto is None:
        return {"absent": "no editor loaded"}
    big = min(MAX_BATCH, max(plan.batches))
    asks = {"crop edit (fixed strength, no filter)": (list(work["crops"]),
                                                      auto.request(work["changes"], auto_strength=False, filtered=False))}
    both = [i for i, f in enumerate(auto.attribute_filters) if f is not None and auto.model.edit_tops
            and auto.model.edit_tops[i] > 1] or [i for i, f in enumerate(auto.attribute_filters) if f is not None]
    if both:
        name = auto.attribute_names[both[0]]
        faces = list(auto.sample(big, seed=0))
        flips = auto.attributes(np.stack(faces))[:, both[0]] <= 0.5
        asks[f"default edit of {name} (auto strength, edit filter)"] = (
            faces, [auto.request({name: float(v)}) for v in flips])
    out = {"editor": auto.describe(), "runs": {}}
    for label, (crops, request) in asks.items():
        for b in (1, big):
            rows = crops[:b] if len(crops) >= b else (crops * b)[:b]
            req = request[:b] if isinstance(request, list) else request
            with auto.stage_times() as st:
                measure(lambda: auto.edit_crops(rows, req), plan.budget)
            out["runs"][f"{label}, batch {b}"] = st.as_dict()
    for key, v in out["runs"].items():
        log(f"stages, {key}: {v['total_ms']:.3g} ms = " + ", ".join(
            f"{k} {ms:.3g}" for k, ms in v["stages_ms"].items() if ms > 0) + f", other {v['other_ms']:.3g}")
    return out


def _on_off(auto, plan, crops, asked: dict, big: int, labels: tuple) -> dict:
    """labels (off, on) timed interleaved at batch 1 and at batch `big`: each label's summary per batch size
    and the ratio on/off's time (the step's cost) with its interval."""
    from faceedit.bench.paired import compare
    out = {}
    n = len(crops)
    for b in (1, big):
        turn = {lab: iter(range(10 ** 9)) for lab in labels}

        def call(label, b=b):  # cycle through the faces so pushed and landed ones mix as they come
            i = next(turn[label]) * b % n
            rows = [(i + j) % n for j in range(b)]
            auto.edit_crops([crops[r] for r in rows], [asked[label][r] for r in rows])
        off, on = labels
        res = compare({lab: (lambda lab=lab: call(lab)) for lab in labels}, [(off, on)], plan.paired,
                      items=dict.fromkeys(labels, b))
        for lab in labels:
            out[f"{lab}_batch_{b}"] = res["contestants"][lab]
        p = res["pairs"][0]
        out[f"cost_batch_{b}"] = {"ratio": p["ratio"], "ci95": p["ci95"], "rounds": res["rounds"],
                                  "converged": p["converged"], "stopped": res["stopped"]}
    return out


def measure_auto_strength(auto, plan, log) -> dict:
    """What auto strength costs on the default editor: fixed and auto interleaved at batch 1 and at the
    largest batch, on faces the model draws (not random crops: whether an edit lands depends on the face),
    each face's attribute flipped to the opposite of what the model reads, on the attribute with the highest
    top. cost_batch_B: auto's time / fixed's time, with its 95% interval."""
    import numpy as np

    from faceedit.engine.editor import MAX_BATCH
    if auto is None or not auto.auto_strength:
        return {"absent": "the model has no auto strength (or no editor loaded)"}
    tops = list(auto.model.edit_tops)
    k = int(np.argmax(tops))
    name = auto.attribute_names[k]
    n = 64
    crops = auto.sample(n, seed=0)
    flips = (auto.attributes(crops)[:, k] <= 0.5).astype(np.float32)
    # one request per face (its own flip), with auto strength and with it turned off, on the one editor
    asked = {label: [auto.request({name: float(v)}, auto_strength=label == "auto") for v in flips]
             for label in ("fixed", "auto")}
    pushed = float(np.mean([not np.array_equal(a, b) for a, b in zip(
        auto.edit_crops(list(crops), asked["auto"]).images, auto.edit_crops(list(crops), asked["fixed"]).images)]))
    out = {"editor": auto.describe(), "attribute": name, "top_multiplier": tops[k], "faces": n,
           "share_pushed": round(pushed, 4)}
    big = min(MAX_BATCH, max(plan.batches))
    out.update(_on_off(auto, plan, list(crops), asked, big, ("fixed", "auto")))
    log(f"auto strength ({name}, up to x{tops[k]:g}; {pushed:.0%} of flips pushed): batch 1 p50 "
        f"{out['fixed_batch_1']['p50_ms']:.3g} -> {out['auto_batch_1']['p50_ms']:.3g} ms "
        f"(x{out['cost_batch_1']['ratio']:.3g} {out['cost_batch_1']['ci95']}), batch {big} "
        f"{out[f'fixed_batch_{big}']['throughput_ips']:.0f} -> {out[f'auto_batch_{big}']['throughput_ips']:.0f} img/s")
    return out


def measure_edit_filter(auto, plan, log) -> dict:
    """What the edit filter (engine.edit_filter) costs on the default editor: off and on interleaved at batch
    1 and at the largest batch, fixed strength, on an attribute it filters, faces the model draws."""
    import numpy as np

    from faceedit.engine.editor import MAX_BATCH
    if auto is None or not auto.edit_filter:
        return {"absent": "the model has no edit filter (or no editor loaded)"}
    k = next(i for i, f in enumerate(auto.attribute_filters) if f is not None)
    name = auto.attribute_names[k]
    n = 32
    crops = list(auto.sample(n, seed=0))
    flips = (auto.attributes(np.stack(crops))[:, k] <= 0.5).astype(np.float32)
    # fixed strength both ways, the filter on and off: request options on the one editor
    asked = {label: [auto.request({name: float(v)}, auto_strength=False, filtered=label == "on") for v in flips]
             for label in ("off", "on")}
    out = {"editor": auto.describe(), "attribute": name, "filter": auto.attribute_filters[k].to_dict(), "faces": n}
    big = min(MAX_BATCH, max(plan.batches))
    out.update(_on_off(auto, plan, crops, asked, big, ("off", "on")))
    log(f"edit filter ({name}): batch 1 p50 {out['off_batch_1']['p50_ms']:.3g} -> {out['on_batch_1']['p50_ms']:.3g} ms "
        f"(x{out['cost_batch_1']['ratio']:.3g} {out['cost_batch_1']['ci95']}), batch {big} "
        f"{out[f'off_batch_{big}']['throughput_ips']:.0f} -> {out[f'on_batch_{big}']['throughput_ips']:.0f} img/s")
    return out


def measure_concurrency(info, work, plan, result, log) -> list[dict]:
    """The dynamic batcher on the engine configuration with the best offline throughput, windows of each
    client count interleaved with windows of offline batches on the same editor (the ratio the target reads)."""
    from faceedit.bench.concurrency import batcher_comparison
    from faceedit.engine.editor import MAX_BATCH, Editor

    summary = result["summary"]
    best = next((c for c in result["configs"] if c["name"] == summary.get("best_offline_config")), None)
    if best is None:
        return []
    ed = Editor.load(info, backend=best["backend"], precision=best["precision"], auto_strength=False,
                     edit_filter=False)
    ed.fused = best["graph"] == "fused"
    max_batch = min(MAX_BATCH, max(plan.batches))
    summary["batcher_config"] = f"{best['name']}, max_batch {max_batch}"
    log(f"dynamic batcher on {best['name']} (max_batch {max_batch}) against offline batches of {max_batch}, "
        f"{plan.client_seconds:g}-s windows interleaved")
    rows, record = batcher_comparison(ed, work["crops"], work["changes"], plan.clients, plan.delays_ms,
                                      plan.client_seconds, max_batch, plan.paired, log)
    summary["batcher_offline_throughput_ips"] = record["offline"]["throughput_ips"]
    result["concurrency_rounds"] = record
    del ed
    gc.collect()
    return rows


def measure_end_to_end(info, work, plan, auto, log) -> dict:
    try:
        from faceedit.bench.photo import astronaut_1mp, astronaut_photo, write_photo
        rgb = astronaut_1mp(plan.photo_side)
    except ImportError as e:
        why = {"absent": f"scikit-image is needed for the test photo ({e.name} missing: pip install 'faceedit[bench]')"}
        return {"photo": why, "photo_large": why, "cold_run": why}
    if auto is None:
        why = {"absent": "no backend loads this model"}
        return {"photo": why, "photo_large": why, "cold_run": why}
    e2e = {}
    log(f"{rgb.shape[1]}x{rgb.shape[0]} photo end to end (decode, detect, align, edit, paste back, encode)")
    e2e["photo"] = end_to_end.photo_edit(auto, rgb, work["changes"], plan.photo_budget)
    if plan.large_photo:
        w, h = plan.large_photo
        log(f"{w}x{h} photo end to end")
        e2e["photo_large"] = end_to_end.photo_edit(auto, astronaut_photo(w, h), work["changes"], plan.photo_budget)
    else:
        e2e["photo_large"] = {"absent": "not run in this plan"}
    log("face detection: synthetic astronaut cases, images without a face"
        + (f" ({plan.no_faces})" if plan.no_faces else " (built-in set of 50)")
        + (f" and the photos in {plan.photos}" if plan.photos else ""))
    e2e["detection"] = end_to_end.detection(auto, plan.photos, no_faces=plan.no_faces, log=log)
    log("engine load time")
    e2e["load"] = end_to_end.load_time(info.path, repeats=1 if plan.mode == "tiny" else 3)
    log("cold `faceedit run` processes")
    with tempfile.TemporaryDirectory(prefix="faceedit-bench-photo-") as tmp:
        photo_path = write_photo(Path(tmp) / "astronaut.jpg", rgb)  # a JPEG, as photos people take come
        e2e["cold_run"] = cold = end_to_end.cold_run(info.path, photo_path, work["changes"], plan.cold_repeats)
        cold["argv"] = [a if a != str(photo_path) else "astronaut.jpg" for a in cold["argv"]]
    return e2e
