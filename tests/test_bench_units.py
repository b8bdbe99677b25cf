"""Benchmark building blocks that need no model: FLOP counting, timing, targets, reports, cold runs."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from faceedit.bench import coldrun, report, results, targets, timing


def _graph():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in
             (("w1", (8, 3, 3, 3)), ("w2", (8, 4, 4, 4)), ("w3", (10, 5)), ("w4", (6, 7)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h1"], pads=[1, 1, 1, 1]),                    # 8*16*16 * 3*9
             helper.make_node("ConvTranspose", ["h1", "w2"], ["h2"], strides=[2, 2], pads=[1, 1, 1, 1]),  # 8*16*16 * 4*16
             helper.make_node("Gemm", ["v", "w3"], ["g"]),                                          # 10*5
             helper.make_node("MatMul", ["m", "w4"], ["mm"]),                                       # 4*7 * 6
             helper.make_node("Relu", ["mm"], ["r"])]
    g = helper.make_graph(nodes, "t",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16]),
                           helper.make_tensor_value_info("v", TensorProto.FLOAT, ["N", 10]),
                           helper.make_tensor_value_info("m", TensorProto.FLOAT, ["N", 4, 6])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("h2", "g", "r")], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_flops_counts_conv_convtranspose_gemm_matmul():
    from faceedit.bench.flops import count_macs
    expected = {"Conv": 8 * 16 * 16 * 27, "ConvTranspose": 8 * 16 * 16 * 64, "Gemm": 50, "MatMul": 168}
    for batch in (1, 3):
        got = count_macs(_graph(), batch=batch)
        assert got["by_op"] == expected
        assert got["macs_per_image"] == sum(expected.values())
        assert got["flops_per_image"] == 2 * sum(expected.values())
        assert got["unknown_nodes"] == []


def test_timing_percentiles_and_throughput():
    calls = []
    s = timing.measure(lambda: calls.append(1), timing.Budget(warmup=2, min_iters=5, min_seconds=0, max_seconds=1))
    assert len(s) >= 5 and len(calls) == len(s) + 2
    summary = timing.summarize([0.01] * 99 + [0.02], items_per_call=4)
    assert summary["p50_ms"] == pytest.approx(10) and summary["p99_ms"] > 10
    assert summary["throughput_ips"] == pytest.approx(4 * 100 / 1.01, rel=1e-3)


def _result():
    def cfg(name, backend, precision, b1, thr, frac=None, engine=True, raw=None, fp32=None):
        one = {"p50_ms": b1, "p95_ms": b1, "p99_ms": b1, "throughput_ips": 1e3 / b1,
               "vs_eager": None if backend == "pytorch" else round(10.0 / b1, 3), "vs_eager_ci": [0.97 * 10 / b1, 1.03 * 10 / b1]}
        eight = {"p50_ms": 8e3 / thr, "p95_ms": 1, "p99_ms": 1, "throughput_ips": thr, "fraction_of_peak": frac}
        if raw:  # the paired ratio against raw OpenVINO (interleaved rounds), with its interval
            one.update(vs_raw=raw[0], vs_raw_ci=raw[1])
            eight.update(vs_raw=raw[0], vs_raw_ci=raw[1])
        if fp32:
            eight.update(vs_fp32=fp32, vs_fp32_ci=[fp32 * 0.98, fp32 * 1.02])
        return {"name": name, "backend": backend, "precision": precision, "engine": engine, "peak_precision": precision,
                "graph": "fused", "flops_per_image": 1e9, "batches": {"1": one, "8": eight}}
    return {"schema": results.SCHEMA, "created": "2026-11-27T02:00:00", "quick": False,
            "machine": {"kind": "cpu-2core", "cpu": "test cpu", "cores": 2, "gpus": []},
            "peak": {"cpu": {"matmul_n": 64, "fp32": {"gflops": 100.0, "method": "numpy"}}},
            "summary": {"batcher_offline_throughput_ips": 500.0},
            "precision": {"openvino": "bf16", "detail": "bf16: native on this CPU and accepted by the export"},
            "configs": [cfg("pytorch-eager/fp32", "pytorch", "fp32", 10.0, 100.0, engine=False),
                        cfg("onnxruntime/fp32/fused", "onnxruntime", "fp32", 2.0, 300.0, 0.6),
                        cfg("onnxruntime/int8/fused", "onnxruntime", "int8", 2.5, 700.0, 0.1, fp32=1.4),
                        cfg("openvino/bf16/fused", "openvino", "bf16", 3.0, 900.0, 0.85, raw=(1.04, [1.01, 1.07])),
                        cfg("openvino-raw/bf16/fused", "openvino-raw", "bf16", 3.0, 950.0, 0.9, engine=False)],
            "concurrency": [{"clients": 64, "max_delay_ms": 2, "max_batch": 32, "throughput_ips": 460.0, "p50_ms": 1,
                             "p99_ms": 2, "mean_batch": 30.0, "vs_offline": 0.92, "vs_offline_ci": [0.9, 0.94]}],
            "end_to_end": {"photo": {"p50_ms": 20.0, "p95_ms": 24, "p99_ms": 26, "p50_ci95_ms": [19.5, 20.5]},
                           "photo_large": {"p50_ms": 130.0, "p95_ms": 140, "p99_ms": 150},
                           "detection": {"detector": "blazeface",
                                         "synthetic": {"faces": 10, "found": 10, "within_5pct": 9, "false_faces": 0,
                                                       "eye_error_mean": 0.02, "eye_error_max": 0.06, "cases": []},
                                         "folder": {"photos": 200, "found_with_landmark_eyes_inside": 199,
                                                    "found_fraction": 0.995, "folder": "photos", "detect_ms_p50": 5.0,
                                                    "detect_ms_p95": 9.0, "decode_ms_p50": 1.0, "missed": ["x.jpg"]},
                                         "no_face": {"images": 50, "with_false_faces": 0, "false_faces": 0,
                                                     "false_on": [], "ms_p50": 3.0, "set": "built-in"}},
                           "cold_run": {"ok": True, "wall_s_median": 0.7, "peak_rss_mb": 120.0}}}


def test_targets_pass_and_miss():
    t = {x["name"]: x for x in targets.evaluate(_result())}
    assert t["batch-1 crop edit vs PyTorch eager"]["measured"] == pytest.approx(5.0)   # the fastest at batch 1
    assert t["batch-1 crop edit vs PyTorch eager"]["pass"] is True and t["batch-1 crop edit vs PyTorch eager"]["ci95"]
    # 1.04x with an interval above 1: faster than raw, but not by the 5% asked
    raw1 = t["engine vs raw OpenVINO, batch 1"]
    assert raw1["measured"] == pytest.approx(1.04) and raw1["pass"] is False and raw1["ci95"] == [1.01, 1.07]
    assert t["engine vs raw OpenVINO, batch 32"]["measured"] == pytest.approx(1.04)  # the largest batch up to 32
    assert t["batched throughput vs roofline"]["pass"] is True       # openvino bf16 is the fastest
    assert t["reduced precision vs fp32 (onnxruntime)"]["measured"] == pytest.approx(1.4)  # the interleaved pair
    assert t["batcher, 64 clients vs offline"]["pass"] is True and t["batcher, 64 clients vs offline"]["ci95"] == [90.0, 94.0]
    assert t["1-MP photo end to end p50"]["pass"] is True and t["12-MP photo end to end p50"]["pass"] is False
    assert t["no face on images that hold none"]["pass"] is True
    assert t["synthetic faces found, eyes within 5%"]["measured"] == pytest.approx(90.0)
    assert t["synthetic faces found, eyes within 5%"]["pass"] is False  # one face's eyes off by more than 5%
    assert t["photos found with landmark eyes"]["pass"] is True
    assert t["cold `faceedit run`"]["pass"] is False
    assert t["runtime peak RSS"]["pass"] is True


def test_targets_absent_without_baseline():
    r = _result()
    r["configs"] = r["configs"][1:]
    r["end_to_end"] = {}
    t = {x["name"]: x for x in targets.evaluate(r)}
    assert t["batch-1 crop edit vs PyTorch eager"]["pass"] is None
    assert "baseline absent" in t["batch-1 crop edit vs PyTorch eager"]["detail"]
    assert t["cold `faceedit run`"]["pass"] is None
    assert t["photos found with landmark eyes"]["pass"] is None


def test_report_and_markdown(tmp_path):
    from rich.console import Console
    r = _result()
    r["targets"] = targets.evaluate(r)
    console = Console(record=True, width=200)
    report.print_report(r, console)
    text = console.export_text()
    assert "onnxruntime/int8/fused" in text and "miss" in text
    md = report.markdown(r)
    assert md.count("\n| ") >= 8 and "| cold `faceedit run` | <= 0.45 s | 0.7 s | miss |" in md
    assert "5 [4.85-5.15]" in md   # ratios carry their intervals
    path = results.write_json(tmp_path / "r.json", r)
    assert results.read_json(path)["configs"][1]["name"] == "onnxruntime/fp32/fused"
    assert not list(tmp_path.glob(".*tmp"))


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    from faceedit.bench.plots import plot
    path = plot(_result(), tmp_path / "r.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_cold_run_reports_wall_time_rss_and_failure():
    ok = coldrun.cold_runs([sys.executable, "-c", "import numpy"], repeats=2)
    assert ok["ok"] and 0 < ok["wall_s_median"] < 30 and 5 < ok["peak_rss_mb"] < 1000
    bad = coldrun.cold_runs([sys.executable, "-c", "import sys; sys.exit('boom')"], repeats=1)
    assert not bad["ok"] and bad["runs"][0]["exit_code"] == 1 and bad["runs"][0]["stderr_tail"] == "boom"


def test_cold_run_rss_is_the_childs_not_the_benchmarks():
    # Linux keeps the RSS high-water mark across vfork+exec: a child of a big process used to report
    # the parent's peak (the benchmark's ~1 GB) as its own
    import numpy as np
    ballast = np.ones(400 * 2**20 // 8)  # this process now holds 400 MB
    r = coldrun.run_once([sys.executable, "-c", "pass"])
    assert r["exit_code"] == 0 and 1 < r["peak_rss_mb"] < 150, r
    del ballast


def test_concurrency_counts_requests():
    from faceedit.bench.concurrency import run_clients
    import time
    out = run_clients(lambda: time.sleep(0.002), clients=4, seconds=0.2, warmup_s=0.05)
    assert out["requests"] > 10 and out["errors"] == 0 and out["p50_ms"] >= 2


def test_machine_description_is_json():
    from faceedit.bench.machine import describe, machine_kind
    d = describe()
    json.dumps(d)
    assert d["cores"] >= 1 and "onnxruntime" in d["versions"]
    assert machine_kind(["NVIDIA H100 80GB HBM3"]) == "gpu-h100"
    assert machine_kind([]).startswith("cpu-")


def test_photo_only_run_reports_the_crop_targets_absent():
    r = _result()
    r.update(configs=[], concurrency=[], absent={"crops": "crop edits not measured in this run (--photo-only)"})
    t = {x["name"]: x for x in targets.evaluate(r)}
    assert t["batch-1 crop edit vs PyTorch eager"]["pass"] is None and "--photo-only" in t["batch-1 crop edit vs PyTorch eager"]["detail"]
    assert t["1-MP photo end to end p50"]["pass"] is True and t["photos found with landmark eyes"]["pass"] is True


def test_client_pool_counts_every_answer_inside_the_window_even_when_a_request_outlasts_it():
    """8 clients whose answers take 0.1 s: 80 answers a second. Counting only requests that both start and end
    inside a 0.35-s window read about 40% less (each client loses the request the window's end cuts); with a
    window shorter than an answer it read ~0 (the slow-machine batcher row: 1% of offline)."""
    import time
    from faceedit.bench.concurrency import ClientPool
    pool = ClientPool(lambda: time.sleep(0.1), 8, warmup_s=0.1)
    try:
        rates = [pool.window(0.35)["throughput_ips"] for _ in range(2)]
    finally:
        pool.close()
    assert all(55 <= r <= 95 for r in rates), rates


def test_client_pool_windows_count_what_finishes_inside_and_park_between():
    import threading
    import time
    from faceedit.bench.concurrency import ClientPool
    calls, busy = [], threading.Event()

    def call():
        busy.set()
        calls.append(1)
        time.sleep(0.002)
    pool = ClientPool(call, 4, warmup_s=0.02)
    try:
        w = pool.window(0.2)
        assert w["latencies"] and w["throughput_ips"] > 0 and all(t >= 0.002 for t in w["latencies"])
        n = len(calls)
        time.sleep(0.1)
        assert len(calls) == n            # parked: no request between windows
        slow = ClientPool(lambda: time.sleep(0.3), 1, warmup_s=0.0)
        w = slow.window(0.05)             # nothing finishes in 50 ms: the window waits for the first request
        assert len(w["latencies"]) == 1 and w["seconds_per_item"] >= 0.29
        slow.close()
    finally:
        pool.close()


def test_loadgen_photo_requests_carry_bytes_of_their_own_and_the_same_pixels():
    import hashlib
    from faceedit.bench.loadgen import photos, unique_jpeg
    from faceedit.engine.imageio import read_photo_bytes
    body = photos(n=1)[0][0]
    a, b = unique_jpeg(body, 1), unique_jpeg(body, 2)
    assert len({hashlib.sha256(x).digest() for x in (body, a, b)}) == 3 and len(a) == len(b)
    assert np.array_equal(read_photo_bytes(a).rgb, read_photo_bytes(body).rgb)
