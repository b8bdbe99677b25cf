"""ONNX Runtime on the CPU: the base install's backend. Intra-op threads = cores, every graph optimization,
and the optimized graph cached on disk so later processes skip the optimizer."""
from __future__ import annotations

import hashlib
import os
import tempfile

from faceedit.engine.backends.base import Backend, Graph, cache_dir, importable


def _machine_key() -> str:
    # an optimized graph may contain CPU-specific kernels (NCHWc layouts): key the cache by the CPU too
    try:
        with open("/proc/cpuinfo") as f:
            text = "".join(l for l in f if l.startswith(("model name", "flags")))[:4096]
    except OSError:
        import platform
        text = platform.processor() + platform.machine()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class OrtGraph(Graph):
    def __init__(self, name, entry, session):
        super().__init__(name, entry)
        self.session = session

    def _run(self, feeds):
        # numpy inputs that are contiguous float32 are read in place (no copy); InferenceSession.run is
        # thread-safe, so many callers may share one session
        return self.session.run(self.output_names, feeds)


def session_options(threads: int, optimized_path: str | None = None, optimize: bool = True):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.log_severity_level = 3
    # no busy-waiting between ops: spinning threads starve everything else on a shared or busy CPU (and the
    # batcher's callers), for a gain of microseconds on an idle one
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    return opts


class OnnxRuntimeCPU(Backend):
    name = "onnxruntime"
    label = "ONNX Runtime CPU"
    precisions = ("fp32", "int8")
    providers = ["CPUExecutionProvider"]

    @classmethod
    def available(cls):
        return importable("onnxruntime", "pip install onnxruntime")

    def _load(self, model, graph, precision, entry):
        import onnxruntime as ort
        src = str(model.path / entry["path"])
        if not self.cache:
            return OrtGraph(graph, entry, ort.InferenceSession(src, session_options(self.threads), providers=self.providers))
        # the manifest's sha256 (already verified) names the cached optimized graph
        key = f"{entry['sha256'][:24]}-ort{ort.__version__}-{_machine_key()}.onnx"
        cached = cache_dir("onnxruntime") / key
        if cached.is_file():
            try:
                sess = ort.InferenceSession(str(cached), session_options(self.threads, optimize=False),
                                            providers=self.providers)
                return OrtGraph(graph, entry, sess)
            except Exception:
                cached.unlink(missing_ok=True)  # unreadable cache: rebuild it below
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".opt-", suffix=".onnx", dir=cached.parent)
            os.close(fd)
        except OSError:  # read-only home: run without the cache
            return OrtGraph(graph, entry, ort.InferenceSession(src, session_options(self.threads), providers=self.providers))
        try:
            sess = ort.InferenceSession(src, session_options(self.threads, tmp), providers=self.providers)
            os.replace(tmp, cached)  # atomic: a concurrent process sees a whole file or none
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return OrtGraph(graph, entry, sess)
