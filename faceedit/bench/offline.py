"""Offline batches: every configuration (PyTorch eager, each engine backend x precision x graph path, raw
OpenVINO) edits the same aligned crops at each batch size; p50/p95/p99, throughput, the fraction of the
machine's peak for the configuration's precision, and ratios with their 95% intervals.

Every configuration is loaded first; then, batch size by batch size, all of them run interleaved in rounds
(faceedit.bench.paired.compare) until the ratios the targets read (each configuration vs PyTorch eager, the
engine vs raw OpenVINO at the same precision, a reduced precision vs the backend's fp32) are known to +-3%,
or the plan's time cap."""
from __future__ import annotations

import time

import numpy as np

from faceedit.core.attributes import resolve
from faceedit.bench.paired import compare

EDIT_ATTRIBUTE = "Smiling"


def workload(info, max_batch: int, seed: int = 0) -> dict:
    """The same inputs for every configuration: aligned crops (uint8, model size) and one edit."""
    rng = np.random.default_rng(seed)
    s, names = info.image_size, list(info.attribute_names)
    crops = rng.integers(0, 256, (max_batch, s, s, 3), dtype=np.uint8)
    attr = EDIT_ATTRIBUTE if EDIT_ATTRIBUTE in names else names[0]
    i = names.index(resolve([attr], names)[0])
    target = np.zeros((max_batch, len(names)), np.float32)
    mask = np.zeros_like(target)
    target[:, i] = mask[:, i] = 1.0
    x = (crops.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(127.5) - 1).astype(np.float32)
    return {"crops": crops, "changes": {attr: 1.0}, "target": target, "mask": mask, "x": np.ascontiguousarray(x)}


EAGER = "pytorch-eager/fp32"


class Entry:
    """One configuration: its row in the result (cfg) and call(b), one batch of b crops."""

    def __init__(self, cfg: dict, call, holder=None):
        self.cfg, self.call, self.holder = cfg, call, holder
        cfg.setdefault("batches", {})

    @property
    def name(self) -> str:
        return self.cfg["name"]


def pairs_for(entries: list) -> list[tuple[str, str]]:
    """The ratios worth an interval: each configuration vs PyTorch eager; each engine OpenVINO configuration
    vs raw OpenVINO at the same precision and graph path; each reduced precision vs its backend's fp32 on
    the same graph path (else its fused fp32)."""
    names = {e.name for e in entries}
    out = [(e.name, EAGER) for e in entries if EAGER in names and e.name != EAGER]
    for e in entries:
        c = e.cfg
        if not c.get("engine"):
            continue
        raw = f"openvino-raw/{c['precision']}/{c['graph']}"
        if c["backend"] == "openvino" and raw in names:
            out.append((e.name, raw))
        if c["precision"] != "fp32":
            ref = next((n for n in (f"{c['backend']}/fp32/{c['graph']}", f"{c['backend']}/fp32/fused") if n in names), None)
            if ref:
                out.append((e.name, ref))
    return out


def interleaved(entries: list, plan, log=None) -> dict:
    """Every entry at every batch size of the plan, interleaved per batch size; fills each cfg["batches"]
    and returns, per batch size, the comparison's own record (rounds, seconds, stop reason, load, pairs)."""
    pairs = pairs_for(entries)
    runs = {}
    for b in plan.batches:
        contestants = {e.name: (lambda e=e: e.call(b)) for e in entries}
        out = compare(contestants, pairs, plan.paired, items={e.name: b for e in entries})
        for e in entries:
            row = dict(out["contestants"][e.name])
            if e.name == EAGER:
                row["vs_eager"] = 1.0
            for p in out["pairs"]:
                if p["a"] != e.name:
                    continue
                key = "eager" if p["b"] == EAGER else "raw" if p["b"].startswith("openvino-raw/") else "fp32"
                row[f"vs_{key}"], row[f"vs_{key}_ci"] = p["ratio"], p["ci95"]
                row[f"vs_{key}_converged"] = p["converged"]
            e.cfg["batches"][str(b)] = row
        runs[str(b)] = {k: out[k] for k in ("rounds", "seconds", "stopped", "target", "order", "load_start", "load_end")}
        runs[str(b)]["pairs"] = out["pairs"]
        if log:
            fast = min(entries, key=lambda e: out["contestants"][e.name]["p50_ms"])
            log(f"  batch {b}: {len(entries)} configurations interleaved, {out['rounds']} rounds in {out['seconds']:.1f} s "
                f"({out['stopped']}); fastest {fast.name} p50 {out['contestants'][fast.name]['p50_ms']:.3g} ms")
    return runs


def add_ratios(configs: list[dict], flops: dict, peaks: dict):
    """fraction_of_peak (FLOPs/s achieved over the measured peak of the configuration's precision on its
    device); vs_eager and the other ratios come from the interleaved rounds (interleaved())."""
    for c in configs:
        per_image = flops.get(c.get("graph"), {}).get("flops_per_image") if flops else None
        c["flops_per_image"] = per_image
        device_peaks = peaks.get(c.get("device", "cpu")) or {}
        peak = (device_peaks.get(c.get("peak_precision")) or {}).get("gflops")
        for row in c["batches"].values():
            row.setdefault("vs_eager", None)
            row["fraction_of_peak"] = round(per_image * row["throughput_ips"] / (peak * 1e9), 4) \
                if per_image and peak else None


