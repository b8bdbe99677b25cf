"""Recipes (faceedit/train/recipe.py, `faceedit train recipe`): the shipped model's recipe reads, agrees with the
shipped manifest and prints its commands; a broken recipe is one line naming the stage and the key; the tiny
recipe runs end to end into a model directory the engine edits with, and a re-run skips what finished."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
SHIPPED, TINY = ROOT / "recipes" / "default-18001.toml", ROOT / "recipes" / "tiny.toml"


def test_the_shipped_recipe_holds_what_the_shipped_manifest_does():
    from faceedit.export.recipe_stages import ALL_KINDS
    from faceedit.train.recipe import load_recipe
    recipe = load_recipe(SHIPPED, ALL_KINDS)
    kinds = [s.kind for s in recipe.stages]
    assert kinds[:4] == ["judge", "guide", "judge", "export-judge"] and kinds[-2:] == ["export", "export-update"]
    assert kinds.count("from-model") == 2 and kinds.count("train") == 11
    assert recipe.stage("real").options["output"] == "step_0018001.pt"

    manifest = json.loads((ROOT / "faceedit" / "models" / "default" / "manifest.json").read_text())
    export, shipped = recipe.stages[-2].options, recipe.stages[-1].options
    gains = {a: g for a, g in manifest["edit_strength"]["per_attribute"].items() if g != 1}
    assert export["edit_gains"] == gains
    assert shipped["auto_strength"] == manifest["edit_strength"]["auto"]["top_multiplier"]
    filters = dict(f.split("=") for f in shipped["edit_filter"])
    assert {a: f"{v['radius']},{v['eps']:g}" for a, v in manifest["edit_filter"]["per_attribute"].items()} == filters
    assert {rule.split("=")[0] for rule in manifest["implied"]["rules"]} == set(shipped["implied_for"])
    for key, entry in (("edit_gain_note", manifest["edit_strength"]), ("edit_filter_note", manifest["edit_filter"]),
                       ("auto_strength_note", manifest["edit_strength"]["auto"]), ("implied_note", manifest["implied"])):
        assert (export | shipped)[key] == entry["chosen"]


def test_dry_run_prints_the_equivalent_commands(tmp_path):
    r = cli("train", "recipe", SHIPPED, "--data-root", "../shared", "--out", "RUN", "--dry-run")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert sum(line.startswith("# stage ") for line in lines) == 21
    assert "faceedit train judge --data ../shared/celeba --out RUN/judge/judge.pt" in lines
    assert "mkdir -p RUN/real && cp -n RUN/rebuilt-16839/last.pt RUN/real/last.pt" in lines
    real = next(line for line in lines if line.startswith("faceedit train --data ../shared/celeba --out RUN/real "))
    assert "--resume" in real and "--steps 18001 --batch-size 32" in real and "--d-residual" in real
    assert "faceedit export-judge --checkpoint RUN/reporting-judge/judge.pt --out RUN/judges/judges" in lines
    assert any(line.startswith("faceedit export-update --model RUN/shipped/model --implied-for Male,Mustache "
                               "--implied-data ../shared/celeba") for line in lines)
    assert not Path("RUN").exists()
    # without --data-root, data names print as $DATA_ROOT/NAME; --dataset places one name anywhere
    r = cli("train", "recipe", TINY, "--out", tmp_path / "run", "--dataset", "synth=/data/s", "--dry-run")
    assert r.exit_code == 0 and f"--data /data/s --out {tmp_path}/run/judge/judge.pt" in r.output, r.output
    r = cli("train", "recipe", SHIPPED, "--out", "RUN", "--dry-run")
    assert "--data $DATA_ROOT/celeba" in r.output


BASE = 'format = "faceedit-recipe-1"\n[[stage]]\nname = "j"\nkind = "judge"\ndata = "synth"\n'
TRAIN = '[[stage]]\nname = "t"\nkind = "train"\ndata = ["synth"]\n'


@pytest.mark.parametrize("text, message", [
    (BASE + TRAIN + "w_edt = 3\n", "stage 't': unknown key 'w_edt' for a train stage"),
    (BASE + TRAIN + "w_edit = \"25\"\n", "stage 't': w_edit must be a number, got '25'"),
    (BASE + TRAIN + "out = \"x\"\n", "stage 't': unknown key 'out' for a train stage (the runner sets it"),
    (BASE + TRAIN + "image_size = 96\n", "stage 't': --image-size must be 64 or 128"),
    (BASE + TRAIN + "start = \"stage:later\"\n", "stage 't': start = 'stage:later': no earlier stage is named 'later'"),
    (BASE + TRAIN + "start = \"stage:j\"\n", "stage 't': start = 'stage:j': a judge stage makes judge.pt"),
    (BASE.replace('data = "synth"', 'data = "/srv/celeba"'), "stage 'j': data: '/srv/celeba' is a path"),
    (BASE + BASE.split("\n", 1)[1], "stage 'j': the name is used by an earlier stage too"),
    (BASE.replace('"judge"\n', '"jduge"\n'), "stage 'j': kind must be one of judge, guide"),
    (BASE + 'arch = "big"\n', "stage 'j': arch must be one of judge, reporting"),
    (BASE.replace('format = "faceedit-recipe-1"\n', ""), "format = \"faceedit-recipe-1\" is required"),
    (BASE + '[[stage]]\nname = "m"\nkind = "export-update"\nmodel = "x"\n', "stage 'm': nothing to update"),
    (BASE + '[[stage]]\nname = "s"\nkind = "export-judge"\n', "stage 's': give judge and/or reporting_judge"),
])
def test_a_broken_recipe_is_one_line_naming_the_stage_and_key(text, message, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(text)
    r = cli("train", "recipe", path, "--out", tmp_path / "run", "--dataset", f"synth={tmp_path}", "--dry-run")
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "run").exists()


def test_data_must_be_somewhere_and_a_changed_stage_is_not_skipped(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(BASE + "steps = 2\n")
    r = cli("train", "recipe", path, "--out", tmp_path / "run")
    assert r.exit_code == 2 and "data 'synth' is nowhere: give --data-root DIR" in r.output, r.output
    r = cli("train", "recipe", path, "--out", tmp_path / "run", "--data-root", tmp_path)
    assert r.exit_code == 2 and f"data 'synth' is {tmp_path}/synth, which is not a folder" in r.output, r.output
    # a stage recorded as finished with other options: said, not silently skipped or redone
    (tmp_path / "run" / "j").mkdir(parents=True)
    (tmp_path / "run" / "j" / "stage.json").write_text(json.dumps(
        {"kind": "judge", "options": {"data": "synth", "steps": 3}, "product": "judge.pt"}))
    r = cli("train", "recipe", path, "--out", tmp_path / "run", "--dataset", f"synth={tmp_path}", "--dry-run")
    assert r.exit_code == 2 and "stage 'j': finished before with other options (steps" in r.output, r.output


@pytest.mark.slow  # ten stages, two exports: one to a few minutes on 2 busy cores
def test_the_tiny_recipe_makes_a_model_the_engine_edits_with(synth_data, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    out = tmp_path / "run"
    t = time.time()
    r = cli("train", "recipe", TINY, "--dataset", f"synth={synth_data}", "--out", out)
    print(f"tiny recipe: {time.time() - t:.1f} s")
    assert r.exit_code == 0, r.output
    model = out / "final" / "model"
    assert r.output.strip().splitlines()[-1] == f"done: {model}"

    from faceedit.engine import Editor
    editor = Editor.load(model, backend="onnxruntime", precision="fp32")
    face = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert editor.edit(face, {"young": 1}).shape == face.shape
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["edit_strength"]["per_attribute"]["Brown_Hair"] == 2.0
    assert manifest["edit_strength"]["auto"]["top_multiplier"] == {"Male": 1.5, "Young": 2.0}
    assert set(manifest["edit_filter"]["per_attribute"]) == {"Bald", "Black_Hair"}
    assert "Mustache=1" in manifest["implied"]["rules"] and manifest["checkpoint"]["step"] == 6
    assert "edit_filter" not in json.loads((out / "base-model" / "model" / "manifest.json").read_text())
    from faceedit.core.judge_set import load_judge_set
    judges = load_judge_set(out / "judges" / "judges")  # both judges, checked as `faceedit eval` checks them
    assert judges["reporting_judge"]["path"] == "reporting_judge.onnx" and judges["judge"]["path"] == "judge.onnx"

    record = json.loads((out / "finetune" / "stage.json").read_text())
    assert record["step"] == 6 and record["product"] == "step_0000006.pt" and record["config"]["d_warmup"] == 1
    assert record["commands"][0].startswith("mkdir -p ") and " --resume " in record["commands"][1]

    # a re-run skips every finished stage; --from-stage runs one again and keeps the earlier folder aside
    stamp = os.stat(model / "manifest.json").st_mtime_ns
    r = cli("train", "recipe", TINY, "--dataset", f"synth={synth_data}", "--out", out)
    assert r.exit_code == 0 and r.output.count("skipped") == 10, r.output
    assert os.stat(model / "manifest.json").st_mtime_ns == stamp
    r = cli("train", "recipe", TINY, "--dataset", f"synth={synth_data}", "--out", out, "--from-stage", "final")
    assert r.exit_code == 0 and "skipped" not in r.output, r.output
    assert len(list(out.glob("final.replaced-*"))) == 1 and (model / "manifest.json").is_file()

    # the same settings through the command line: export-update --auto-strength, one line when wrong
    r = cli("export-update", "--model", model, "--auto-strength", "Young=1.5,Eyeglasses=2")
    assert r.exit_code == 0, r.output
    tops = json.loads((model / "manifest.json").read_text())["edit_strength"]["auto"]["top_multiplier"]
    assert tops == {"Eyeglasses": 2.0, "Young": 1.5}
    r = cli("export-update", "--model", model, "--auto-strength", "Young")
    assert r.exit_code == 2 and "--auto-strength takes NAME=NUMBER" in r.output, r.output
