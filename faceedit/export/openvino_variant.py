"""OpenVINO on this CPU: bf16 as a load-time hint on the fp32 graphs (AMX-BF16 runs it), int8 IR via NNCF
post-training quantization (AMX-INT8). Both are optional: without openvino / nncf they are skipped."""
from __future__ import annotations

import io
import logging
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np

BF16_CONFIG = {"INFERENCE_PRECISION_HINT": "bf16"}


def available() -> tuple[bool, str]:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False, "openvino is not installed (pip install 'faceedit[openvino]')"
    return True, ""


def nncf_available() -> tuple[bool, str]:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False, "nncf is not installed (pip install nncf)"
    return True, ""


def cpu_supports_bf16() -> bool:
    import openvino as ov
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OVRunner:
    """Compiled OpenVINO models with the same call shape as an onnxruntime session's run(None, feeds)."""

    def __init__(self, path, config: dict | None = None, threads: int = 0):
        import openvino as ov
        cfg = dict(config or {})
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(path), "CPU", cfg)
        self.names = [next(iter(o.get_names())) for o in self.compiled.outputs]

    def run(self, output_names, feeds):
        result = self.compiled(feeds)
        names = output_names or self.names
        return [result[self.compiled.output(n)] for n in names]


def quantize_nncf(src: Path, dst_xml: Path, feeds: dict[str, np.ndarray], batch: int = 32) -> None:
    """int8 OpenVINO IR (dst.xml + dst.bin) from an fp32 ONNX graph, calibrated on `feeds`."""
    import nncf
    import openvino as ov
    n = len(next(iter(feeds.values())))
    items = [{k: v[i:i + batch] for k, v in feeds.items()} for i in range(0, n, batch)]
    buf = io.StringIO()
    with redirect_stdout(buf), redirect_stderr(buf):
        logging.getLogger("nncf").setLevel(logging.ERROR)
        model = ov.Core().read_model(str(src))
        q = nncf.quantize(model, nncf.Dataset(items), subset_size=n, preset=nncf.QuantizationPreset.MIXED)
        ov.save_model(q, str(dst_xml), compress_to_fp16=False)
