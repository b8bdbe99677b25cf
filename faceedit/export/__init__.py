"""Checkpoint -> self-describing model directory (docs/model-directory.md).

export_model: fp32 ONNX graphs (BatchNorm folded, checked) -> parity vs PyTorch on real faces -> reduced
precision variants that each pass an accuracy budget -> optional judge and TensorRT engines -> manifest.
Everything is built in a hidden sibling directory and swapped into place only when complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from faceedit.export.onnx_graphs import ExportError, export_judge  # noqa: F401  (public API)
from faceedit.export.variants import DEFAULT_BUDGET

__all__ = ["export_model", "export_judge", "ExportError", "DEFAULT_BUDGET", "write_triton"]

EYES = [[0.365, 0.432], [0.628, 0.432]]
REFERENCE_SIZE = [178, 218]


def _data_dir(path) -> Path | None:
    if not path:
        return None
    p = Path(path).expanduser()
    return p if p.is_dir() else None


def attribute_table(attributes: list[str], data_dir: Path | None) -> tuple[list[dict], str]:
    """Names in order, with train-split frequency and a default (1.0 when most train faces have it)."""
    freq = None
    source = "no data folder: frequencies unknown, defaults 0.0"
    if data_dir is not None:
        from faceedit.train.data import DataError, load_celeba
        try:
            ds = load_celeba(data_dir)
            _, labels = ds.select(attributes)
            idx = ds.split_indices("train")
            if len(idx):
                freq = labels[idx].mean(0)
                source = f"train split of {ds.root} ({len(idx)} images)"
        except (DataError, ValueError):
            pass
    rows = []
    for i, name in enumerate(attributes):
        f = None if freq is None else round(float(freq[i]), 5)
        rows.append({"name": name, "default": 1.0 if f is not None and f > 0.5 else 0.0, "frequency": f})
    return rows, source


def load_eval_json(path) -> dict:
    """An eval JSON file as a dict; ExportError with a one-line message when it cannot be read."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise ExportError(f"eval JSON not found: {p}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"cannot read eval JSON {p}: {str(e).splitlines()[0]}") from None
    if not isinstance(obj, dict):
        raise ExportError(f"eval JSON {p} is not an object")
    return obj


def _read_eval(path) -> dict:
    """The manifest's "eval" entry: the summary of a `faceedit eval` JSON (or a summary given directly)."""
    p = Path(path)
    obj = load_eval_json(p)
    if "edit_success" in obj:  # a full `faceedit eval` result: keep its summary
        from faceedit.eval.report import summary
        try:
            return {**summary(obj), "source": p.name}
        except (KeyError, TypeError):
            raise ExportError(f"eval JSON {p} is not a faceedit eval result") from None
    return {**obj.get("summary", obj), "source": p.name}


def _versions(extra=()) -> dict:
    import onnx
    import onnxruntime
    import torch
    from faceedit import __version__
    v = {"faceedit": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
         "onnxruntime": onnxruntime.__version__}
    for mod in extra:
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    return v


