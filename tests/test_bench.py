"""`faceedit bench` code paths at tiny sizes (tiny model, batch 1-2, a few iterations), so they cannot rot.
Timings here are meaningless and never asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from faceedit.cli.main import app

pytestmark = pytest.mark.slow  # exports a model and runs the benchmark


@pytest.fixture(scope="module")
def tiny_model(request, tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported with fp32 graphs only (no int8, OpenVINO IR or fp16: seconds); the
    session's shared export when conftest provides one."""
    try:
        return request.getfixturevalue("tiny_model_dir")
    except pytest.FixtureLookupError:
        pass
    pytest.importorskip("onnx")
    from faceedit.export import export_model
    out = tmp_path_factory.mktemp("bench") / "model"
    export_model(tiny_checkpoint, out, int8=False, openvino=False, fp16=False, calib_size=16, eval_size=16,
                 log=lambda *a: None)
    return out


def test_bench_cli_tiny_run_writes_results(tiny_model, tiny_checkpoint, tmp_path):
    res = CliRunner().invoke(app, ["bench", "--model", str(tiny_model), "--checkpoint", str(tiny_checkpoint),
                                   "--tiny", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    files = {p.suffix: p for p in tmp_path.iterdir()}
    assert set(files) == {".json", ".md", ".png"} and files[".json"].stem.endswith("-tiny")
    r = json.loads(files[".json"].read_text())
    assert r["schema"] == "faceedit-bench-1" and r["machine"]["cores"] >= 1 and r["machine"]["versions"]["onnxruntime"]
    names = {c["name"]: c for c in r["configs"]}
    assert {"pytorch-eager/fp32", "onnxruntime/fp32/fused", "onnxruntime/fp32/three-graph"} <= set(names)
    for c in r["configs"]:
        assert set(c["batches"]) == {"1", "2"}
        for row in c["batches"].values():
            assert row["p50_ms"] > 0 and row["throughput_ips"] > 0 and row["vs_eager"] > 0
    ort = names["onnxruntime/fp32/fused"]
    assert ort["flops_per_image"] > 1e6 and ort["batches"]["2"]["fraction_of_peak"] > 0
    assert ort["max_abs_diff_vs_eager_u8"] <= 3          # same weights: the engine's output is the eager output
    assert r["flops"]["three-graph"]["flops_per_image"] > r["flops"]["fused"]["flops_per_image"]  # trunk shared
    assert r["peak"]["cpu"]["fp32"]["gflops"] > 0
    assert "gpu" in r["absent"] or r["machine"]["gpus"]
    assert [row["clients"] for row in r["concurrency"]] == [1, 2] and r["concurrency"][1]["mean_batch"] >= 1
    e2e = r["end_to_end"]
    assert e2e["photo"].get("p50_ms", 0) > 0 or "absent" in e2e["photo"]
    assert e2e["cold_run"]["ok"], e2e["cold_run"]
    assert e2e["cold_run"]["peak_rss_mb"] > 10 and e2e["load"]["load_and_first_edit_s"] > 0
    goals = {t["name"] for t in r["targets"]}
    assert {"batch-1 crop edit vs PyTorch eager", "batched throughput vs roofline", "cold `faceedit run`",
            "runtime peak RSS", "1-MP photo end to end p50"} <= goals
    assert "| target | goal | measured |" in files[".md"].read_text()
    assert files[".png"].read_bytes()[:4] == b"\x89PNG"
    assert "targets" in res.output and "pass" in res.output or "miss" in res.output


def test_bench_baseline_from_the_model_directory_alone(tiny_model, tmp_path):
    """No --checkpoint: the PyTorch baseline is the model directory's own weights rebuilt as modules, and
    the engine's output equals it (same weights), so a fresh clone gets the ratio with no extra file."""
    res = CliRunner().invoke(app, ["bench", "--model", str(tiny_model), "--tiny", "--no-save", "--backends",
                                   "pytorch,onnxruntime", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "r.json").read_text())
    names = {c["name"]: c for c in r["configs"]}
    assert "rebuilt from its graphs" in names["pytorch-eager/fp32"]["weights_from"]
    assert names["onnxruntime/fp32/fused"]["max_abs_diff_vs_eager_u8"] <= 3
    assert names["onnxruntime/fp32/fused"]["batches"]["1"]["vs_eager"] > 0
    assert not any(tmp_path.glob("*.md"))  # --no-save: only the --json file


def test_bench_without_torch_reports_the_baseline_absent(tiny_model):
    from faceedit.bench.plan import make_plan
    from faceedit.bench.suite import run
    plan = make_plan("tiny", model=tiny_model, batches=(1,), backends=("onnxruntime",),
                     concurrency=False, end_to_end=False)
    r = run(plan, eager_module=None, log=lambda *a: None)
    assert "baseline absent" in r["absent"]["pytorch-eager/fp32"]
    assert [c["name"] for c in r["configs"]][:2] == ["onnxruntime/fp32/fused", "onnxruntime/fp32/three-graph"]
    assert all(c["backend"] == "onnxruntime" for c in r["configs"])
    assert r["configs"][0]["batches"]["1"]["vs_eager"] is None
    first = r["targets"][0]
    assert first["pass"] is None and "baseline absent" in first["detail"]


@pytest.mark.parametrize("args, message", [
    (["--batches", "1,x"], "--batches must be"),
    (["--batches", "0"], "--batches sizes must be"),
    (["--backends", "cuda-magic"], "unknown backend"),
    (["--checkpoint", "/nonexistent/best.pt"], "checkpoint not found"),
])
def test_bench_bad_options_are_one_line(args, message, tiny_model, tmp_path):
    res = CliRunner().invoke(app, ["bench", "--model", str(tiny_model), "--tiny", "--no-save", *args])
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


def test_benchmark_code_in_the_engine_never_imports_torch():
    code = ("import sys, faceedit.bench.suite, faceedit.bench.offline, faceedit.bench.report, "
            "faceedit.bench.flops, faceedit.bench.peak, faceedit.bench.end_to_end, "
            "faceedit.bench.concurrency, faceedit.bench.raw_openvino, faceedit.cli.bench_cmd; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_skips_a_precision_whose_decoder_the_export_rejected(tiny_model, tmp_path):
    # an export that kept int8 encoder/attribute graphs but rejected the int8 decoder (over its budget):
    # the bench reports that configuration absent and measures the rest
    import shutil
    from faceedit.bench.plan import make_plan
    from faceedit.bench.suite import run
    partial = tmp_path / "partial"
    shutil.copytree(tiny_model, partial)
    m = json.loads((partial / "manifest.json").read_text())
    for g in ("encoder", "attributes"):  # the fp32 files stand in for int8 ones: same contract
        m["graphs"][g]["int8"] = m["graphs"][g]["fp32"]
    (partial / "manifest.json").write_text(json.dumps(m))
    plan = make_plan("tiny", model=partial, batches=(1,), backends=("onnxruntime",),
                     concurrency=False, end_to_end=False)
    r = run(plan, eager_module=None, log=lambda *a: None)
    assert "no int8 decoder graph" in r["absent"]["onnxruntime/int8/three-graph"]
    assert [c["name"] for c in r["configs"]] == ["onnxruntime/fp32/fused", "onnxruntime/fp32/three-graph"]
