"""One benchmark run, start to finish, torch-free. The PyTorch-eager baseline comes in as a module
(faceedit.bench.eager, passed by the CLI when torch is installed); nothing here imports it."""
from __future__ import annotations

import gc
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
    info = ModelInfo.load(plan.model)
    result: dict = {"schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "mode": plan.mode, "quick": plan.quick, "machine": machine.describe(),
                    "model": {"path": str(info.path), "image_size": info.image_size,
                              "attributes": list(info.attribute_names),
                              "checkpoint": str(plan.checkpoint) if plan.checkpoint else None,
                              "exported_from": (info.manifest.get("checkpoint") or {})},
                    "plan": {"batches": list(plan.batches), "clients": list(plan.clients),
                             "delays_ms": list(plan.delays_ms), "budget": vars(plan.budget)},
                    "absent": {}, "summary": {}}
    log(f"model {info.path} ({info.image_size}px, {len(info.attribute_names)} attributes); "
        f"machine {result['machine']['kind']}: {result['machine']['cpu']}")
    work = offline.workload(info, max(plan.batches))
    if plan.crops:
        measure_roofline(info, plan, result, log)
        measure_offline(info, work, plan, eager_module, result, log)
    else:
        result.update(flops={}, peak={}, configs=[])
        result["absent"]["crops"] = "crop edits not measured in this run (--photo-only)"
    auto = auto_editor(info, result)
    result["auto_strength"] = measure_auto_strength(auto, plan, log) if plan.crops else {"absent": "--photo-only"}
    result["edit_filter"] = measure_edit_filter(auto, plan, log) if plan.crops else {"absent": "--photo-only"}
    result["concurrency"] = measure_concurrency(info, work, plan, result, log) if plan.concurrency and plan.crops else []
    result["end_to_end"] = measure_end_to_end(info, work, plan, auto, log) if plan.end_to_end else \
        {"photo": {"absent": "not run in this plan"}, "cold_run": {"absent": "not run in this plan"}}
    del auto
    result["targets"] = targets.evaluate(result)
    result["duration_s"] = round(time.perf_counter() - t_start, 1)
    return result


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
    """PyTorch eager, every engine configuration, raw OpenVINO: result["configs"] and the best offline one."""
    configs, eager_out, absent = [], {}, result["absent"]
    if eager_module is None:
        absent["pytorch-eager/fp32"] = "baseline absent: torch is not installed (pip install 'faceedit[train]')"
    elif plan.backends is None or any(b.startswith("pytorch") for b in plan.backends):
        cfgs, why, eager_out = offline.eager_configs(eager_module, plan.checkpoint, info, work, plan, log)
        configs += cfgs
        absent.update(why)
    cfgs, why = offline.engine_configs(info, work, plan, log, eager_out.get("pytorch-eager/fp32"))
    configs += cfgs
    absent.update(why)
    if plan.backends is None or "openvino-raw" in plan.backends:
        cfgs, why = offline.raw_openvino_configs(info, work, plan, log)
        configs += cfgs
        absent.update(why)
    offline.add_ratios(configs, result["flops"], result["peak"])
    result["configs"] = configs
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


def measure_auto_strength(auto, plan, log) -> dict:
    """What auto strength costs on the default editor: p50 at batch 1 and at the largest batch with it on and
    off, on faces the model draws (not random crops: whether an edit lands depends on the face), each face's
    attribute flipped to the opposite of what the model reads, on the attribute with the highest top."""
    import numpy as np

    from faceedit.bench.timing import measure, summarize
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
    for label in ("fixed", "auto"):
        for b in (1, big):
            turn = iter(range(10 ** 9))

            def call(b=b, requests=asked[label]):  # cycle through the faces so pushed and landed ones mix as they come
                i = next(turn) * b % n
                rows = [(i + j) % n for j in range(b)]
                auto.edit_crops([crops[r] for r in rows], [requests[r] for r in rows])
            out[f"{label}_batch_{b}"] = summarize(measure(call, plan.budget), b)
    log(f"auto strength ({name}, up to x{tops[k]:g}; {pushed:.0%} of flips pushed): batch 1 p50 "
        f"{out['fixed_batch_1']['p50_ms']:.3g} -> {out['auto_batch_1']['p50_ms']:.3g} ms, batch {big} "
        f"{out[f'fixed_batch_{big}']['throughput_ips']:.0f} -> {out[f'auto_batch_{big}']['throughput_ips']:.0f} img/s")
    return out