def export_model(checkpoint, out_dir, *, calib_data=None, int8=True, openvino=True, fp16=True, judge=None,
                 eval_json=None, log=print, budget: dict | None = None, calib_size: int = 256,
                 eval_size: int = 256, tensorrt: bool = False, trt_batch=(1, 8, 64), threads: int = 0,
                 edit_gain: float = 1.0, edit_gains: dict | None = None, edit_gain_note: str = "") -> dict:
    """Export `checkpoint` to the model directory `out_dir`; returns the manifest written there.

    budget: {"min_attribute_agreement", "min_psnr_db"} for every reduced-precision variant (a variant over
    budget is reported and recorded as rejected, never written). edit_gain: the decoder gain of set values;
    edit_gains: {attribute: gain} overriding it for those attributes. Raises ExportError (one-line message)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from faceedit.export import atomic, onnx_graphs, parity, quantize, variants
    from faceedit.core.manifest import FORMAT, FORMAT_VERSION, file_entry, load_manifest, write_manifest
    from faceedit.train.data import CROP_CENTER, CROP_FRACTION
    from faceedit.train.train import load_checkpoint

    budget = {**DEFAULT_BUDGET, **(budget or {})}
    for name, g in {"all": edit_gain, **(edit_gains or {})}.items():
        if not 0.5 <= g <= 4:
            raise ExportError(f"edit gain must be within 0.5..4, got {g:g} ({name})")
    if tensorrt:  # fail before minutes of work, not after
        from faceedit.export.tensorrt import TensorRTUnavailable, check_available
        try:
            check_available()
        except TensorRTUnavailable as e:
            raise ExportError(str(e)) from None
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise ExportError(f"checkpoint not found: {ckpt}")
    try:
        model, state = load_checkpoint(ckpt)
    except ValueError as e:
        raise ExportError(str(e).splitlines()[0]) from None
    except Exception as e:
        raise ExportError(f"cannot load checkpoint {ckpt}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    eval_summary = _read_eval(eval_json) if eval_json else None
    if judge is not None and not Path(judge).is_file():
        raise ExportError(f"judge checkpoint not found: {judge}")
    if judge is not None and Path(judge).suffix == ".onnx":
        from faceedit.export.onnx_graphs import reused_judge_entry
        reused_judge_entry(Path(judge))  # refused before any graph is written
    cfg = model.cfg
    if edit_gains and set(edit_gains) - set(cfg.attributes):
        raise ExportError(f"edit gains name attributes the model lacks: {sorted(set(edit_gains) - set(cfg.attributes))}")
    trained_on = _data_dir(state.get("config", {}).get("data"))
    calib_dir = _data_dir(calib_data) if calib_data else trained_on
    if calib_data and calib_dir is None:
        raise ExportError(f"calibration data folder not found: {calib_data}")
    threads = threads or min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = lambda p: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])

    with atomic.staging_dir(out_dir) as tmp:
        # 1. fp32 graphs
        protos = onnx_graphs.export_all(model, tmp, log=log)
        graphs = {name: {"fp32": file_entry(tmp / f"{name}.onnx", *onnx_graphs.signature(p))}
                  for name, p in protos.items()}
        fp32 = {name: session(tmp / f"{name}.onnx") for name in protos}

        # 2. parity ONNX Runtime vs PyTorch on real faces
        faces, where = parity.load_faces(trained_on, "test", 7, cfg.image_size, seed=1)
        par = parity.run_parity(fp32, onnx_graphs.torch_modules(model), faces, cfg.n_attr)
        worst = max(v["max_abs_error"] for v in par.values())
        par.update({"images": where, "target": parity.PARITY_TARGET, "limit": parity.PARITY_LIMIT})
        log(f"parity ONNX Runtime vs PyTorch on {where}: " + ", ".join(
            f"batch {k.split('_')[1]} max abs error {v['max_abs_error']:.2e}" for k, v in par.items()
            if k.startswith("batch_")) + (" (within target)" if worst <= parity.PARITY_TARGET else " (ABOVE TARGET)"))
        if worst > parity.PARITY_LIMIT:
            raise ExportError(f"ONNX Runtime differs from PyTorch by {worst:.2e} (limit {parity.PARITY_LIMIT:g}): "
                              "refusing to write a model that does not match its checkpoint")

        # 3. reduced precision, each judged on held-out faces against fp32
        precisions = {"fp32": {"runtime": "onnxruntime", "reference": True}}
        versions_extra = []
        if int8 or openvino or fp16:
            held_out, held_where = parity.load_faces(trained_on, "val", eval_size, cfg.image_size, seed=2)
            ref = variants.Reference(fp32, held_out)
            log(f"variant accuracy measured on {held_where}; budget: agreement >= "
                f"{budget['min_attribute_agreement']:.2%}, PSNR >= {budget['min_psnr_db']:g} dB")
        if int8 or openvino:
            calib, calib_where = parity.load_faces(calib_dir, "train", calib_size, cfg.image_size, seed=3)
            if calib_dir is None:
                log(f"no calibration data folder: calibrating int8 on {calib_where} (accuracy on real faces may differ)")
            else:
                log(f"int8 calibration on {calib_where}")
            mu_c = fp32["encoder"].run(["mu"], {"image": calib})[0]
            probs_c = fp32["attributes"].run(None, {"image": calib})[0]
            feeds = {"encoder": {"image": calib}, "attributes": {"image": calib},
                     "decoder": {"z": mu_c, "attributes": quantize.decoder_calibration(mu_c, probs_c)}}

        def keep(label, precision, paths: dict, runners: dict, record_extra: dict):
            accepted, record = variants.judge_variant(label, runners, ref, budget, log)
            for name, path in paths.items():
                if name in accepted:
                    entry = file_entry(path, graphs[name]["fp32"]["inputs"], graphs[name]["fp32"]["outputs"])
                    companion = Path(path).with_suffix(".bin")
                    if companion.exists():  # OpenVINO IR weights travel with the .xml
                        entry["companions"] = [{"path": companion.name, "sha256": file_entry(companion, [], [])["sha256"],
                                                "bytes": companion.stat().st_size}]
                    graphs[name][precision] = entry
                else:
                    for p in (Path(path), Path(path).with_suffix(".bin")):
                        p.unlink(missing_ok=True)
            precisions[precision] = {**record_extra, **record}

        if int8:
            paths = {n: tmp / f"{n}.int8.onnx" for n in feeds}
            for n, p in paths.items():
                quantize.quantize_int8(tmp / f"{n}.onnx", p, feeds[n])
            keep("int8 (ONNX Runtime QDQ)", "int8", paths, {n: session(p) for n, p in paths.items()},
                 {"runtime": "onnxruntime", "method": "static QDQ, per-channel int8 weights, uint8 activations, MinMax",
                  "float_ops": list(quantize.FLOAT_OPS),
                  "calibration": calib_where})
        if fp16:
            ok, why = quantize.fp16_available()
            if ok:
                paths = {n: tmp / f"{n}.fp16.onnx" for n in ("encoder", "attributes", "decoder", "editor")}
                for n, p in paths.items():
                    quantize.convert_fp16(tmp / f"{n}.onnx", p)
                # accuracy measured with ONNX Runtime's CPU fp16 kernels; on GPUs it runs CUDA/TensorRT providers
                keep("fp16 (for GPUs)", "fp16", paths, {n: session(p) for n, p in paths.items()},
                     {"runtime": "onnxruntime (CUDA/TensorRT providers)", "io": "float32",
                      "measured_on": "onnxruntime CPU"})
                versions_extra.append("onnxconverter_common")
            else:
                log(f"fp16 skipped: {why}")
                precisions["fp16"] = {"skipped": why}
        if openvino:
            from faceedit.export import openvino_variant as ovv
            ok, why = ovv.available()
            if not ok:
                log(f"OpenVINO skipped: {why}")
                precisions["openvino_bf16"] = {"skipped": why}
            else:
                versions_extra.append("openvino")
                if ovv.cpu_supports_bf16():
                    runners = {n: ovv.OVRunner(tmp / f"{n}.onnx", ovv.BF16_CONFIG, threads)
                               for n in ("encoder", "attributes", "decoder")}
                    accepted, record = variants.judge_variant("OpenVINO bf16", runners, ref, budget, log)
                    # a load-time hint over the fp32 files: usable only if every graph passes
                    record["accepted"] = not record["rejected"]
                    precisions["openvino_bf16"] = {"runtime": "openvino", "files": "fp32",
                                                   "compile_config": dict(ovv.BF16_CONFIG), **record}
                else:
                    precisions["openvino_bf16"] = {"skipped": "this CPU has no bf16 support in OpenVINO"}
                ok, why = ovv.nncf_available()
                if ok:
                    versions_extra.append("nncf")
                    paths = {n: tmp / f"{n}.ov-int8.xml" for n in feeds}
                    for n, p in paths.items():
                        ovv.quantize_nncf(tmp / f"{n}.onnx", p, feeds[n])
                    keep("OpenVINO int8 (NNCF)", "openvino_int8", paths,
                         {n: ovv.OVRunner(p, threads=threads) for n, p in paths.items()},
                         {"runtime": "openvino", "method": "NNCF post-training quantization (mixed preset)",
                          "calibration": calib_where})
                else:
                    log(f"OpenVINO int8 skipped: {why}")
                    precisions["openvino_int8"] = {"skipped": why}

        # 4. where real faces sit in latent space (what sample() draws from)
        from faceedit.export.latent import LATENT_FILE, fit_latent_prior
        latent_entry = fit_latent_prior(fp32["encoder"], trained_on, cfg.image_size, tmp / LATENT_FILE, log=log)

        # 4b. judge (evaluation only)
        judge_entry = None
        if judge is not None:
            judge_entry = export_judge(judge, tmp / "judge.onnx")
            log(f"exported judge.onnx ({len(judge_entry['attributes'])} attributes)")

        # 5. TensorRT engines
        trt_record = None
        if tensorrt:
            from faceedit.export.tensorrt import build_all
            from faceedit.train.data import default_cache_dir
            trt_record = build_all(tmp, {n: g["fp32"] for n, g in graphs.items()}, default_cache_dir(), trt_batch, log)

        # 6. the fp32 graphs store each distinct weight tensor once, in weights.bin (the fused editor
        #    repeats the three graphs; encoder and attribute head share a trunk)
        blob_bytes = onnx_graphs.share_weights(tmp, list(graphs))
        blob = {"path": onnx_graphs.SHARED_WEIGHTS, "sha256": file_entry(tmp / onnx_graphs.SHARED_WEIGHTS, [], [])["sha256"],
                "bytes": blob_bytes}
        for name, g in graphs.items():
            g["fp32"] = {**file_entry(tmp / f"{name}.onnx", g["fp32"]["inputs"], g["fp32"]["outputs"]),
                         "companions": [blob]}
        log(f"fp32 weights shared by {', '.join(graphs)}: {blob_bytes / 1e6:.1f} MB in {onnx_graphs.SHARED_WEIGHTS}")

        attrs, attr_source = attribute_table(list(cfg.attributes), trained_on)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "image_size": cfg.image_size, "layout": "NCHW", "channel_order": "RGB", "value_range": [-1.0, 1.0],
            "z_shape": list(cfg.z_shape),
            "attributes": attrs,
            "attribute_source": attr_source,
            "crop": {"reference_size": REFERENCE_SIZE, "box_fraction": round(CROP_FRACTION, 6),
                     "box_center": [round(c, 6) for c in CROP_CENTER], "eyes": EYES},
            "graphs": graphs,
            "judge": judge_entry,
            "latent_prior": latent_entry,
            "edit_strength": {"gain": float(edit_gain),
                              **({"per_attribute": {a: float(g) for a, g in edit_gains.items()}} if edit_gains else {}),
                              "chosen": edit_gain_note or "default (identity)",
                              "meaning": "a value v set by the user enters the decoder as 0.5 + gain * (v - 0.5), with "
                                         "the attribute's per_attribute gain where it has one; attributes not set keep "
                                         "the attribute head's 0/1 decisions"},
            "precisions": precisions,
            "opset": onnx_graphs.OPSET,
            "versions": _versions(versions_extra),
            "parity": par,
            "eval": eval_summary,
            "checkpoint": {"file": ckpt.name, "step": state.get("step"), "data": state.get("config", {}).get("data")},
        }
        if trt_record:
            manifest["tensorrt"] = trt_record
        write_manifest(tmp, manifest)
        load_manifest(tmp)  # the engine's own check, before anyone can see the directory
    log(f"wrote {Path(out_dir)}")
    return manifest


def write_triton(model_dir, triton_dir, **kw) -> list[str]:
    """Triton model repository from an exported model directory (see faceedit.export.triton)."""
    from faceedit.export.triton import write_repository
    from faceedit.core.manifest import load_manifest
    return write_repository(model_dir, triton_dir, load_manifest(model_dir), **kw)
