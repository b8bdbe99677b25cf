"""Export: checkpoint -> model directory. One real export of the tiny checkpoint (fp32 + int8 + fp16 +
OpenVINO) shared by most tests; each graph is then run in ONNX Runtime and checked against the
contract in docs/model-directory.md. TensorRT parts that need a GPU skip with a reason."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from typer.testing import CliRunner  # noqa: E402

from faceedit.core.manifest import FORMAT_VERSION, ManifestError, load_manifest  # noqa: E402

runner = CliRunner()
N_JUDGE_ATTR = 5

pytestmark = pytest.mark.slow  # most tests share a full export (int8, OpenVINO): ~2 minutes on 2 cores


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def judge_ckpt(tmp_path_factory):
    from faceedit.train.model import Judge
    torch.manual_seed(0)
    j = Judge(N_JUDGE_ATTR, 64)
    for m in j.modules():  # non-trivial BatchNorm statistics, so folding is really exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("judge") / "judge.pt"
    torch.save({"format": "faceedit-judge-1", "attributes": ["Male", "Smiling", "Eyeglasses", "Bald", "Young"],
                "image_size": 64, "model": j.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def eval_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "eval.json"
    path.write_text(json.dumps({"summary": {"split": "test", "faces": 24, "edit_success_mean13": 0.5}}))
    return path


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, eval_json, tmp_path_factory):
    from faceedit.export import export_model
    out = tmp_path_factory.mktemp("export") / "model"
    lines = []
    t = time.time()
    manifest = export_model(tiny_checkpoint, out, eval_json=eval_json, log=lines.append,
                            calib_size=96, eval_size=24, threads=1)
    print(f"export took {time.time() - t:.1f}s")
    return out, manifest, lines


# ---- the directory and its manifest --------------------------------------------------------------
def test_manifest_follows_the_contract(exported, synth_data, tiny_checkpoint):
    out, manifest, lines = exported
    assert load_manifest(out) == manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "faceedit-model" and manifest["format_version"] == FORMAT_VERSION
    assert (manifest["image_size"], manifest["layout"], manifest["channel_order"]) == (64, "NCHW", "RGB")
    assert manifest["value_range"] == [-1.0, 1.0]
    assert manifest["z_shape"] == [4, 8, 8]
    assert manifest["opset"] >= 17
    assert set(manifest["versions"]) >= {"faceedit", "torch", "onnx", "onnxruntime"}
    crop = manifest["crop"]
    assert crop["eyes"] == [[0.365, 0.432], [0.628, 0.432]] and crop["reference_size"] == [178, 218]
    assert abs(crop["box_fraction"] - 148 / 178) < 1e-5 and abs(crop["box_center"][1] - 121 / 218) < 1e-5
    assert manifest["eval"]["edit_success_mean13"] == 0.5

    # attribute defaults come from the train split's label frequencies
    from faceedit.train.data import load_celeba
    ds = load_celeba(synth_data)
    names = [a["name"] for a in manifest["attributes"]]
    _, labels = ds.select(names)
    freq = labels[ds.split_indices("train")].mean(0)
    for a, f in zip(manifest["attributes"], freq):
        assert a["frequency"] == pytest.approx(f, abs=1e-4)
        assert a["default"] == (1.0 if f > 0.5 else 0.0)
    assert any(a["default"] == 1.0 for a in manifest["attributes"])  # No_Beard, Young are mostly on

    # parity printed and stored, within the fp32 target, on batch 1 and 7 real (folder) faces
    for b in ("batch_1", "batch_7"):
        assert manifest["parity"][b]["max_abs_error"] <= 1e-4
        assert set(manifest["parity"][b]) >= {"encoder", "attributes", "decoder", "editor"}
    assert "test images from" in manifest["parity"]["images"]
    assert any(line.startswith("parity ONNX Runtime vs PyTorch") for line in lines)
    assert not list(out.parent.glob(".model.*"))  # no staging leftovers


def test_graphs_are_clean_folded_and_typed(exported):
    out, manifest, _ = exported
    for graph, precisions in manifest["graphs"].items():
        entry = precisions["fp32"]
        model = onnx.load(str(out / entry["path"]))
        onnx.checker.check_model(model, full_check=True)
        assert not [n for n in model.graph.node if n.op_type == "BatchNormalization"], graph
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
        for t in entry["inputs"] + entry["outputs"]:
            assert t["dtype"] == "float32" and t["shape"][0] == "N" and all(isinstance(d, int) for d in t["shape"][1:])
    sig = lambda g, io: [(t["name"], t["shape"]) for t in manifest["graphs"][g]["fp32"][io]]
    assert sig("encoder", "inputs") == [("image", ["N", 3, 64, 64])]
    assert sig("encoder", "outputs") == [("mu", ["N", 4, 8, 8]), ("logvar", ["N", 4, 8, 8])]
    assert sig("attributes", "outputs") == [("probabilities", ["N", 14])]
    assert sig("decoder", "inputs") == [("z", ["N", 4, 8, 8]), ("attributes", ["N", 14])]
    assert sig("editor", "inputs") == [("image", ["N", 3, 64, 64]), ("target", ["N", 14]), ("mask", ["N", 14])]
    assert [t["name"] for t in manifest["graphs"]["editor"]["fp32"]["outputs"]] == ["edited", "reconstruction", "probabilities"]


def test_fp32_graphs_share_one_copy_of_their_weights(exported):
    out, manifest, _ = exported
    referenced = 0
    for graph, precisions in manifest["graphs"].items():
        entry = precisions["fp32"]
        assert [c["path"] for c in entry["companions"]] == ["weights.bin"], graph
        model = onnx.load(str(out / entry["path"]), load_external_data=False)
        external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert external, graph
        for t in external:
            info = {e.key: e.value for e in t.external_data}
            assert info["location"] == "weights.bin"
            referenced += int(info["length"])
    # the editor repeats the three other graphs and encoder + attribute head share a trunk: stored once,
    # the shared file holds well under 60% of what the graphs reference
    assert (out / "weights.bin").stat().st_size < 0.6 * referenced


def feeds_for(entry, batch, rng):
    feeds = {}
    for t in entry["inputs"]:
        shape = [batch] + t["shape"][1:]
        if t["name"] in ("target", "mask", "attributes"):
            feeds[t["name"]] = (rng.random(shape) < 0.5).astype(np.float32)
        else:
            feeds[t["name"]] = rng.uniform(-1, 1, shape).astype(np.float32)
    return feeds


def test_every_onnx_file_runs_with_batch_1_and_5(exported):
    out, manifest, _ = exported
    rng = np.random.default_rng(0)
    ran = []
    for graph, precisions in manifest["graphs"].items():
        for precision, entry in precisions.items():
            if not entry["path"].endswith(".onnx"):
                continue
            sess = session(out / entry["path"])
            for b in (1, 5):
                got = sess.run(None, feeds_for(entry, b, rng))
                for arr, t in zip(got, entry["outputs"]):
                    assert list(arr.shape) == [b] + t["shape"][1:] and arr.dtype == np.float32
                    assert np.isfinite(arr).all()
            ran.append(f"{graph}/{precision}")
    assert {"encoder/fp32", "decoder/int8", "attributes/int8", "editor/fp16"} <= set(ran)


def test_editor_computes_the_documented_edit(exported):
    out, manifest, _ = exported
    g = {n: session(out / manifest["graphs"][n]["fp32"]["path"]) for n in ("encoder", "attributes", "decoder", "editor")}
    from faceedit.export.parity import synthetic_faces
    x = synthetic_faces(5, 64, seed=9)
    rng = np.random.default_rng(1)
    target = (rng.random((5, 14)) < 0.5).astype(np.float32)
    mask = np.zeros((5, 14), np.float32)
    mask[:, 3] = 1
    edited, recon, probs = g["editor"].run(None, {"image": x, "target": target, "mask": mask})
    mu = g["encoder"].run(["mu"], {"image": x})[0]
    source = (g["attributes"].run(None, {"image": x})[0] > 0.5).astype(np.float32)
    y = mask * target + (1 - mask) * source
    np.testing.assert_allclose(probs, g["attributes"].run(None, {"image": x})[0], atol=1e-6)
    np.testing.assert_allclose(recon, g["decoder"].run(None, {"z": mu, "attributes": source})[0], atol=1e-5)
    np.testing.assert_allclose(edited, g["decoder"].run(None, {"z": mu, "attributes": y})[0], atol=1e-5)


def test_reduced_precision_variants_pass_their_budget(exported):
    out, manifest, lines = exported
    p = manifest["precisions"]
    for name in ("int8", "fp16", "openvino_int8"):
        rec = p[name]
        assert rec["rejected"] == [], (name, rec)
        assert rec["attribute_agreement"] >= rec["budget"]["min_attribute_agreement"] == 0.99
        assert rec["psnr_db"] >= rec["budget"]["min_psnr_db"] == 35.0
        for graph in ("encoder", "attributes", "decoder"):
            assert rec["graphs"][graph]["accepted"]
            assert (out / manifest["graphs"][graph][name]["path"]).is_file()
    assert "train images from" in p["int8"]["calibration"]
    bf16 = p["openvino_bf16"]
    from faceedit.export import openvino_variant
    if openvino_variant.cpu_supports_bf16():
        assert bf16["compile_config"] == {"INFERENCE_PRECISION_HINT": "bf16"} and bf16["attribute_agreement"] > 0.9
    else:  # an AVX2-only CPU (no AVX512-BF16 / AMX): the variant is recorded as skipped, with the reason
        assert bf16 == {"skipped": "this CPU has no bf16 support in OpenVINO"}
    # the OpenVINO IR's weights are listed (and hashed) with it
    assert manifest["graphs"]["decoder"]["openvino_int8"]["companions"][0]["path"] == "decoder.ov-int8.bin"


def test_judge_is_exported_into_a_judge_set_and_matches_torch(exported, judge_ckpt, tmp_path):
    """A judge goes into a judge set (export.judges.add_judge), never into the model directory."""
    from faceedit.core.judge_set import load_judge_set
    from faceedit.export.judges import add_judge
    out, manifest, _ = exported
    assert "judge" not in manifest and not (out / "judge.onnx").exists()
    judges = tmp_path / "judges"
    add_judge(judges, judge_ckpt, log=lambda *a: None)
    entry = load_judge_set(judges)["judge"]
    assert entry["path"] == "judge.onnx" and len(entry["attributes"]) == N_JUDGE_ATTR
    model = onnx.load(str(judges / "judge.onnx"))
    assert not [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    from faceedit.export.parity import synthetic_faces
    from faceedit.train.judge import load_judge
    judge, _ = load_judge(judge_ckpt)
    x = synthetic_faces(3, 64, seed=4)
    with torch.no_grad():
        ref = torch.sigmoid(judge(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(session(judges / "judge.onnx").run(None, {"image": x})[0], ref, atol=1e-5)


def test_batchnorm_folding_is_exact_with_real_statistics():
    from faceedit.export.onnx_graphs import DecoderGraph, EncoderGraph, fold_batchnorm
    from faceedit.train.model import CVAEGAN, ModelConfig
    torch.manual_seed(0)
    model = CVAEGAN(ModelConfig(z_channels=4, width=8, dec_width=32))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.3, 3)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    folded = fold_batchnorm(model)
    assert not [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x, z, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 4, 8, 8), torch.rand(2, 14).round()
    with torch.no_grad():
        torch.testing.assert_close(EncoderGraph(folded)(x), EncoderGraph(model)(x), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(DecoderGraph(folded)(z, y), DecoderGraph(model)(z, y), atol=1e-5, rtol=1e-4)


# ---- refusing damaged directories ---------------------------------------------------------------
def test_tampered_or_incomplete_directory_is_refused(exported, tmp_path):
    out, manifest, _ = exported
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    load_manifest(bad)
    data = bytearray((bad / "encoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte different
    (bad / "encoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"model file encoder.onnx does not match its manifest \(sha256 differs\)"):
        load_manifest(bad)
    load_manifest(bad, verify=False)  # presence only

    shutil.copyfile(out / "encoder.onnx", bad / "encoder.onnx")
    (bad / "decoder.ov-int8.bin").write_bytes(b"tampered")
    with pytest.raises(ManifestError, match="decoder.ov-int8.bin does not match"):
        load_manifest(bad)
    (bad / "decoder.ov-int8.bin").unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(bad)
    shutil.copyfile(out / "decoder.ov-int8.bin", bad / "decoder.ov-int8.bin")

    m = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(ManifestError, match="format version 99"):
        load_manifest(bad)
    (bad / "manifest.json").write_text(json.dumps({**m, "format": "something-else"}))
    with pytest.raises(ManifestError, match="format"):
        load_manifest(bad)
    (bad / "manifest.json").write_text("{ not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)
    (bad / "manifest.json").unlink()
    with pytest.raises(ManifestError, match="no manifest.json"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nowhere")
    # every message is one line
    try:
        load_manifest(bad)
    except ManifestError as e:
        assert "\n" not in str(e)


# ---- Triton ---------------------------------------------------------------------------------------
def triton_schema():
    """Triton's ModelConfig protobuf module. tritonclient.grpc's package __init__ needs the grpc package,
    which the schema itself does not: load model_config_pb2.py directly when grpc is absent."""
    try:
        from tritonclient.grpc import model_config_pb2
        return model_config_pb2
    except (ImportError, RuntimeError):
        import importlib.util
        tc = pytest.importorskip("tritonclient")
        path = Path(tc.__file__).parent / "grpc" / "model_config_pb2.py"
        if not path.exists():
            pytest.skip("tritonclient has no model_config_pb2 schema")
        spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


def test_triton_repository_parses_with_tritons_schema(exported, tmp_path):
    model_config_pb2 = triton_schema()
    from google.protobuf import text_format

    from faceedit.export import write_triton
    out, manifest, _ = exported
    repo = tmp_path / "triton"
    names = write_triton(out, repo, max_batch_size=32, max_queue_delay_us=250, instances=2)
    assert set(names) == {"encoder", "attributes", "decoder", "editor", "encode_decode"}
    configs = {}
    for name in names:
        cfg = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        configs[name] = cfg
        assert cfg.name == name and cfg.max_batch_size == 32
    for name in ("encoder", "attributes", "decoder", "editor"):
        cfg = configs[name]
        entry = manifest["graphs"][name]["fp32"]
        assert cfg.platform == "onnxruntime_onnx"
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 250
        assert cfg.instance_group[0].count == 2
        assert [(t.name, list(t.dims)) for t in cfg.input] == [(t["name"], t["shape"][1:]) for t in entry["inputs"]]
        assert [(t.name, list(t.dims)) for t in cfg.output] == [(t["name"], t["shape"][1:]) for t in entry["outputs"]]
        assert all(t.data_type == model_config_pb2.TYPE_FP32 for t in list(cfg.input) + list(cfg.output))
        assert (repo / name / "1" / "model.onnx").read_bytes() == (out / entry["path"]).read_bytes()
    ens = configs["encode_decode"]
    assert ens.platform == "ensemble"
    steps = ens.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["encoder", "decoder"]
    # every tensor an ensemble step reads is an ensemble input or an earlier step's output
    produced = {t.name for t in ens.input}
    for s in steps:
        model_inputs = {t.name for t in configs[s.model_name].input}
        assert set(s.input_map) <= model_inputs and set(s.input_map.values()) <= produced
        assert set(s.output_map) <= {t.name for t in configs[s.model_name].output}
        produced |= set(s.output_map.values())
    assert {t.name for t in ens.output} <= produced


# ---- atomicity ------------------------------------------------------------------------------------
def test_failed_export_keeps_the_old_directory(exported, tmp_path):
    from faceedit.export.atomic import staging_dir
    out, manifest, _ = exported
    target = tmp_path / "model"
    shutil.copytree(out, target)
    with pytest.raises(RuntimeError, match="boom"):
        with staging_dir(target) as tmp:
            (tmp / "encoder.onnx").write_bytes(b"half")
            raise RuntimeError("boom")
    assert load_manifest(target) == manifest
    assert not list(tmp_path.glob(".model.*"))
    # and a non-model folder is never replaced
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        with staging_dir(tmp_path / "photos"):
            pass
    assert (tmp_path / "photos" / "me.jpg").exists()


def test_kill_9_mid_export_leaves_the_earlier_directory_intact(exported, tiny_checkpoint, tmp_path):
    out, manifest, _ = exported
    target = tmp_path / "model"
    shutil.copytree(out, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    script = ("import sys; from faceedit.export import export_model; "
              "export_model(sys.argv[1], sys.argv[2], int8=False, openvino=False, fp16=False, log=lambda *a: None, threads=1)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tiny_checkpoint), str(target)], env=env)
    staging = tmp_path / f".model.tmp-{proc.pid}"
    deadline = time.time() + 300  # generous: importing torch on a busy 2-core machine is slow
    try:
        # kill once the new directory is being written (its first graph is on disk)
        while time.time() < deadline and not (staging / "encoder.onnx").exists():
            assert proc.poll() is None, "export finished or died before it could be killed"
            time.sleep(0.02)
        assert (staging / "encoder.onnx").exists(), "export never started writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert load_manifest(target) == manifest
    # the next export to the same place removes the dead process's leftovers
    from faceedit.export.atomic import clean_stale
    clean_stale(target.absolute())
    assert not staging.exists()


def test_rejected_variant_is_reported_not_written(tiny_checkpoint, tmp_path):
    from faceedit.export import export_model
    lines = []
    manifest = export_model(tiny_checkpoint, tmp_path / "m", int8=True, openvino=False, fp16=False, log=lines.append,
                            budget={"min_psnr_db": 500.0}, calib_size=32, eval_size=8, threads=1)
    rec = manifest["precisions"]["int8"]
    assert rec["budget"]["min_psnr_db"] == 500.0 and "decoder" in rec["rejected"]
    assert rec["graphs"]["decoder"]["accepted"] is False and rec["graphs"]["decoder"]["psnr_db"] > 20
    assert "int8" not in manifest["graphs"]["decoder"] and not (tmp_path / "m" / "decoder.int8.onnx").exists()
    assert any("REJECTED" in line and "decoder" in line for line in lines)
    load_manifest(tmp_path / "m")


# ---- TensorRT (the GPU parts skip here) ---------------------------------------------------------
def test_tensorrt_names_and_profiles():
    from faceedit.core.tensorrt_names import built_here, engine_filename, timing_cache_filename
    from faceedit.export.tensorrt import profile_shapes
    assert engine_filename("decoder", "10.3.0.26", "NVIDIA H100 80GB HBM3", "fp16") == \
        "decoder.trt-10.3-NVIDIA_H100_80GB_HBM3.fp16.engine"
    assert engine_filename("decoder", "10.3.0", "NVIDIA H100") != engine_filename("decoder", "10.4.0", "NVIDIA H100")
    assert timing_cache_filename("10.3.1", "NVIDIA A10G") == "trt-10.3-NVIDIA_A10G.timing.cache"
    # the engine's backend recognises exactly the names the export writes for its machine
    name = engine_filename("editor", "10.3.0.26", "NVIDIA H200")
    assert built_here(name, "10.3.2", "NVIDIA H200") and not built_here(name, "10.4.0", "NVIDIA H200")
    assert not built_here(name, "10.3.0", "NVIDIA H100")
    inputs = [{"name": "z", "dtype": "float32", "shape": ["N", 16, 8, 8]},
              {"name": "attributes", "dtype": "float32", "shape": ["N", 14]}]
    assert profile_shapes(inputs, 1, 8, 64) == {"z": ((1, 16, 8, 8), (8, 16, 8, 8), (64, 16, 8, 8)),
                                                "attributes": ((1, 14), (8, 14), (64, 14))}
    with pytest.raises(ValueError):
        profile_shapes(inputs, 8, 4, 64)


def _has_tensorrt_gpu() -> bool:
    from faceedit.export.tensorrt import TensorRTUnavailable, check_available
    try:
        check_available()
        return True
    except TensorRTUnavailable:
        return False


def test_tensorrt_missing_is_one_line_and_nonzero(tiny_checkpoint, tmp_path):
    if _has_tensorrt_gpu():
        pytest.skip("TensorRT and a GPU are present: the missing-TensorRT error cannot happen here")
    from faceedit.cli.main import app
    r = runner.invoke(app, ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "m"), "--tensorrt"])
    assert r.exit_code != 0
    msg = r.output.strip()
    assert msg.startswith("error:") and "TensorRT" in msg and len(msg.splitlines()) == 1, r.output
    assert not (tmp_path / "m").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt_gpu(), reason="needs TensorRT and an NVIDIA GPU (none here)")
def test_tensorrt_engines_build(exported, tmp_path):
    from faceedit.export.tensorrt import build_all
    out, manifest, _ = exported
    target = tmp_path / "m"
    shutil.copytree(out, target)
    rec = build_all(target, {"decoder": manifest["graphs"]["decoder"]["fp32"]}, tmp_path / "cache", (1, 4, 16), log=print)
    path = target / rec["engines"]["decoder/fp16"]["path"]
    assert path.stat().st_size > 0 and path.name.startswith("decoder.trt-") and path.name.endswith(".fp16.engine")
    assert list((tmp_path / "cache").glob("*.timing.cache"))


# ---- CLI --------------------------------------------------------------------------------------------
def test_cli_errors_are_one_line(tmp_path, tiny_checkpoint):
    from faceedit.cli.main import app
    r = runner.invoke(app, ["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and r.output.strip() == f"error: checkpoint not found: {tmp_path / 'none.pt'}"
    (tmp_path / "notckpt.pt").write_bytes(b"garbage")
    r = runner.invoke(app, ["export", "--checkpoint", str(tmp_path / "notckpt.pt"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and r.output.startswith("error:")
    r = runner.invoke(app, ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "m"),
                            "--trt-batch", "8,1,64"])
    assert r.exit_code == 2 and "--trt-batch" in r.output
    assert not (tmp_path / "m").exists()
