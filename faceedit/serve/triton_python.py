"""The Triton python-backend model of the repository `faceedit export --triton DIR` writes (its
`configs/python.pbtxt` variant, served with `--model-config-name python`): each model (encoder, attributes,
decoder, editor) runs its graph with faceedit's engine, on OpenVINO or ONNX Runtime on a CPU, the same backend
classes, session options and caches as `Editor.load` here.

The repository's `MODEL/1/model.py` only imports TritonPythonModel from this module, so the Python that
runs Triton's python-backend stub must have faceedit installed (`faceedit triton serve` starts the server
from the nvidia-pytriton wheel with this interpreter's environment). `MODEL/1/` holds the graph
(model.onnx, weights.bin) and a manifest.json listing only that graph, so the engine verifies its sha256
and reads the export's accuracy records (OpenVINO bf16 runs only where the export accepted it).

Parameters (configs/python.pbtxt): faceedit_backend (auto: OpenVINO where installed, else ONNX Runtime;
or a backend name), faceedit_precision (fp32 by default, what the native variant serves), faceedit_threads
(0: every core this process may use). Triton's dynamic batcher hands execute() several requests; their
rows run as one batch and the results are split back.

Tensors cross the stub by DLPack, not by its numpy calls: the wheel's stub (server 2.51) was compiled
against numpy 1.x, and under numpy 2 `as_numpy()` reads zeros and `pb_utils.Tensor(name, array)` sends
zero bytes (found here: shapes right, data empty). `np.from_dlpack(tensor)` and `Tensor.from_dlpack` read and
write the same memory without numpy's C structures, so this runs under numpy 1 and 2 alike."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CPU_BACKENDS = ("openvino", "onnxruntime")  # `auto`: the engine's CPU order (fastest first)


def parameters(model_config: dict) -> dict:
    return {k: (v or {}).get("string_value", "") for k, v in (model_config.get("parameters") or {}).items()}


def load_graph(version_dir, graph: str, backend: str = "auto", precision: str = "fp32", threads: int = 0):
    """(the engine's loaded Graph, its Backend) for graph in the one-graph model directory version_dir."""
    from faceedit.core.model_dir import ModelInfo
    from faceedit.engine.backends import backend_class, canonical_name
    from faceedit.engine.errors import BackendUnavailable
    info = ModelInfo.load(Path(version_dir))
    names = CPU_BACKENDS if canonical_name(backend) == "auto" else (canonical_name(backend),)
    why = []
    for name in names:
        cls = backend_class(name)
        ok, reason = cls.available()
        if not ok:
            why.append(f"{name}: {reason}")
            continue
        b = cls(threads=threads)
        try:
            return b.load(info, graph, precision), b
        except Exception as e:  # installed but cannot run this graph here: the next one (auto), or say why
            why.append(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise BackendUnavailable(f"no backend runs the {precision} {graph} graph here: " + "; ".join(why))


def run_batched(graph, input_names, output_names, requests_feeds: list[dict]) -> list[list[np.ndarray]]:
    """Each request's {input: array [n_i, ...]} -> its outputs [n_i, ...], all requests' rows run as one
    batch (one graph call) and split back in order."""
    sizes = [len(f[input_names[0]]) for f in requests_feeds]
    if len(requests_feeds) == 1:
        feeds = {n: np.ascontiguousarray(requests_feeds[0][n], np.float32) for n in input_names}
    else:
        feeds = {n: np.ascontiguousarray(np.concatenate([f[n] for f in requests_feeds]), np.float32)
                 for n in input_names}
    outs = graph.run(feeds)
    bounds = np.cumsum([0] + sizes)
    return [[np.ascontiguousarray(o[bounds[i]:bounds[i + 1]]) for o in outs] for i in range(len(sizes))]


def stub_capsule(array: np.ndarray):
    """array's DLPack capsule for Tensor.from_dlpack, without numpy's capsule destructor. The stub takes the
    DLManagedTensor, renames the capsule "used_dlpack" (numpy marks its own "used_dltensor") and calls the
    tensor's deleter itself when the response is sent; numpy's destructor, not recognising the name, would
    report a ValueError into the log once per output. Without it nothing is lost: the deleter still frees
    the array (only a capsule the stub refused, which never happens to a contiguous float32 array, would
    keep its array alive)."""
    import ctypes
    capsule = array.__dlpack__()  # no max_version asked: the unversioned "dltensor" capsule the stub reads
    set_destructor = ctypes.pythonapi.PyCapsule_SetDestructor
    set_destructor.argtypes, set_destructor.restype = [ctypes.py_object, ctypes.c_void_p], ctypes.c_int
    if set_destructor(capsule, None) != 0:
        raise RuntimeError("cannot hand the output to Triton's stub (PyCapsule_SetDestructor failed)")
    return capsule


class TritonPythonModel:
    """Triton's python-backend entry points: initialize, execute, finalize."""

    def initialize(self, args):
        import triton_python_backend_utils as pb_utils
        config = json.loads(args["model_config"])
        self.name = config["name"]
        p = parameters(config)
        version_dir = Path(args["model_repository"]) / str(args["model_version"])
        self.graph, backend = load_graph(version_dir, self.name, p.get("faceedit_backend") or "auto",
                                         p.get("faceedit_precision") or "fp32", int(p.get("faceedit_threads") or 0))
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        self.dtypes = {t["name"]: pb_utils.triton_string_to_numpy(t["data_type"]) for t in config["output"]}
        pb_utils.Logger.log_info(f"faceedit {self.name}: {backend.describe()}, "
                                 f"{p.get('faceedit_precision') or 'fp32'}, from {version_dir}")

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils
        try:
            feeds = [{n: np.from_dlpack(pb_utils.get_input_tensor_by_name(r, n)) for n in self.input_names}
                     for r in requests]
            results = run_batched(self.graph, self.input_names, self.output_names, feeds)
        except Exception as e:  # every request of this batch gets the one-line reason
            err = pb_utils.TritonError(f"faceedit {self.name}: {type(e).__name__}: {e}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=err) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor.from_dlpack(n, stub_capsule(np.ascontiguousarray(a, self.dtypes[n])))
                    for n, a in zip(self.output_names, outs)])
                for outs in results]

    def finalize(self):
        self.graph = None
