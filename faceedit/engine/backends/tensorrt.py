"""Native TensorRT engines (extra `[gpu]` + cuda-python), built by `faceedit export --tensorrt`.

An engine only runs on the TensorRT minor version and GPU model that built it, and both are in its file
name, so this backend loads only engines named for this machine and says so otherwise. Each thread gets its
own execution context and stream (contexts are not thread-safe); device buffers grow to the largest batch."""
from __future__ import annotations

import threading

import numpy as np

from faceedit.core.tensorrt_names import built_here, nvidia_smi_gpu_name
from faceedit.engine.backends.base import Backend, Graph
from faceedit.engine.errors import BackendUnavailable


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTGraph(Graph):
    def __init__(self, name, entry, engine, trt):
        super().__init__(name, entry)
        self.engine, self.trt, self.cudart = engine, trt, _cudart()
        self._local = threading.local()

    def _state(self):
        s = getattr(self._local, "state", None)
        if s is None:
            s = self._local.state = {"ctx": self.engine.create_execution_context(),
                                     "stream": _check(self.cudart.cudaStreamCreate()), "buffers": {}}
        return s

    def _buffer(self, s, name, nbytes):
        ptr, size = s["buffers"].get(name, (None, 0))
        if size < nbytes:
            if ptr is not None:
                _check(self.cudart.cudaFree(ptr))
            ptr = _check(self.cudart.cudaMalloc(nbytes))
            s["buffers"][name] = (ptr, nbytes)
        return ptr

    def _run(self, feeds):
        cu, s = self.cudart, self._state()
        ctx, stream = s["ctx"], s["stream"]
        h2d, d2h = cu.cudaMemcpyKind.cudaMemcpyHostToDevice, cu.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, arr in feeds.items():
            ptr = self._buffer(s, name, arr.nbytes)
            _check(cu.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, stream))
            ctx.set_input_shape(name, arr.shape)
            ctx.set_tensor_address(name, ptr)
        outs = []
        for name in self.output_names:
            shape = tuple(ctx.get_tensor_shape(name))
            out = np.empty(shape, dtype=np.float32)
            ptr = self._buffer(s, name, out.nbytes)
            ctx.set_tensor_address(name, ptr)
            outs.append((ptr, out))
        if not ctx.execute_async_v3(stream):
            raise RuntimeError(f"TensorRT failed to run {self.name}")
        for ptr, out in outs:
            _check(cu.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, stream))
        _check(cu.cudaStreamSynchronize(stream))
        return [o for _, o in outs]


class TensorRTNative(Backend):
    name = "tensorrt"
    label = "TensorRT engines"
    device = "cuda"
    precisions = ("fp16",)
    default_precision = "fp16"

    @classmethod
    def available(cls):
        try:
            import tensorrt  # noqa: F401
            _cudart()
        except ImportError:
            return False, "needs the tensorrt and cuda-python packages (pip install 'faceedit[gpu]' cuda-python)"
        if not nvidia_smi_gpu_name():
            return False, "no NVIDIA GPU found (nvidia-smi)"
        return True, ""

    def entry_for(self, model, graph, precision):
        trt_rec = model.manifest.get("tensorrt") or {}
        return (trt_rec.get("engines") or {}).get(f"{graph}/{precision}")

    def _load(self, model, graph, precision, entry):
        import tensorrt as trt
        gpu = nvidia_smi_gpu_name() or "?"
        if not built_here(entry["path"], trt.__version__, gpu):
            raise BackendUnavailable(f"the model's TensorRT engines ({entry['path']}) were built for another GPU or "
                                     f"TensorRT version than this {gpu} with TensorRT {trt.__version__}: "
                                     "re-export with `faceedit export --tensorrt` here")
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        engine = runtime.deserialize_cuda_engine((model.path / entry["path"]).read_bytes())
        if engine is None:
            raise BackendUnavailable(f"TensorRT could not load {entry['path']}")
        return TensorRTGraph(graph, entry, engine, trt)
