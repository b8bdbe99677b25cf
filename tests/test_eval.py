"""`faceedit eval`: figures in range, the same on a checkpoint and on its exported model directory."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from faceedit.cli.main import app  # noqa: E402
from faceedit.core.files import sha256_file  # noqa: E402
from faceedit.eval.judge import JudgeModel  # noqa: E402
from faceedit.eval.metrics import psnr, ssim  # noqa: E402
from faceedit.eval.run import EvalConfig, evaluate  # noqa: E402
from faceedit.eval.subject import open_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_judge(synth_data, tmp_path_factory):
    from faceedit.train.judge import train_judge
    return train_judge(synth_data, tmp_path_factory.mktemp("judge") / "judge.pt", steps=6, batch_size=16,
                       log=lambda *a: None)


@pytest.fixture(scope="module")
def tiny_reporting_judge(synth_data, tmp_path_factory):
    from faceedit.train.judge import train_judge
    return train_judge(synth_data, tmp_path_factory.mktemp("rjudge") / "reporting_judge.pt", steps=6, batch_size=16,
                       log=lambda *a: None, arch="reporting")


def test_psnr_and_ssim_are_sane():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    assert np.all(psnr(a, a) >= 99) and np.allclose(ssim(a, a), 1.0)
    noisy = np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1).astype(np.float32)
    assert 15 < psnr(noisy, a).mean() < 30 and ssim(noisy, a).mean() < 0.99


@pytest.mark.slow
def test_eval_cli_writes_json_with_every_figure(tiny_checkpoint, tiny_judge, tiny_reporting_judge, synth_data, tmp_path):
    out = tmp_path / "eval.json"
    args = ["eval", "--model", str(tiny_checkpoint), "--data", str(synth_data), "--split", "test", "--judge", str(tiny_judge)]
    # the test split is read by the reporting judge: refused without one (none given, no judge set where
    # --judges points, as in an installed package), in one line, nothing written
    r = CliRunner().invoke(app, [*args, "--judges", str(tmp_path / "no-judges"), "--json", str(out)])
    assert r.exit_code == 2 and "reporting judge" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert "no judge set" in r.output
    assert not out.exists()
    figure = tmp_path / "edits.png"
    r = CliRunner().invoke(app, [*args, "--reporting-judge", str(tiny_reporting_judge), "--json", str(out),
                                 "--folds", "2", "--epochs", "1", "--figure", str(figure)])
    assert r.exit_code == 0, r.output
    # the figure: per attribute a row of median and worst edit, each beside its input
    from faceedit.eval.figure import LABEL_W, TILE
    sheet = cv2.imread(str(figure))
    assert sheet.shape == (40 + 14 * (TILE + 22), LABEL_W + 4 * TILE, 3)
    res = json.loads(out.read_text())
    assert res["faces"] == 24 and len(res["attributes"]) == 14
    for block in (res["attribute_accuracy"], res["edit_success"]["intensity_1"]["residual"],
                  res["edit_success"]["intensity_2"]["raw"], res["edit_disturbance"]["intensity_1"],
                  res["edit_disturbance"]["intensity_2"]):
        assert set(block["per_attribute"]) == set(res["attributes"])
        assert all(0.0 <= v <= 1.0 for v in block["per_attribute"].values())
    assert 0 < res["reconstruction"]["psnr_db"] < 60
    assert res["summary"]["edit_success_mean13"] == res["edit_success"]["intensity_1"]["residual"]["mean_standard13"]
    assert "reconstruction: PSNR" in r.output
    # scored by the reporting judge, the choice judge alongside; realism with both judges' readings
    assert res["judges"] == {"scoring": "reporting_judge.pt", "alongside": "judge.pt", "kid_features": "reporting_judge.pt"}
    real, judged = res["realism"]["edit_success_realistic"], res["realism"]["edit_success_judged"]
    assert judged["per_attribute"] == res["auto_strength"]["edit_success"]["per_attribute"]
    assert all(real["per_attribute"][a] <= judged["per_attribute"][a] for a in res["attributes"])
    assert set(res["realism"]["two_sample"]["per_attribute"]) == set(res["attributes"])
    assert 0 <= res["realism"]["two_sample"]["reconstruction"] <= 1
    assert set(res["realism"]["kid"]["per_attribute"]) == set(res["attributes"])
    assert set(res["alongside_judge"]["edit_success_realistic"]["per_attribute"]) == set(res["attributes"])
    assert res["summary"]["edit_success_realistic_mean13"] == real["mean_standard13"]
    assert "two-sample test (2-fold" in r.output and "target reconstruction PSNR" in r.output
    # the judge's recall on real faces and the edits split by direction add up to the figures above
    labels_pos = res["judge_recall_on_real"]
    assert sum(v["positives"] for v in labels_pos.values()) > 0
    for a, d in res["edit_success_by_direction"].items():
        if a == "meaning":
            continue
        assert d["adds"] + d["removes"] == 24
        hits = sum((d[k] or 0) * d[k + "s"] for k in ("add", "remove"))
        assert hits / 24 == pytest.approx(res["edit_success"]["intensity_1"]["residual"]["per_attribute"][a], abs=1e-3)


@pytest.mark.slow
def test_exported_directory_scores_like_its_checkpoint(tiny_checkpoint, tiny_judge, synth_data, tmp_path):
    from faceedit.export import export_model
    from faceedit.export.judges import add_judge
    model_dir = tmp_path / "model"
    export_model(tiny_checkpoint, model_dir, int8=False, openvino=False, fp16=False, log=lambda *a: None)
    add_judge(tmp_path / "judges", tiny_judge, log=lambda *a: None)
    cfg = EvalConfig(synth_data, "val", realism=False, log=lambda *a: None)
    a = evaluate(open_model(tiny_checkpoint), JudgeModel(tiny_judge), cfg)
    b = evaluate(open_model(model_dir), JudgeModel(tmp_path / "judges" / "judge.onnx"), cfg)
    assert a["attribute_accuracy"] == b["attribute_accuracy"]
    assert a["reconstruction"]["psnr_db"] == pytest.approx(b["reconstruction"]["psnr_db"], abs=0.01)
    ea = a["edit_success"]["intensity_1"]["raw"]["mean_all"]
    eb = b["edit_success"]["intensity_1"]["raw"]["mean_all"]
    assert ea == pytest.approx(eb, abs=0.02)  # a judge decision at exactly 0.5 may flip, nothing more
    ra = a["realism"]["artifact_ratio"]["median_all_edits"]
    assert ra == pytest.approx(b["realism"]["artifact_ratio"]["median_all_edits"], rel=0.02)


def test_eval_refuses_a_missing_model(synth_data, tmp_path):
    r = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "nope.pt"), "--data", str(synth_data),
                                 "--judge", str(tmp_path / "j.pt")])
    assert r.exit_code != 0 and "Traceback" not in r.output and "not found" in r.output


def test_strength_table_counts_unintended_flips_against_intended_ones():
    from faceedit.eval.report import strength_table
    block = lambda v: {"mean_standard13": v}
    res = {"attributes": ["a"] * 14, "edit_gain": 1.0,
           "edit_success": {"intensity_1": {"residual": block(0.4)}, "intensity_1.5": {"residual": block(0.7)},
                            "intensity_2": {"residual": block(0.8)}},
           "edit_disturbance": {"intensity_1": block(0.01), "intensity_1.5": block(0.015),
                                "intensity_2": block(0.03)}}
    rows = strength_table(res)
    assert [r["gain"] for r in rows] == [1.0, 2.0, 3.0]
    assert [r["net"] for r in rows] == [round(0.4 - 13 * 0.01, 4), round(0.7 - 13 * 0.015, 4), round(0.8 - 13 * 0.03, 4)]
    assert max(rows, key=lambda r: r["net"])["gain"] == 2.0


def test_best_gains_pick_each_attributes_best_net_effect():
    from faceedit.eval.report import attribute_strengths, best_gains
    per = lambda a, b: {"per_attribute": {"a": a, "b": b}}
    res = {"attributes": ["a", "b"], "edit_gains": {"a": 1.0, "b": 1.5},
           "edit_success": {"intensity_1": {"residual": per(0.5, 0.9)}, "intensity_1.5": {"residual": per(0.9, 0.95)},
                            "intensity_2": {"residual": per(0.95, 0.9)}},
           "edit_disturbance": {"intensity_1": per(0.05, 0.01), "intensity_1.5": per(0.1, 0.2),
                                "intensity_2": per(0.4, 0.01)}}
    rows = attribute_strengths(res)
    # net = success - (A-1) x disturbance with A = 2; gains multiply each attribute's own
    assert [r["gain"] for r in rows["b"]] == [1.5, 3.0, 4.5]
    assert [r["net"] for r in rows["a"]] == [0.45, 0.8, 0.55]
    # b: 0.89 at 1, 0.75 at 1.5, 0.89 at 2 -> the tie goes to the lower gain
    assert best_gains(res) == {"a": 2.0, "b": 1.5}
    # JSON from before per-attribute gains carries one edit_gain
    assert best_gains({**{k: v for k, v in res.items() if k != "edit_gains"}, "edit_gain": 1.0}) == {"a": 2.0, "b": 1.0}


def val_eval(model, judge, data, out, intensities="1,1.5,2"):
    """`faceedit eval --split val` through the CLI: (its output, the JSON it wrote)."""
    r = CliRunner().invoke(app, ["eval", "--model", str(model), "--data", str(data), "--split", "val",
                                 "--judge", str(judge), "--intensities", intensities, "--json", str(out), "--no-two-sample"])
    assert r.exit_code == 0, r.output
    return r, json.loads(out.read_text())


@pytest.mark.slow
def test_export_takes_per_attribute_gains_from_a_validation_sweep(tiny_checkpoint, tiny_judge, synth_data, tmp_path):
    from faceedit.eval.report import best_gains
    sweep = tmp_path / "sweep.json"
    r, res = val_eval(tiny_checkpoint, tiny_judge, synth_data, sweep)
    chosen = res["edit_strength_per_attribute"]["best_gains"]
    assert chosen == best_gains(res) and set(chosen) == set(res["attributes"])
    assert set(chosen.values()) <= {1.0, 2.0, 3.0} and "best net effect per attribute" in r.output
    out = tmp_path / "model"
    r = CliRunner().invoke(app, ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--no-int8",
                                 "--no-openvino", "--no-fp16", "--edit-gains-from", str(sweep)])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["edit_strength"]["per_attribute"] == chosen
    assert all(f"{a} {g:g}" in r.output for a, g in chosen.items() if g != 1.0) and "edit gain 1" in r.output
    # the exported model is evaluated at its own gains
    assert open_model(out).edit_gains == [chosen[a] for a in res["attributes"]]
    # gains are chosen on validation, never on the test split: one line, nothing written
    test_json = tmp_path / "test.json"
    test_json.write_text(json.dumps({**res, "split": "test"}))
    r = CliRunner().invoke(app, ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "m2"),
                                 "--edit-gains-from", str(test_json)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "validation" in r.output
    assert not (tmp_path / "m2").exists()
    # the sweep names the checkpoint it measured: gains for another one are refused the same way
    assert res["checkpoint_sha256"] == sha256_file(tiny_checkpoint)
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_checkpoint.read_bytes() + b"\0")
    r = CliRunner().invoke(app, ["export", "--checkpoint", str(other), "--out", str(tmp_path / "m3"),
                                 "--edit-gains-from", str(sweep)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "another checkpoint" in r.output
    assert not (tmp_path / "m3").exists()


@pytest.mark.slow
def test_auto_strength_sweep_update_and_the_default_edit_agree(tiny_model_dir, tiny_judge, synth_data, tmp_path):
    """A validation sweep of a model directory scores auto strength at every top; export-update writes the
    best tops into the manifest (and refuses sweeps of the test split or of another directory); an eval of
    the updated directory scores its default edit exactly as the sweep scored those tops."""
    import shutil
    from faceedit.eval.report import best_tops
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    sweep = tmp_path / "sweep.json"
    _, res = val_eval(model, tiny_judge, synth_data, sweep)
    rows = res["auto_strength_sweep"]["rows"]
    fixed = res["edit_success"]["intensity_1"]["residual"]["per_attribute"]
    moved = res["edit_disturbance"]["intensity_1"]["per_attribute"]
    for a in res["attributes"]:
        assert [row["top_multiplier"] for row in rows[a]] == [1.0, 1.5, 2.0, 2.5, 3.0]
        assert rows[a][0]["edit_success"] == fixed[a] and rows[a][0]["disturbance"] == moved[a]  # top 1 = fixed
    before = (model / "manifest.json").read_bytes()

    def update(*args):
        return CliRunner().invoke(app, ["export-update", "--model", str(model), *args])
    # refused, one line, manifest untouched: the test split, another directory's sweep
    for name, change in (("test", {"split": "test"}), ("other", {"model_decoder_sha256": "0" * 64})):
        bad = tmp_path / f"{name}.json"
        bad.write_text(json.dumps({**res, **change}))
        r = update("--auto-strength-from", str(bad))
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert (model / "manifest.json").read_bytes() == before
    r = update("--auto-strength-from", str(sweep))
    assert r.exit_code == 0, r.output
    manifest = json.loads((model / "manifest.json").read_text())
    chosen = {a: t for a, t in best_tops(res).items() if t > 1}
    assert manifest["edit_strength"]["auto"]["top_multiplier"] == chosen
    assert manifest["graphs"] == json.loads(before)["graphs"]  # only the editing settings changed

    # whatever the tiny model chose, force tops on every attribute and check the default edit's figures
    manifest["edit_strength"]["auto"]["top_multiplier"] = {a: 2.0 for a in res["attributes"]}
    (model / "manifest.json").write_text(json.dumps(manifest))
    from faceedit.engine import Editor
    assert Editor.load(model, backend="onnxruntime").auto_strength
    after = tmp_path / "after.json"
    _, res2 = val_eval(model, tiny_judge, synth_data, after, intensities="1")
    auto = res2["auto_strength"]
    for a in res["attributes"]:
        at2 = next(row for row in rows[a] if row["top_multiplier"] == 2.0)
        assert auto["edit_success"]["per_attribute"][a] == at2["edit_success"]
        assert auto["edit_disturbance"]["per_attribute"][a] == at2["disturbance"]
        assert 1.0 <= auto["mean_multiplier"][a] <= 2.0
    assert any(auto["mean_multiplier"][a] > 1.0 for a in res["attributes"])  # some edits were pushed
    assert res2["summary"]["edit_success_mean13"] == auto["edit_success"]["mean_standard13"]
    assert res2["summary"]["edit_success_fixed_mean13"] == res2["edit_success"]["intensity_1"]["residual"]["mean_standard13"]
    # an eval made before the tops changed is refused as the manifest's figures; this one is taken
    r = update("--eval-json", str(sweep))
    assert r.exit_code == 2 and "auto strength settings" in r.output
    r = update("--eval-json", str(after))
    assert r.exit_code == 0, r.output
    assert json.loads((model / "manifest.json").read_text())["eval"]["edit_success_mean13"] == auto["edit_success"]["mean_standard13"]


def test_eval_of_a_model_directory_runs_without_torch(synth_data, tmp_path):
    """The shipped model, scored with torch unimportable by the repository's judges (evaluation/judges/, found
    from the clone): JSON written, directory and judges named."""
    import subprocess
    import sys
    out = tmp_path / "eval.json"
    code = ("import sys; sys.modules['torch'] = None\n"
            "from faceedit.cli.main import app\n"
            f"sys.argv = ['faceedit', 'eval', '--data', {str(synth_data)!r}, '--split', 'val', '--limit', '8',"
            f" '--intensities', '1', '--json', {str(out)!r}]\n"
            "app()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    res = json.loads(out.read_text())
    from faceedit.core.manifest import decoder_fingerprint, load_manifest
    from faceedit.models import DEFAULT_MODEL
    assert res["faces"] == 8 and res["model_decoder_sha256"] == decoder_fingerprint(load_manifest(DEFAULT_MODEL, verify=False))
    from faceedit.core.judge_set import clone_judges_dir
    assert res["judges"] == {"scoring": "judge.onnx", "alongside": None, "kid_features": "reporting_judge.onnx"}
    assert f"--judge {clone_judges_dir() / 'judge.onnx'}" in res["command"]


def test_export_judge_writes_a_judge_set_that_eval_reads(tiny_checkpoint, tiny_judge, tiny_reporting_judge,
                                                         synth_data, tmp_path):
    """`faceedit export-judge` writes each judge into a judge set (judges.json lists it with its sha256, the
    other judge's entry kept); `faceedit eval --judges SET` scores with them; a damaged set, or none, is
    refused in one line."""
    from faceedit.core.judge_set import load_judge_set
    judges = tmp_path / "judges"
    for ckpt in (tiny_judge, tiny_reporting_judge):
        r = CliRunner().invoke(app, ["export-judge", "--checkpoint", str(ckpt), "--out", str(judges)])
        assert r.exit_code == 0, r.output
    listed = load_judge_set(judges)
    assert listed["judge"]["sha256"] == sha256_file(judges / "judge.onnx")
    assert listed["reporting_judge"]["arch"] == "reporting" and (judges / "reporting_judge.onnx").is_file()
    out = tmp_path / "eval.json"
    base = ["eval", "--model", str(tiny_checkpoint), "--data", str(synth_data), "--split", "val", "--limit", "8",
            "--intensities", "1", "--no-two-sample"]
    r = CliRunner().invoke(app, [*base, "--judges", str(judges), "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["judges"] == {"scoring": "judge.onnx", "alongside": None, "kid_features": "reporting_judge.onnx"}
    assert f"--judge {judges / 'judge.onnx'}" in res["command"]
    for args, words in ((["--judges", str(tmp_path / "none")], "no judge set"), (["--judges", str(judges)], "sha256")):
        if words == "sha256":  # a judge file that is not the one judges.json lists
            (judges / "judge.onnx").write_bytes((judges / "judge.onnx").read_bytes() + b"\0")
        r = CliRunner().invoke(app, [*base, *args])
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and words in r.output, r.output


@pytest.mark.slow
def test_eval_with_a_filter_measures_what_export_update_ships(tiny_model_dir, tiny_judge, synth_data, tmp_path):
    import shutil
    from tests.conftest import cli
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    base = ["eval", "--model", model, "--data", synth_data, "--split", "val", "--judge", tiny_judge,
            "--intensities", "1", "--no-two-sample"]
    tried = tmp_path / "tried.json"
    r = cli(*base, "--edit-filter", "young=2,0.001", "--json", tried)
    assert r.exit_code == 0, r.output
    assert cli("export-update", "--model", model, "--edit-filter", "Young=2,0.001").exit_code == 0
    shipped = tmp_path / "shipped.json"
    assert cli(*base, "--json", shipped).exit_code == 0
    a, b = json.loads(tried.read_text()), json.loads(shipped.read_text())
    assert a["edit_filter"]["per_attribute"] == b["edit_filter"]["per_attribute"] == {"Young": {"radius": 2, "eps": 0.001}}
    assert a["realism"]["artifact_ratio"] == b["realism"]["artifact_ratio"]
    assert a["auto_strength"]["edit_success"] == b["auto_strength"]["edit_success"]
    r = cli(*base, "--edit-filter", "Mustachio=2,0.001")
    assert r.exit_code != 0 and "Mustachio" in r.output and "Traceback" not in r.output
