"""Backend registry: one small module per backend, imported only when asked for.

`auto` tries them fastest first and keeps the first that is installed and runs the model here. The CPU
order (OpenVINO before ONNX Runtime) follows `faceedit bench`'s measurements (benchmarks/README.md)."""
from __future__ import annotations

import importlib

from faceedit.engine.errors import BackendUnavailable

_REGISTRY = {
    "tensorrt": ("faceedit.engine.backends.tensorrt", "TensorRTNative"),
    "onnxruntime-tensorrt": ("faceedit.engine.backends.onnxruntime_gpu", "OnnxRuntimeTensorRT"),
    "onnxruntime-cuda": ("faceedit.engine.backends.onnxruntime_gpu", "OnnxRuntimeCUDA"),
    "openvino": ("faceedit.engine.backends.openvino", "OpenVINOCPU"),
    "onnxruntime": ("faceedit.engine.backends.onnxruntime_cpu", "OnnxRuntimeCPU"),
    # graphs on a Triton server at $FACEEDIT_TRITON_URL: only by name, never in AUTO_ORDER
    "triton": ("faceedit.engine.backends.triton_client", "TritonRemote"),
}
ALIASES = {"ort": "onnxruntime", "onnxruntime-cpu": "onnxruntime", "cpu": "onnxruntime", "ov": "openvino",
           "cuda": "onnxruntime-cuda", "ort-cuda": "onnxruntime-cuda", "trt": "tensorrt",
           "ort-tensorrt": "onnxruntime-tensorrt", "tensorrt-ep": "onnxruntime-tensorrt"}
# fastest first (GPU engines, then the CPU backends in their measured order)
AUTO_ORDER = ("tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda", "openvino", "onnxruntime")
NAMES = tuple(_REGISTRY)


def canonical_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in _REGISTRY and key != "auto":
        raise BackendUnavailable(f"unknown backend '{name}': choose auto, {', '.join(NAMES)}", field="backend")
    return key


def backend_class(name: str):
    mod, cls = _REGISTRY[canonical_name(name)]
    return getattr(importlib.import_module(mod), cls)


def availability() -> list[tuple[str, bool, str]]:
    """(name, available, why not) for every backend, in auto order."""
    out = []
    for name in AUTO_ORDER:
        ok, why = backend_class(name).available()
        out.append((name, ok, why))
    return out
