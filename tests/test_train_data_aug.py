"""Several data folders, DiffAugment for D, wall-clock checkpoints and the run record (issue 27, part 1-2)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import tiny_config

torch = pytest.importorskip("torch")

from faceedit.train.augment import draw_translate_cutout, translate_cutout  # noqa: E402
from faceedit.train.data import load_training_faces  # noqa: E402
from faceedit.train.train import Trainer  # noqa: E402


@pytest.fixture(scope="module")
def train_only_folder(synth_data, tmp_path_factory):
    """A second folder in CelebA's layout whose every image is in the train split (like celeba-extra)."""
    from faceedit.train.synth import write_synthetic_celeba
    return write_synthetic_celeba(tmp_path_factory.mktemp("extra"), 40, 104, seed=5, split=(1.0, 0.0))


def test_several_folders_train_on_every_train_split_and_validate_on_the_first(synth_data, train_only_folder):
    one = load_training_faces([synth_data], ["Male", "Smiling"], 32)
    both = load_training_faces([synth_data, train_only_folder], ["male", "smiling"], 32)
    assert both.attributes == one.attributes == ["Male", "Smiling"]
    assert len(both.train_idx) == len(one.train_idx) + 40
    assert np.array_equal(both.val_idx, one.val_idx)                      # validation: the first folder's
    extra = both.train_idx[len(one.train_idx):]
    assert extra.min() == len(one.images) and len(both.images) == len(one.images) + 40
    assert np.array_equal(both.images[: len(one.images)], one.images)     # the first folder's rows unchanged
    assert [f["train"] for f in both.folders] == [len(one.train_idx), 40]


def test_folders_with_other_attribute_columns_are_refused(synth_data, tmp_path):
    from faceedit.train.data import DataError
    other = tmp_path / "other"
    shutil.copytree(synth_data, other)
    attr = other / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[1] = lines[1].replace("Male", "Mal3")
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError):
        load_training_faces([synth_data, other], ["Male", "Smiling"], 32)


def test_data_check_accepts_a_train_only_folder(train_only_folder):
    from conftest import cli
    r = cli("data", "check", train_only_folder, "--no-images")
    assert r.exit_code == 0, r.output
    assert "extra training folder" in r.output


def test_translate_cutout_moves_whole_pixels_blanks_a_square_and_passes_gradients():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8).requires_grad_(True)
    params = {"shift": torch.tensor([[1, 0], [0, -2]]), "corner": torch.tensor([[0, 0], [4, 4]]), "side": 2}
    y = translate_cutout(x, params)
    assert torch.equal(y[0, :, 1:, 2:], x[0, :, :-1, 2:])       # down one row (the cut square at the corner)
    assert (y[0, :, 0] == 0).all() and (y[0, :, :2, :2] == 0).all()
    assert torch.equal(y[1, :, :4, :6], x[1, :, :4, 2:])         # left two columns
    assert (y[1, :, :, 6:] == 0).all() and (y[1, :, 4:6, 4:6] == 0).all()
    y.sum().backward()
    assert x.grad[1, 0, :, :2].abs().sum() == 0 and x.grad[1, 0, 0, 2] == 1   # pixels shifted out get none


def test_one_draw_moves_a_face_and_its_reconstruction_alike():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    p = draw_translate_cutout(4, 16)
    assert torch.equal(translate_cutout(x, p), translate_cutout(x.clone(), p))
    assert not torch.equal(translate_cutout(x), translate_cutout(x))   # a fresh draw each call otherwise


def test_diff_augment_trains_on_two_folders_and_resumes_exactly(synth_data, train_only_folder, tmp_path):
    data = [str(synth_data), str(train_only_folder)]
    kw = dict(diff_augment=True, r1_gamma=0.05, r1_every=2, d_residual=True, eval_every=100,
              ckpt_every=3, steps=5)
    losses = {}

    def run(out, steps, resume=False):
        t = Trainer(tiny_config(data, out, **{**kw, "steps": steps}), resume=resume, log=lambda *a: None)
        t.fit(lambda step, total, s: losses.setdefault(out.name, []).append((step, s["loss_g"], s["loss_d"])))
        return t
    run(tmp_path / "full", 5)
    run(tmp_path / "part", 3)
    t = run(tmp_path / "part", 5, resume=True)
    assert t.step == 5 and len(t.train_idx) == 192 + 40
    assert [row[0] for row in losses["part"]] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(np.array(losses["part"][3:]), np.array(losses["full"][3:]), rtol=1e-5)
    record = json.loads((tmp_path / "part" / "run.json").read_text())
    assert record["step"] == 5 and [s["step"] for s in record["sessions"]] == [3, 5]
    assert record["config"]["data"] == data and [f["train"] for f in record["data"]] == [192, 40]
    assert record["wall_seconds"] >= 0 and record["config"]["diff_augment"] is True


def test_last_checkpoint_follows_the_clock(synth_data, tmp_path, monkeypatch):
    """With --ckpt-minutes, last.pt is written when that much wall time has passed, whatever the step count."""
    import faceedit.train.train as train_mod
    clock = [1000.0]
    monkeypatch.setattr(train_mod.time, "time", lambda: clock[0])
    t = Trainer(tiny_config(synth_data, tmp_path / "c", steps=4, ckpt_every=1000, eval_every=1000, ckpt_minutes=1),
                log=lambda *a: None)
    seen, step_once = [], t.train_step

    def slow_step(x, y):
        clock[0] += 45  # each step "takes" 45 s: the minute passes during step 2 and again during step 4
        return step_once(x, y)
    t.train_step = slow_step
    t.fit(lambda step, total, stats: seen.append((step, (tmp_path / "c" / "last.pt").exists())))
    saved = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert saved["step"] == 4
    assert seen == [(1, False), (2, False), (3, True), (4, True)]  # first written after step 2, not step 1000


def test_bf16_falls_back_to_fp32_where_the_cpu_only_emulates_it(synth_data, tmp_path, monkeypatch):
    import faceedit.train.train as train_mod
    said = []
    monkeypatch.setattr(train_mod, "native_bf16", lambda device: False)
    t = Trainer(tiny_config(synth_data, tmp_path / "b", bf16=True), log=said.append)
    assert t.bf16 is False and any("fp32" in s for s in said)
    monkeypatch.setattr(train_mod, "native_bf16", lambda device: True)
    assert Trainer(tiny_config(synth_data, tmp_path / "b2", bf16=True), log=lambda *a: None).bf16 is True
