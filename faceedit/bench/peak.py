"""The machine's measured peak: a large square MatMul, per precision, in this process.

fp32: numpy (BLAS) and onnxruntime; bf16: OpenVINO with a bf16 inference hint; int8: OpenVINO (a
FakeQuantize -> MatMul pattern that its low-precision pass runs in int8) and onnxruntime MatMulInteger.
Each precision's peak is the best of what ran; what could not run is recorded with the reason."""
from __future__ import annotations

import os

import numpy as np

from faceedit.bench.timing import Budget, measure


def _best_gflops(fn, n: int, budget: Budget) -> float:
    seconds = measure(fn, budget)
    return 2.0 * n ** 3 / float(np.min(seconds)) / 1e9


def numpy_fp32(n, budget):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    return _best_gflops(lambda: a @ b, n, budget)


def _ort_session(model_bytes: bytes, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def onnxruntime_fp32(n, budget, threads):
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "peak",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    sess = _ort_session(m.SerializeToString(), threads)
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    return _best_gflops(lambda: sess.run(None, {"a": a}), n, budget)


def onnxruntime_int8(n, budget, threads):
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(1).integers(-127, 128, (n, n), dtype=np.int8)
    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "peak",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    sess = _ort_session(m.SerializeToString(), threads)
    a = np.random.default_rng(0).integers(0, 256, (n, n), dtype=np.uint8)
    return _best_gflops(lambda: sess.run(None, {"a": a}), n, budget)


def _openvino_matmul(n, quantized: bool):
    import openvino as ov
    import openvino.opset13 as ops
    x = ops.parameter([n, n], np.float32, name="a")
    if quantized:
        lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
        x_in = ops.fake_quantize(x, lo, hi, lo, hi, 256)
        w8 = np.random.default_rng(1).integers(-127, 128, (n, n), dtype=np.int8)
        w = ops.multiply(ops.convert(ops.constant(w8), np.float32), ops.constant(np.float32(0.01)))
    else:
        x_in = x
        w = ops.constant(np.random.default_rng(1).standard_normal((n, n), dtype=np.float32))
    return ov.Model([ops.matmul(x_in, w, False, False)], [x], "peak")


def openvino_peak(n, budget, threads, precision):
    import openvino as ov
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    compiled = core.compile_model(_openvino_matmul(n, precision == "int8"), "CPU", config)
    req = compiled.create_infer_request()
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    return _best_gflops(lambda: req.infer([a]), n, budget)


def openvino_capabilities() -> list[str]:
    try:
        import openvino as ov
        return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:
        return []


def measure_peaks(n: int = 2048, budget: Budget | None = None, threads: int | None = None) -> dict:
    """{"fp32": {"gflops": best, "by_method": {...}}, "bf16": ..., "int8": ..., "absent": {method: reason}}."""
    budget = budget or Budget(warmup=2, min_iters=5, min_seconds=0.5, max_seconds=2.0)
    threads = threads or os.cpu_count() or 1
    caps = openvino_capabilities()
    methods = {
        ("fp32", "numpy"): lambda: numpy_fp32(n, budget),
        ("fp32", "onnxruntime"): lambda: onnxruntime_fp32(n, budget, threads),
        ("fp32", "openvino"): lambda: openvino_peak(n, budget, threads, "fp32"),
        ("bf16", "openvino"): lambda: openvino_peak(n, budget, threads, "bf16"),
        ("int8", "openvino"): lambda: openvino_peak(n, budget, threads, "int8"),
        ("int8", "onnxruntime"): lambda: onnxruntime_int8(n, budget, threads),
    }
    out: dict = {"matmul_n": n, "threads": threads, "absent": {}}
    for (precision, method), run in methods.items():
        if precision == "bf16" and caps and "BF16" not in caps:
            out["absent"][f"{precision}/{method}"] = "CPU reports no bf16 support"
            continue
        try:
            gflops = run()
        except Exception as e:   # a backend that is not installed or cannot run this op
            out["absent"][f"{precision}/{method}"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
            continue
        entry = out.setdefault(precision, {"gflops": 0.0, "by_method": {}})
        entry["by_method"][method] = round(gflops, 1)
        if gflops > entry["gflops"]:
            entry["gflops"], entry["method"] = round(gflops, 1), method
    return out


def measure_gpu_peaks(n: int = 8192, budget: Budget | None = None) -> dict:
    """fp32 and fp16 MatMul on the GPU through ONNX Runtime's CUDA provider, inputs and outputs bound on the
    device (no host copies timed). {"absent": {...}} when there is no CUDA provider."""
    budget = budget or Budget(warmup=3, min_iters=10, min_seconds=0.5, max_seconds=2.0)
    out: dict = {"matmul_n": n, "absent": {}}
    try:
        import onnxruntime as ort
    except ImportError as e:
        out["absent"]["gpu"] = f"onnxruntime not importable ({e})"
        return out
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        out["absent"]["gpu"] = "no CUDAExecutionProvider in this onnxruntime (install faceedit[gpu] on a GPU machine)"
        return out
    for precision, np_dtype in (("fp32", np.float32), ("fp16", np.float16)):
        try:
            from onnx import TensorProto, helper, numpy_helper
            elem = TensorProto.FLOAT if np_dtype == np.float32 else TensorProto.FLOAT16
            w = np.random.default_rng(1).standard_normal((n, n)).astype(np_dtype)
            g = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "peak",
                                  [helper.make_tensor_value_info("a", elem, [n, n])],
                                  [helper.make_tensor_value_info("y", elem, [n, n])],
                                  [numpy_helper.from_array(w, "w")])
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
            sess = ort.InferenceSession(m.SerializeToString(), providers=["CUDAExecutionProvider"])
            a = ort.OrtValue.ortvalue_from_numpy(np.random.default_rng(0).standard_normal((n, n)).astype(np_dtype), "cuda", 0)
            binding = sess.io_binding()
            binding.bind_ortvalue_input("a", a)
            binding.bind_output("y", "cuda")

            def call():
                sess.run_with_iobinding(binding)
                binding.synchronize_outputs()
            gflops = _best_gflops(call, n, budget)
            out[precision] = {"gflops": round(gflops, 1), "method": "onnxruntime-cuda", "by_method": {"onnxruntime-cuda": round(gflops, 1)}}
        except Exception as e:
            out["absent"][f"{precision}/onnxruntime-cuda"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
    return out