def measure_edit_filter(auto, plan, log) -> dict:
    """What the edit filter (engine.edit_filter) costs on the default editor: p50 at batch 1 and at the largest
    batch with it on and off, fixed strength, on an attribute it filters, faces the model draws."""
    import numpy as np

    from faceedit.bench.timing import measure, summarize
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
    for label in ("off", "on"):
        for b in (1, big):
            out[f"{label}_batch_{b}"] = summarize(measure(lambda b=b, requests=asked[label]: auto.edit_crops(
                crops[:b], requests[:b]), plan.budget), b)
    log(f"edit filter ({name}): batch 1 p50 {out['off_batch_1']['p50_ms']:.3g} -> {out['on_batch_1']['p50_ms']:.3g} ms, "
        f"batch {big} {out[f'off_batch_{big}']['throughput_ips']:.0f} -> {out[f'on_batch_{big}']['throughput_ips']:.0f} img/s")
    return out


def measure_concurrency(info, work, plan, result, log) -> list[dict]:
    """The dynamic batcher on the engine configuration with the best offline throughput."""
    from faceedit.bench.concurrency import batcher_sweep
    from faceedit.engine.editor import MAX_BATCH, Editor

    summary = result["summary"]
    best = next((c for c in result["configs"] if c["name"] == summary.get("best_offline_config")), None)
    if best is None:
        return []
    ed = Editor.load(info, backend=best["backend"], precision=best["precision"], auto_strength=False)
    ed.fused = best["graph"] == "fused"
    max_batch = min(MAX_BATCH, max(plan.batches))
    summary["batcher_config"] = f"{best['name']}, max_batch {max_batch}"
    summary["batcher_offline_throughput_ips"] = summary["best_offline_throughput_ips"]
    log(f"dynamic batcher on {best['name']} (max_batch {max_batch})")
    rows = batcher_sweep(ed, work["crops"][0], work["changes"], plan.clients, plan.delays_ms, plan.client_seconds,
                         max_batch, log)
    del ed
    gc.collect()
    return rows


def measure_end_to_end(info, work, plan, auto, log) -> dict:
    try:
        from faceedit.bench.photo import astronaut_1mp, write_photo
        rgb = astronaut_1mp(plan.photo_side)
    except ImportError as e:
        why = {"absent": f"scikit-image is needed for the test photo ({e.name} missing: pip install 'faceedit[bench]')"}
        return {"photo": why, "cold_run": why}
    if auto is None:
        return {"photo": {"absent": "no backend loads this model"}, "cold_run": {"absent": "no backend loads this model"}}
    e2e = {}
    log(f"{rgb.shape[1]}x{rgb.shape[0]} photo end to end (decode, detect, align, edit, paste back, encode)")
    e2e["photo"] = end_to_end.photo_edit(auto, rgb, work["changes"], plan.photo_budget)
    log("face detection: synthetic astronaut cases" + (f" and the photos in {plan.photos}" if plan.photos else ""))
    e2e["detection"] = end_to_end.detection(auto, plan.photos, log=log)
    log("engine load time")
    e2e["load"] = end_to_end.load_time(info.path, repeats=1 if plan.mode == "tiny" else 3)
    log("cold `faceedit run` processes")
    with tempfile.TemporaryDirectory(prefix="faceedit-bench-photo-") as tmp:
        photo_path = write_photo(Path(tmp) / "astronaut.jpg", rgb)  # a JPEG, as photos people take come
        e2e["cold_run"] = cold = end_to_end.cold_run(info.path, photo_path, work["changes"], plan.cold_repeats)
        cold["argv"] = [a if a != str(photo_path) else "astronaut.jpg" for a in cold["argv"]]
    return e2e
