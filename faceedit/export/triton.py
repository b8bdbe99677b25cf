"""A Triton Inference Server model repository from a model directory (`faceedit export --triton DIR`).

Each graph becomes an onnxruntime_onnx model with dynamic batching; `encode_decode` is an ensemble
encoder -> decoder (image + attributes -> image); `editor` is the fused single-model edit. The batch
dimension is Triton's (max_batch_size > 0), so `dims` leave it out."""
from __future__ import annotations

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
                     max_queue_delay_us: int = 500, instances: int = 1, kind: str = "KIND_AUTO") -> list[str]:
    """Write the repository atomically (staged next to triton_dir, then swapped in). Returns model names."""
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
            names.append(name)
        if "encoder" in graphs and "decoder" in graphs:
            (tmp / "encode_decode" / "1").mkdir(parents=True)  # ensembles need an (empty) version folder
            (tmp / "encode_decode" / "config.pbtxt").write_text(
                ensemble_config("encode_decode", graphs["encoder"], graphs["decoder"], max_batch_size))
            names.append("encode_decode")
    return names
