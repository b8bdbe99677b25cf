"""The export as named stages over one Export job, run in order inside a staging directory:

    fp32 graphs -> parity -> held-out faces -> int8 -> fp16 -> OpenVINO -> latent prior -> TensorRT
    -> shared weights -> manifest

Each stage reads what earlier ones left on the job and adds its own part; a stage that has nothing to do (a
variant not asked for) returns at once. Any stage may raise ExportError: the staging directory is then
discarded and the previous model directory stays as it was (faceedit.export.atomic)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from faceedit.core.manifest import FORMAT, FORMAT_VERSION, file_entry, load_manifest, write_manifest
from faceedit.export import onnx_graphs, parity, quantize, variants
from faceedit.export.onnx_graphs import ExportError

EYES = [[0.365, 0.432], [0.628, 0.432]]  # where the crop puts the eyes (fractions of its side)
REFERENCE_SIZE = [178, 218]              # CelebA's aligned image, which the crop box is given in


@dataclass
class Export:
    """One export: its inputs (set by export_model) and what the stages build."""
    model: object                   # CVAEGAN in eval mode
    state: dict                     # the checkpoint dict
    checkpoint: Path
    log: object = print
    budget: dict = field(default_factory=dict)
    threads: int = 1
    trained_on: Path | None = None  # the checkpoint's data folder, if it is here
    calib_dir: Path | None = None
    calib_size: int = 256
    eval_size: int = 256
    int8: bool = True
    fp16: bool = True
    openvino: bool = True
    tensorrt: bool = False
    trt_batch: tuple = (1, 8, 64)
    edit_gain: float = 1.0
    edit_gains: dict | None = None
    edit_gain_note: str = ""
    eval_summary: dict | None = None
    # built by the stages
    out: Path | None = None         # the staging directory
    graphs: dict = field(default_factory=dict)      # graph -> precision -> manifest file entry
    fp32: dict = field(default_factory=dict)        # graph -> ONNX Runtime session of the fp32 file
    parity: dict = field(default_factory=dict)
    precisions: dict = field(default_factory=lambda: {"fp32": {"runtime": "onnxruntime", "reference": True}})
    versions_extra: list = field(default_factory=list)
    reference: object = None        # variants.Reference on held-out faces
    feeds: dict | None = None       # int8 calibration inputs per graph
    calib_where: str = ""
    latent_prior: dict | None = None
    tensorrt_record: dict | None = None
    manifest: dict | None = None

    @property
    def cfg(self):
        return self.model.cfg

    def session(self, path):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def keep(self, label, precision, paths: dict, runners: dict, record_extra: dict):
        """Judge a variant against fp32 on held-out faces; list the accepted graphs, delete the rest."""
        accepted, record = variants.judge_variant(label, runners, self.reference, self.budget, self.log)
        for name, path in paths.items():
            if name in accepted:
                g = self.graphs[name]["fp32"]
                entry = file_entry(path, g["inputs"], g["outputs"])
                companion = Path(path).with_suffix(".bin")
                if companion.exists():  # OpenVINO IR weights travel with the .xml
                    entry["companions"] = [{"path": companion.name, "sha256": file_entry(companion, [], [])["sha256"],
                                            "bytes": companion.stat().st_size}]
                self.graphs[name][precision] = entry
            else:
                for p in (Path(path), Path(path).with_suffix(".bin")):
                    p.unlink(missing_ok=True)
        self.precisions[precision] = {**record_extra, **record}


def fp32_graphs(job: Export):
    protos = onnx_graphs.export_all(job.model, job.out, log=job.log)
    job.graphs = {name: {"fp32": file_entry(job.out / f"{name}.onnx", *onnx_graphs.signature(p))}
                  for name, p in protos.items()}
    job.fp32 = {name: job.session(job.out / f"{name}.onnx") for name in protos}


def check_parity(job: Export):
    """ONNX Runtime vs PyTorch on real faces: a model that does not match its checkpoint is never written."""
    faces, where = parity.load_faces(job.trained_on, "test", 7, job.cfg.image_size, seed=1)
    par = parity.run_parity(job.fp32, onnx_graphs.torch_modules(job.model), faces, job.cfg.n_attr)
    worst = max(v["max_abs_error"] for v in par.values())
    par.update({"images": where, "target": parity.PARITY_TARGET, "limit": parity.PARITY_LIMIT})
    job.log(f"parity ONNX Runtime vs PyTorch on {where}: " + ", ".join(
        f"batch {k.split('_')[1]} max abs error {v['max_abs_error']:.2e}" for k, v in par.items()
        if k.startswith("batch_")) + (" (within target)" if worst <= parity.PARITY_TARGET else " (ABOVE TARGET)"))
    if worst > parity.PARITY_LIMIT:
        raise ExportError(f"ONNX Runtime differs from PyTorch by {worst:.2e} (limit {parity.PARITY_LIMIT:g}): "
                          "refusing to write a model that does not match its checkpoint")
    job.parity = par


def held_out_faces(job: Export):
    """The faces every reduced-precision variant is judged on, and the int8 calibration inputs."""
    if job.int8 or job.openvino or job.fp16:
        held_out, where = parity.load_faces(job.trained_on, "val", job.eval_size, job.cfg.image_size, seed=2)
        job.reference = variants.Reference(job.fp32, held_out)
        job.log(f"variant accuracy measured on {where}; budget: agreement >= "
                f"{job.budget['min_attribute_agreement']:.2%}, PSNR >= {job.budget['min_psnr_db']:g} dB")
    if job.int8 or job.openvino:
        calib, job.calib_where = parity.load_faces(job.calib_dir, "train", job.calib_size, job.cfg.image_size, seed=3)
        if job.calib_dir is None:
            job.log(f"no calibration data folder: calibrating int8 on {job.calib_where} (accuracy on real faces may differ)")
        else:
            job.log(f"int8 calibration on {job.calib_where}")
        mu_c = job.fp32["encoder"].run(["mu"], {"image": calib})[0]
        probs_c = job.fp32["attributes"].run(None, {"image": calib})[0]
        job.feeds = {"encoder": {"image": calib}, "attributes": {"image": calib},
                     "decoder": {"z": mu_c, "attributes": quantize.decoder_calibration(mu_c, probs_c)}}


def int8_variant(job: Export):
    if not job.int8:
        return
    paths = {n: job.out / f"{n}.int8.onnx" for n in job.feeds}
    for n, p in paths.items():
        quantize.quantize_int8(job.out / f"{n}.onnx", p, job.feeds[n])
    job.keep("int8 (ONNX Runtime QDQ)", "int8", paths, {n: job.session(p) for n, p in paths.items()},
             {"runtime": "onnxruntime", "method": "static QDQ, per-channel int8 weights, uint8 activations, MinMax",
              "float_ops": list(quantize.FLOAT_OPS), "calibration": job.calib_where})


def fp16_variant(job: Export):
    if not job.fp16:
        return
    ok, why = quantize.fp16_available()
    if not ok:
        job.log(f"fp16 skipped: {why}")
        job.precisions["fp16"] = {"skipped": why}
        return
    paths = {n: job.out / f"{n}.fp16.onnx" for n in ("encoder", "attributes", "decoder", "editor")}
    for n, p in paths.items():
        quantize.convert_fp16(job.out / f"{n}.onnx", p)
    # accuracy measured with ONNX Runtime's CPU fp16 kernels; on GPUs it runs CUDA/TensorRT providers
    job.keep("fp16 (for GPUs)", "fp16", paths, {n: job.session(p) for n, p in paths.items()},
             {"runtime": "onnxruntime (CUDA/TensorRT providers)", "io": "float32", "measured_on": "onnxruntime CPU"})
    job.versions_extra.append("onnxconverter_common")


def openvino_variants(job: Export):
    """bf16 (a load-time hint over the fp32 files) and NNCF int8 IR, each within the budget or not kept."""
    if not job.openvino:
        return
    from faceedit.export import openvino_variant as ovv
    ok, why = ovv.available()
    if not ok:
        job.log(f"OpenVINO skipped: {why}")
        job.precisions["openvino_bf16"] = {"skipped": why}
        return
    job.versions_extra.append("openvino")
    if ovv.cpu_supports_bf16():
        runners = {n: ovv.OVRunner(job.out / f"{n}.onnx", ovv.BF16_CONFIG, job.threads)
                   for n in ("encoder", "attributes", "decoder")}
        accepted, record = variants.judge_variant("OpenVINO bf16", runners, job.reference, job.budget, job.log)
        record["accepted"] = not record["rejected"]  # usable only if every graph passes
        job.precisions["openvino_bf16"] = {"runtime": "openvino", "files": "fp32",
                                           "compile_config": dict(ovv.BF16_CONFIG), **record}
    else:
        job.precisions["openvino_bf16"] = {"skipped": "this CPU has no bf16 support in OpenVINO"}
    ok, why = ovv.nncf_available()
    if not ok:
        job.log(f"OpenVINO int8 skipped: {why}")
        job.precisions["openvino_int8"] = {"skipped": why}
        return
    job.versions_extra.append("nncf")
    paths = {n: job.out / f"{n}.ov-int8.xml" for n in job.feeds}
    for n, p in paths.items():
        ovv.quantize_nncf(job.out / f"{n}.onnx", p, job.feeds[n])
    job.keep("OpenVINO int8 (NNCF)", "openvino_int8", paths,
             {n: ovv.OVRunner(p, threads=job.threads) for n, p in paths.items()},
             {"runtime": "openvino", "method": "NNCF post-training quantization (mixed preset)",
              "calibration": job.calib_where})


def latent_prior(job: Export):
    """Where real faces sit in latent space (what sample() draws from)."""
    from faceedit.export.latent import LATENT_FILE, fit_latent_prior
    job.latent_prior = fit_latent_prior(job.fp32["encoder"], job.trained_on, job.cfg.image_size,
                                        job.out / LATENT_FILE, log=job.log)


def tensorrt_engines(job: Export):
    if not job.tensorrt:
        return
    from faceedit.export.tensorrt import build_all
    from faceedit.train.data import default_cache_dir
    job.tensorrt_record = build_all(job.out, {n: g["fp32"] for n, g in job.graphs.items()}, default_cache_dir(),
                                    job.trt_batch, job.log)


def shared_weights(job: Export):
    """The fp32 graphs store each distinct weight tensor once, in weights.bin (the fused editor repeats the
    three graphs; encoder and attribute head share a trunk)."""
    blob_bytes = onnx_graphs.share_weights(job.out, list(job.graphs))
    blob = {"path": onnx_graphs.SHARED_WEIGHTS,
            "sha256": file_entry(job.out / onnx_graphs.SHARED_WEIGHTS, [], [])["sha256"], "bytes": blob_bytes}
    for name, g in job.graphs.items():
        g["fp32"] = {**file_entry(job.out / f"{name}.onnx", g["fp32"]["inputs"], g["fp32"]["outputs"]),
                     "companions": [blob]}
    job.log(f"fp32 weights shared by {', '.join(job.graphs)}: {blob_bytes / 1e6:.1f} MB in {onnx_graphs.SHARED_WEIGHTS}")


def manifest(job: Export):
    from faceedit.export import _versions, attribute_table
    from faceedit.train.data import CROP_CENTER, CROP_FRACTION
    cfg = job.cfg
    attrs, attr_source = attribute_table(list(cfg.attributes), job.trained_on)
    m = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "image_size": cfg.image_size, "layout": "NCHW", "channel_order": "RGB", "value_range": [-1.0, 1.0],
        "z_shape": list(cfg.z_shape),
        "attributes": attrs,
        "attribute_source": attr_source,
        "crop": {"reference_size": REFERENCE_SIZE, "box_fraction": round(CROP_FRACTION, 6),
                 "box_center": [round(c, 6) for c in CROP_CENTER], "eyes": EYES},
        "graphs": job.graphs,
        "latent_prior": job.latent_prior,
        "edit_strength": {"gain": float(job.edit_gain),
                          **({"per_attribute": {a: float(g) for a, g in job.edit_gains.items()}} if job.edit_gains else {}),
                          "chosen": job.edit_gain_note or "default (identity)",
                          "meaning": "a value v set by the user enters the decoder as 0.5 + gain * (v - 0.5), with "
                                     "the attribute's per_attribute gain where it has one; attributes not set keep "
                                     "the attribute head's 0/1 decisions"},
        "precisions": job.precisions,
        "opset": onnx_graphs.OPSET,
        "versions": _versions(job.versions_extra),
        "parity": job.parity,
        "eval": job.eval_summary,
        "checkpoint": {"file": job.checkpoint.name, "step": job.state.get("step"),
                       "data": job.state.get("config", {}).get("data")},
    }
    if cfg.edit_mask:
        m["edit_mask"] = {"output": onnx_graphs.MASK_OUTPUT, "graphs": list(onnx_graphs.MASK_GRAPHS),
                          "meaning": "the decoder also draws a soft mask [N,1,S,S] in [0, 1] (the editor graph: "
                                     "its edited pass's); the edit users get is image + mask * (edited - "
                                     "reconstruction): the input wherever the mask is 0"}
    if job.tensorrt_record:
        m["tensorrt"] = job.tensorrt_record
    write_manifest(job.out, m)
    load_manifest(job.out)  # the engine's own check, before anyone can see the directory
    job.manifest = m


STAGES = (
    ("fp32 graphs", fp32_graphs),
    ("parity", check_parity),
    ("held-out faces", held_out_faces),
    ("int8", int8_variant),
    ("fp16", fp16_variant),
    ("OpenVINO", openvino_variants),
    ("latent prior", latent_prior),
    ("TensorRT", tensorrt_engines),
    ("shared weights", shared_weights),
    ("manifest", manifest),
)


def run(job: Export, out: Path) -> dict:
    """Every stage in order, writing into `out` (a staging directory); returns the manifest."""
    job.out = Path(out)
    for _, stage in STAGES:
        stage(job)
    return job.manifest
