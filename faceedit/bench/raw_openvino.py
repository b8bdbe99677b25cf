"""OpenVINO straight on the model directory's files, without the engine around it: the reference for the
target "no slower than OpenVINO's best precision on the same ONNX". Float tensors in and out (no uint8
conversion, no residual), so it is the floor the engine's own overhead is measured against.

fp32 and bf16 compile editor.onnx (bf16 through the inference-precision hint); int8 has no fused graph, so
it runs the int8 encoder / attributes / decoder files with the editor's maths in numpy."""
from __future__ import annotations

import numpy as np

from faceedit.engine.backends.base import cpu_cores

PRECISIONS = ("fp32", "bf16", "int8")


def available() -> tuple[bool, str]:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False, "openvino is not installed"
    return True, ""


def _compile(path, precision: str, threads: int):
    import openvino as ov
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    return ov.Core().compile_model(str(path), "CPU", config).create_infer_request()


def _int8_entry(graphs: dict, name: str):
    g = graphs.get(name) or {}
    return g.get("openvino_int8") or g.get("int8")


class RawOpenVINO:
    """run(x [N,3,S,S] f32, target [N,A], mask [N,A]) -> edited, reconstruction (float, model units)."""

    def __init__(self, model_info, precision: str, threads: int = 0):
        threads = threads or cpu_cores()
        graphs, root = model_info.graphs, model_info.path
        self.precision = precision
        if precision in ("fp32", "bf16"):
            if "fp32" not in (graphs.get("editor") or {}):
                raise ValueError("the model directory has no fused editor graph")
            if precision == "bf16":
                import openvino as ov
                if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
                    raise ValueError("this CPU has no bf16 support in OpenVINO")
            self.fused = _compile(root / graphs["editor"]["fp32"]["path"], precision, threads)
            self.parts = None
        else:
            entries = {n: _int8_entry(graphs, n) for n in ("encoder", "attributes", "decoder")}
            missing = [n for n, e in entries.items() if e is None]
            if missing:
                raise ValueError(f"no int8 {', '.join(missing)} graph in the model directory")
            self.fused = None
            self.parts = {n: _compile(root / e["path"], "int8", threads) for n, e in entries.items()}

    def run(self, x, target, mask):
        if self.fused is not None:
            r = self.fused.infer({"image": x, "target": target, "mask": mask}, share_inputs=True)
            return r[0], r[1]
        mu = self.parts["encoder"].infer({"image": x}, share_inputs=True)[0]
        probs = self.parts["attributes"].infer({"image": x}, share_inputs=True)[0]
        source = (probs > 0.5).astype(np.float32)
        y = mask * target + (1 - mask) * source
        both = self.parts["decoder"].infer({"z": np.concatenate([mu, mu]), "attributes": np.concatenate([y, source])},
                                           share_inputs=True)[0]
        n = len(x)
        return both[:n], both[n:]
