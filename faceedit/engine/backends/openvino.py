"""OpenVINO on the CPU (extra `[openvino]`). fp32 is pinned to f32 (on AMX CPUs OpenVINO would otherwise
silently run bf16); bf16 runs the fp32 files with the bf16 hint, only when the export measured it within
budget; int8 runs the NNCF IR (or the int8 ONNX). Compiled blobs are cached on disk."""
from __future__ import annotations

import threading

from faceedit.engine.backends.base import Backend, Graph, cache_dir
from faceedit.engine.errors import BackendUnavailable


def import_openvino():
    """import openvino, without the model converter its __init__ also loads (openvino.tools.ovc and its
    telemetry: ~0.25 s of a cold `faceedit run` here, for a function the runtime never calls). The
    converter stays importable later (`from openvino.tools.ovc import convert_model`)."""
    import sys
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = "openvino.tools.ovc" not in sys.modules
    if blocked:
        sys.modules["openvino.tools.ovc"] = None  # openvino's __init__ imports it under `except ImportError: pass`
    try:
        import openvino
    finally:
        if blocked and sys.modules.get("openvino.tools.ovc", 0) is None:
            del sys.modules["openvino.tools.ovc"]
    if not hasattr(openvino, "convert_model"):
        openvino.convert_model = _convert_model  # the public name, importing the converter on first call
    return openvino


def _convert_model(*args, **kwargs):
    from openvino.tools.ovc import convert_model
    return convert_model(*args, **kwargs)


class OpenVINOGraph(Graph):
    def __init__(self, name, entry, compiled):
        super().__init__(name, entry)
        self.compiled = compiled
        self.outputs = [compiled.output(n) for n in self.output_names]
        self._local = threading.local()  # an infer request is single-threaded: one per calling thread

    def _run(self, feeds):
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        # share_inputs: read the caller's arrays in place; outputs are copied because the request reuses them
        res = req.infer(feeds, share_inputs=True, share_outputs=False)
        return [res[o] for o in self.outputs]


class OpenVINOCPU(Backend):
    name = "openvino"
    label = "OpenVINO CPU"
    precisions = ("fp32", "bf16", "int8")
    _core = None
    _core_lock = threading.Lock()

    @classmethod
    def available(cls):
        try:
            import_openvino()
        except ImportError:
            return False, "openvino is not installed (pip install 'faceedit[openvino]')"
        return True, ""

    @classmethod
    def core(cls):
        with cls._core_lock:
            if cls._core is None:
                cls._core = import_openvino().Core()
            return cls._core

    def entry_for(self, model, graph, precision):
        g = model.graphs.get(graph) or {}
        if precision == "bf16":
            rec = (model.manifest.get("precisions") or {}).get("openvino_bf16") or {}
            return g.get("fp32") if rec.get("accepted") and graph not in (rec.get("rejected") or ()) else None
        if precision == "int8":
            return g.get("openvino_int8") or g.get("int8")
        return g.get(precision)

    def auto_precision(self, model):
        # bf16 where the export measured it within the accuracy budget and the CPU has native bf16 (the
        # fastest precision on such CPUs: benchmarks/README.md), else fp32
        if all(self.entry_for(model, g, "bf16") for g in ("attributes", "decoder")) and \
                "BF16" in self.core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return "bf16"
        return "fp32"

    def _load(self, model, graph, precision, entry):
        core = self.core()
        config = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendUnavailable("this CPU has no bf16 support in OpenVINO: use fp32 or int8", field="precision")
        if self.cache:
            try:
                d = cache_dir("openvino")
                d.mkdir(parents=True, exist_ok=True)
                config["CACHE_DIR"] = str(d)
            except OSError:
                pass
        compiled = core.compile_model(str(model.path / entry["path"]), "CPU", config)
        return OpenVINOGraph(graph, entry, compiled)
