"""ONNX Runtime on an NVIDIA GPU (extra `[gpu]`): the CUDA execution provider, or the TensorRT execution
provider (fp16 kernels, engine cache on disk), each falling back to CUDA for any node it cannot take.
IO binding puts inputs on the device once and lets outputs come back in one copy."""
from __future__ import annotations

import os
import sys
import threading

from faceedit.engine.backends.base import Backend, Graph, cache_dir
from faceedit.engine.backends.onnxruntime_cpu import session_options


def _no_nvidia_gpu() -> bool:
    """True when Linux shows no NVIDIA driver: then we need not import onnxruntime at all to know (auto
    selection on a CPU machine would otherwise load ONNX Runtime next to OpenVINO: ~20 MB of RSS measured)."""
    return sys.platform.startswith("linux") and not (os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl"))


def _providers_present(names) -> tuple[bool, str]:
    if _no_nvidia_gpu():
        return False, "no NVIDIA GPU (no driver under /proc/driver/nvidia)"
    try:
        import onnxruntime as ort
    except ImportError as e:
        return False, f"onnxruntime is not importable ({e})"
    have = ort.get_available_providers()
    missing = [n for n in names if n not in have]
    if missing:
        return False, (f"ONNX Runtime here has no {', '.join(missing)} (pip install 'faceedit[gpu]' on a machine "
                       f"with an NVIDIA GPU; available: {', '.join(have)})")
    return True, ""


class OrtGpuGraph(Graph):
    def __init__(self, name, entry, session):
        super().__init__(name, entry)
        self.session = session
        self._local = threading.local()  # an IOBinding is per call site: one per thread

    def _run(self, feeds):
        binding = getattr(self._local, "binding", None)
        if binding is None:
            binding = self._local.binding = self.session.io_binding()
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for name, arr in feeds.items():
            binding.bind_cpu_input(name, arr)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


class OnnxRuntimeCUDA(Backend):
    name = "onnxruntime-cuda"
    label = "ONNX Runtime CUDA"
    device = "cuda"
    precisions = ("fp32", "fp16")
    required = ("CUDAExecutionProvider",)

    @classmethod
    def available(cls):
        return _providers_present(cls.required)

    def auto_precision(self, model):
        return "fp16" if self.entry_for(model, "decoder", "fp16") else "fp32"

    def providers(self):
        return [("CUDAExecutionProvider", {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"}),
                "CPUExecutionProvider"]

    def _load(self, model, graph, precision, entry):
        import onnxruntime as ort
        sess = ort.InferenceSession(str(model.path / entry["path"]), session_options(1), providers=self.providers())
        if sess.get_providers()[0] != self.required[0]:  # ORT falls back silently: refuse instead
            from faceedit.engine.errors import BackendUnavailable
            raise BackendUnavailable(f"{self.required[0]} could not start here (no usable GPU?)")
        return OrtGpuGraph(graph, entry, sess)


class OnnxRuntimeTensorRT(OnnxRuntimeCUDA):
    name = "onnxruntime-tensorrt"
    label = "ONNX Runtime TensorRT EP"
    precisions = ("fp32", "fp16", "int8")
    required = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

    def providers(self):
        d = cache_dir("ort-tensorrt")
        d.mkdir(parents=True, exist_ok=True)
        trt = {"device_id": 0, "trt_fp16_enable": True, "trt_engine_cache_enable": True,
               "trt_engine_cache_path": str(d), "trt_timing_cache_enable": True}
        return [("TensorrtExecutionProvider", trt)] + super().providers()