def eager_entries(eager_module, checkpoint, info, work, plan, log) -> tuple[list, dict, dict]:
    """PyTorch eager from the checkpoint, or (checkpoint None) from the model directory's own weights:
    (entries, absent, outputs at batch 2 for parity)."""
    run, absent = eager_module.variants()
    entries, outputs = [], {}
    for name, kwargs in run.items():
        if plan.backends and not any(name.startswith(b) for b in plan.backends):
            continue
        t0 = time.perf_counter()
        ed = (eager_module.EagerEditor(checkpoint, **kwargs) if checkpoint
              else eager_module.EagerEditor(model_dir=info.path, **kwargs))
        load_s = time.perf_counter() - t0
        if ed.image_size != info.image_size or ed.attributes != list(info.attribute_names):
            raise ValueError(f"checkpoint {checkpoint} does not match model directory {info.path} "
                             "(image size or attributes differ): pass the checkpoint the model was exported from")
        exported_step = (info.manifest.get("checkpoint") or {}).get("step")
        if exported_step is not None and ed.step is not None and exported_step != ed.step:
            log(f"warning: {checkpoint} is step {ed.step}, the model directory was exported from step {exported_step}: "
                "not the same weights (see max_abs_diff_vs_eager_u8)")
        call = (lambda b, ed=ed: ed.edit(work["crops"][:b], work["target"][:b], work["mask"][:b]))
        outputs[name] = call(min(2, len(work["crops"])))
        log(f"{name}: loaded in {load_s:.2f} s")
        entries.append(Entry({"name": name, "backend": name.split("/")[0], "precision": kwargs.get("dtype", "fp32"),
                              "graph": "eager", "device": "gpu" if kwargs.get("device") == "cuda" else "cpu",
                              "peak_precision": kwargs.get("dtype", "fp32"), "engine": False, "load_s": round(load_s, 3),
                              "checkpoint_step": ed.step, "model_dir_step": exported_step,
                              "weights_from": str(checkpoint) if checkpoint else f"{info.path} (rebuilt from its graphs)",
                              "threads": eager_module.torch_threads()}, call, ed))
    return entries, absent, outputs


def engine_entries(info, work, plan, log, reference=None) -> tuple[list, dict]:
    """Every installed engine backend x precision x graph path (fused editor graph; three graphs too where
    the plan asks), each a fixed-strength edit without the edit filter: the same maths as the eager baseline
    (auto strength and the filter are timed on their own)."""
    from faceedit.engine.backends import AUTO_ORDER, backend_class
    from faceedit.engine.editor import Editor

    entries, absent = [], {}
    for name in AUTO_ORDER:
        if plan.backends and name not in plan.backends:
            continue
        cls = backend_class(name)
        ok, why = cls.available()
        if not ok:
            absent[name] = why
            continue
        for precision in cls.precisions:
            paths = ("fused", "three-graph") if plan.three_graph else ("fused",)
            for path in paths:
                label = f"{name}/{precision}/{path}"
                t0 = time.perf_counter()
                try:
                    ed = Editor.load(info, backend=name, precision=precision, auto_strength=False, edit_filter=False)
                except Exception as e:   # e.g. no such graphs in this model, or the device cannot run it
                    absent[f"{name}/{precision}"] = str(e).splitlines()[0] if str(e) else type(e).__name__
                    break
                if path == "fused" and not ed.fused:
                    if plan.three_graph:
                        absent[label] = f"no {precision} editor graph in the model directory (the engine runs three graphs)"
                        continue
                    path, label = "three-graph", f"{name}/{precision}/three-graph"  # quick: the path it has
                if path == "three-graph":
                    missing = [g for g in ("encoder", "decoder") if not ed.backend.has(ed.model, g, precision)]
                    if missing:  # e.g. an int8 decoder the export rejected as over its accuracy budget
                        absent[label] = f"no {precision} {' or '.join(missing)} graph in the model directory"
                        continue
                    ed.fused = False
                call = (lambda b, ed=ed: ed.edit(work["crops"][:b], work["changes"]))
                out2 = call(min(2, len(work["crops"])))
                load_s = time.perf_counter() - t0
                log(f"{label}: {ed.describe()}, loaded + first call in {load_s:.2f} s")
                cfg = {"name": label, "backend": name, "precision": precision, "graph": path,
                       "device": cls.device, "peak_precision": precision, "engine": True,
                       "load_s": round(load_s, 3), "threads": getattr(ed.backend, "threads", None)}
                if reference is not None:
                    cfg["max_abs_diff_vs_eager_u8"] = int(np.abs(out2.astype(np.int16) - reference.astype(np.int16)).max())
                entries.append(Entry(cfg, call, ed))
    return entries, absent


def raw_openvino_entries(info, work, plan, log) -> tuple[list, dict]:
    from faceedit.bench import raw_openvino as rov

    ok, why = rov.available()
    if not ok:
        return [], {"openvino-raw": why}
    entries, absent = [], {}
    for precision in rov.PRECISIONS:
        label = f"openvino-raw/{precision}/" + ("fused" if precision != "int8" else "three-graph")
        try:
            t0 = time.perf_counter()
            runner = rov.RawOpenVINO(info, precision)
            load_s = time.perf_counter() - t0
        except Exception as e:
            absent[label] = str(e).splitlines()[0] if str(e) else type(e).__name__
            continue
        call = (lambda b, runner=runner: runner.run(work["x"][:b], work["target"][:b], work["mask"][:b]))
        log(f"{label}: compiled in {load_s:.2f} s")
        entries.append(Entry({"name": label, "backend": "openvino-raw", "precision": precision,
                              "graph": "fused" if precision != "int8" else "three-graph", "device": "cpu",
                              "peak_precision": precision, "engine": False, "load_s": round(load_s, 3)}, call, runner))
    return entries, absent
