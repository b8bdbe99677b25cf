"""A Triton Inference Server model repository from a model directory (`faceedit export --triton DIR`).

One repository, two kinds of server. Each graph (encoder, attributes, decoder, editor) is one model with
dynamic batching and two configurations of the same tensors:
- `config.pbtxt`: Triton's onnxruntime backend (`onnxruntime_onnx`, KIND_AUTO: the GPU where there is one),
  for NVIDIA's server containers, which carry that backend: `tritonserver --model-repository DIR`.
- `configs/python.pbtxt`: Triton's python backend running the graph with faceedit's engine (OpenVINO or ONNX
  Runtime on a CPU; faceedit.serve.triton_python), for a server with only the python backend (the
  nvidia-pytriton wheel's): `tritonserver --model-repository DIR --model-config-name python`, which is what
  `faceedit triton serve DIR` runs.
`encode_decode` is an ensemble encoder -> decoder (image + attributes -> image) on either; `editor` is the
fused single-model edit. The batch dimension is Triton's (max_batch_size > 0), so `dims` leave it out.

    MODEL/config.pbtxt  MODEL/configs/python.pbtxt
    MODEL/1/model.onnx  MODEL/1/weights.bin  (the graph)   MODEL/1/model.py  MODEL/1/manifest.json  (python)"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from faceedit.export.atomic import staging_dir

MARKER = ".faceedit-triton"
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "bool": "TYPE_BOOL"}


def _tensor(kind: str, t: dict) -> str:
    dims = ", ".join(str(d) for d in t["shape"][1:])
    return f'{kind} [\n  {{\n    name: "{t["name"]}"\n    data_type: {TRITON_DTYPES[t["dtype"]]}\n    dims: [ {dims} ]\n  }}\n]'


def model_config(name: str, entry: dict, max_batch_size: int, max_queue_delay_us: int, instances: int,
                 kind: str) -> str:
    parts = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch_size}"]
    parts += [_tensor("input", t) for t in entry["inputs"]]
    parts += [_tensor("output", t) for t in entry["outputs"]]
    preferred = sorted({b for b in (4, 8, 16, 32) if b <= max_batch_size})
    parts.append("dynamic_batching {\n" + (f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n" if preferred else "")
                 + f"  max_queue_delay_microseconds: {max_queue_delay_us}\n}}")
    parts.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    return "\n".join(parts) + "\n"


PYTHON_CONFIG = "python"  # --model-config-name that selects configs/python.pbtxt
MODEL_PY = '''"""Triton python-backend model written by `faceedit export --triton`: runs this folder's graph with
faceedit's engine (see faceedit.serve.triton_python). The Python that runs it needs faceedit installed."""
from faceedit.serve.triton_python import TritonPythonModel  # noqa: F401
'''


def python_model_config(name: str, entry: dict, max_batch_size: int, max_queue_delay_us: int, instances: int,
                        backend: str = "auto", precision: str = "fp32", threads: int = 0) -> str:
    """configs/python.pbtxt: the same tensors and batching as model_config, run by faceedit's engine in
    Triton's python backend on the CPU."""
    native = model_config(name, entry, max_batch_size, max_queue_delay_us, instances, "KIND_CPU")
    params = {"faceedit_backend": backend, "faceedit_precision": precision, "faceedit_threads": str(int(threads))}
    parameters = "\n".join(f'parameters {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}'
                           for k, v in params.items())
    return native.replace('platform: "onnxruntime_onnx"', 'backend: "python"') + parameters + "\n"


def graph_manifest(manifest: dict, name: str, entry: dict) -> dict:
    """The model directory's manifest with one graph, at fp32, named model.onnx (MODEL/1/manifest.json): what
    the engine loads in the python backend. Entries whose files the folder does not hold are left out."""
    m = copy.deepcopy(manifest)
    for key in ("judge", "reporting_judge", "latent_prior", "tensorrt"):
        m.pop(key, None)
    m["graphs"] = {name: {"fp32": {**copy.deepcopy(entry), "path": "model.onnx"}}}
    return m


def ensemble_config(name: str, encoder: dict, decoder: dict, max_batch_size: int) -> str:
    image = encoder["inputs"][0]
    attrs = next(t for t in decoder["inputs"] if t["name"] == "attributes")
    out = {**decoder["outputs"][0], "name": "output"}
    parts = [f'name: "{name}"', 'platform: "ensemble"', f"max_batch_size: {max_batch_size}",
             _merge_inputs([image, attrs]), _tensor("output", out)]
    parts.append("""ensemble_scheduling {
  step [
    {
      model_name: "encoder"
      model_version: -1
      input_map { key: "image" value: "image" }
      output_map { key: "mu" value: "latent" }
    },
    {
      model_name: "decoder"
      model_version: -1
      input_map { key: "z" value: "latent" }
      input_map { key: "attributes" value: "attributes" }
      output_map { key: "image" value: "output" }
    }
  ]
}""")
    return "\n".join(parts) + "\n"


def _merge_inputs(tensors: list[dict]) -> str:
    items = []
    for t in tensors:
        dims = ", ".join(str(d) for d in t["shape"][1:])
        items.append(f'  {{\n    name: "{t["name"]}"\n    data_type: {TRITON_DTYPES[t["dtype"]]}\n    dims: [ {dims} ]\n  }}')
    return "input [\n" + ",\n".join(items) + "\n]"


def write_repository(model_dir, triton_dir, manifest: dict, max_batch_size: int = 64,
                     max_queue_delay_us: int = 500, instances: int = 1, kind: str = "KIND_AUTO",
                     python_backend: str = "auto", python_precision: str = "fp32", python_threads: int = 0,
                     python_instances: int | None = None) -> list[str]:
    """Write the repository atomically (staged next to triton_dir, then swapped in). Returns model names.
    python_*: the python-backend variant's engine backend (auto: OpenVINO where installed, else ONNX
    Runtime), precision, threads per instance (0: every core) and instances (default: instances)."""
    model_dir = Path(model_dir)
    graphs = {n: g["fp32"] for n, g in manifest["graphs"].items() if "fp32" in g}
    names = []
    with staging_dir(triton_dir, marker=MARKER) as tmp:
        (tmp / MARKER).write_text("written by faceedit export --triton\n")
        for name, entry in graphs.items():
            (tmp / name / "1").mkdir(parents=True)
            shutil.copyfile(model_dir / entry["path"], tmp / name / "1" / "model.onnx")
            for extra in entry.get("companions") or ():  # external weights, found relative to model.onnx
                shutil.copyfile(model_dir / extra["path"], tmp / name / "1" / extra["path"])
            (tmp / name / "config.pbtxt").write_text(
                model_config(name, entry, max_batch_size, max_queue_delay_us, instances, kind))
            (tmp / name / "configs").mkdir()
            (tmp / name / "configs" / f"{PYTHON_CONFIG}.pbtxt").write_text(
                python_model_config(name, entry, max_batch_size, max_queue_delay_us,
                                    python_instances or instances, python_backend, python_precision, python_threads))
            (tmp / name / "1" / "model.py").write_text(MODEL_PY)
            (tmp / name / "1" / "manifest.json").write_text(
                json.dumps(graph_manifest(manifest, name, entry), indent=2) + "\n")
            names.append(name)
        if "encoder" in graphs and "decoder" in graphs:
            (tmp / "encode_decode" / "1").mkdir(parents=True)  # ensembles need an (empty) version folder
            (tmp / "encode_decode" / "config.pbtxt").write_text(
                ensemble_config("encode_decode", graphs["encoder"], graphs["decoder"], max_batch_size))
            names.append("encode_decode")
    return names


def write_model_repository(model=None, out=None, **kw) -> Path:
    """The repository of a model directory (a path, a name or None: the shipped model) in out (default: a new
    temporary folder's `repository`), as `faceedit export --triton` writes it; needs no torch.
    kw: write_repository's options."""
    import tempfile
    from faceedit.core.model_dir import ModelInfo
    info = ModelInfo.load(model)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="faceedit-triton-")) / "repository"
    write_repository(info.path, out, info.manifest, **kw)
    return out
