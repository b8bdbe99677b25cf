"""int8 graphs by ONNX Runtime static quantization (QDQ, per-channel weights), calibrated on real faces.

Activations are uint8 and weights int8 (U8S8): the fast path of ONNX Runtime on x86 (VNNI/AMX).
The convolutions (nearly all the FLOPs) are quantized; the small Linear layers (attribute classifier, FiLM)
and the output Sigmoid/Tanh stay float: a uint8 step on a probability near 0.5 flips decisions, and the
FiLM scales set every edit's strength, for a negligible share of the compute.
"""
from __future__ import annotations

import io
import logging
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np


def decoder_calibration(z: np.ndarray, probs: np.ndarray, seed: int = 0) -> np.ndarray:
    """Attribute vectors the decoder will really see: each face's own decisions, the same with one
    attribute flipped (a user's edit), and a few extrapolated intensities (-1..2) so their activation
    ranges are not clipped."""
    rng = np.random.default_rng(seed)
    n, a = probs.shape
    source = (probs > 0.5).astype(np.float32)
    y = source.copy()
    k = rng.integers(0, a, n)
    rows = np.arange(n)
    edit = rng.random(n) < 0.5
    y[rows[edit], k[edit]] = 1 - y[rows[edit], k[edit]]
    extra = rng.random(n) < 0.125
    y[rows[extra], k[extra]] = rng.choice([-1.0, 2.0], int(extra.sum())).astype(np.float32)
    return y


class _Reader:
    """onnxruntime CalibrationDataReader over in-memory arrays, in small batches."""

    def __init__(self, feeds: dict[str, np.ndarray], batch: int = 32):
        n = len(next(iter(feeds.values())))
        self.items = iter([{k: v[i:i + batch] for k, v in feeds.items()} for i in range(0, n, batch)])

    def get_next(self):
        return next(self.items, None)


FLOAT_OPS = ("Gemm", "MatMul", "Sigmoid", "Tanh")


def quantize_int8(src: Path, dst: Path, feeds: dict[str, np.ndarray], exclude_ops=FLOAT_OPS) -> None:
    """Static QDQ quantization of `src` into `dst`, calibrated on `feeds` (MinMax ranges)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnx

    nodes_to_exclude = []
    if exclude_ops:
        nodes_to_exclude = [n.name for n in onnx.load(str(src)).graph.node if n.op_type in exclude_ops]
    buf = io.StringIO()
    with tempfile.TemporaryDirectory(dir=Path(dst).parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        with redirect_stdout(buf), redirect_stderr(buf):
            logging.getLogger().setLevel(logging.ERROR)
            # symbolic shape inference + graph optimisations first, as ORT recommends for QDQ
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
            quantize_static(str(pre), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=nodes_to_exclude,
                            calibration_cache_path=None,
                            extra_options={"CalibTensorRangeSymmetric": False, "CalibMovingAverage": False})


def fp16_available() -> tuple[bool, str]:
    try:
        import onnxconverter_common  # noqa: F401
    except ImportError:
        return False, "onnxconverter-common is not installed (pip install onnxconverter-common)"
    return True, ""


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and arithmetic for GPUs, float32 inputs/outputs so callers do not change."""
    import onnx
    from onnxconverter_common import float16
    # the editor's threshold (Greater vs a float32 constant) stays float32; the converter then types the
    # Cast bool->float after it as fp16 in value_info but leaves its `to` at float: make them agree
    block = list(float16.DEFAULT_OP_BLOCK_LIST) + ["Greater"]
    model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=block)
    fp16_values = {v.name for v in model.graph.value_info
                   if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in fp16_values:
            for a in node.attribute:
                if a.name == "to" and a.i == onnx.TensorProto.FLOAT:
                    a.i = onnx.TensorProto.FLOAT16
    onnx.checker.check_model(model)
    onnx.save_model(model, str(dst))
