"""`faceedit train`: every TrainConfig field is an option (the torchrun entry takes the very same), a value set
on the command line reaches the run, and bad options are one clear line."""
from __future__ import annotations

import re
from dataclasses import asdict, fields

import pytest
from typer.testing import CliRunner

from faceedit.cli.main import app
from faceedit.train.config import TrainConfig

WIDE = {"COLUMNS": "250"}  # rich wraps help at the terminal width; one option per line here


def flags(help_text: str) -> set[str]:
    """The options a help screen lists (each row of an options panel starts with its flags)."""
    found = set()
    for line in help_text.splitlines():
        m = re.match(r"^│\s+(--[a-z][a-z0-9-]*)(?:\s+(--no-[a-z0-9-]+))?", line)
        found.update(f for f in (m.groups() if m else ()) if f)
    return found


def test_train_help_lists_every_field_and_the_commands():
    r = CliRunner().invoke(app, ["train", "--help"], env=WIDE)
    assert r.exit_code == 0, r.output
    shown = flags(r.output)
    text = " ".join(r.output.replace("│", " ").split())
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in shown, flag
        assert " ".join(f.metadata["help"].split()) in text, f.name  # its help, in full
        if f.type == "bool":
            assert "--no-" + flag[2:] in shown, flag
    for command in ("judge", "guide", "from-model", "bundle"):
        assert re.search(rf"^\W*{command}\s+\w", r.output, re.M), command
    # the torchrun entry (python -m faceedit.train) is built from the same definition
    from faceedit.train.__main__ import app as torchrun_app
    r2 = CliRunner().invoke(torchrun_app, ["--help"], env=WIDE)
    assert r2.exit_code == 0 and flags(r2.output) == shown


def test_options_set_on_the_command_line_reach_the_run(synth_data, tmp_path):
    pytest.importorskip("torch")
    import torch
    out = tmp_path / "run"
    args = ["--data", str(synth_data), "--out", str(out), "--steps", "2", "--batch-size", "8", "--width", "8",
            "--dec-width", "32", "--z-channels", "4", "--max-val", "8", "--threads", "1", "--eval-every", "2",
            "--w-flip", "3", "--no-bf16", "--cls-aug", "--flip-focus", "Bald,Bangs", "--flip-focus", "Smiling",
            "--flip-focus-frac", "0.25", "--time-limit", "600"]
    r = CliRunner().invoke(app, ["train", *args])
    assert r.exit_code == 0, r.output
    config = torch.load(out / "last.pt", weights_only=True)["config"]
    assert config["w_flip"] == 3.0 and config["bf16"] is False and config["cls_aug"] is True
    assert config["flip_focus"] == ["Bald", "Bangs", "Smiling"] and config["steps"] == 2
    # every field not given keeps the dataclass's default: the command line has no defaults of its own
    given = dict(data=str(synth_data), out=str(out), steps=2, batch_size=8, width=8, dec_width=32, z_channels=4,
                 max_val=8, threads=1, eval_every=2, w_flip=3.0, bf16=False, cls_aug=True,
                 flip_focus=["Bald", "Bangs", "Smiling"], flip_focus_frac=0.25, time_limit=600.0)
    assert config == asdict(TrainConfig(**given))


@pytest.mark.parametrize("args, message", [
    (["--out", "RUN"], "--data is required"),
    (["--data", "DATA", "--out", "RUN", "--image-size", "96"], "--image-size must be 64 or 128"),
    (["--data", "DATA", "--out", "RUN", "--flip-focus", "Baldness", "--flip-focus-frac", "0.5"], "--flip-focus names"),
])
def test_bad_training_options_are_one_line_errors(args, message, synth_data, tmp_path):
    if "--flip-focus" in args:
        pytest.importorskip("torch")
    args = [str(synth_data) if a == "DATA" else str(tmp_path / "run") if a == "RUN" else a for a in args]
    r = CliRunner().invoke(app, ["train", *args])
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_switch_given_a_value_as_older_recipes_did_is_refused_clearly(synth_data, tmp_path):
    r = CliRunner().invoke(app, ["train", "--data", str(synth_data), "--out", str(tmp_path / "run"), "--projection",
                                 "true"], env=WIDE)
    assert r.exit_code == 2 and "switches take no value" in r.output and not (tmp_path / "run").exists()
