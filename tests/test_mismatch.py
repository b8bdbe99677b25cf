"""The matching-aware D (--w-d-mismatch, with --projection): a real face told attributes it does not have is a
fake to D, so D's verdict depends on whether a face has the attributes it is told; an edit that leaves the face
unchanged then fails D as well as the classifiers."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_config  # noqa: E402
from faceedit.train.train import Trainer, edit_targets  # noqa: E402


def first_step(cfg):
    torch.manual_seed(0)
    t = Trainer(cfg, log=lambda *a: None)
    x, y = t.batch(0)
    return t.train_step(x, y)


def test_d_pays_its_weight_for_real_faces_told_wrong_attributes(synth_data, tmp_path):
    a = first_step(tiny_config(synth_data, tmp_path / "a", projection=True, w_d_mismatch=1.0))
    b = first_step(tiny_config(synth_data, tmp_path / "b", projection=True, w_d_mismatch=3.0))
    assert a["d_mismatch"] > 0 and a["d_mismatch"] == pytest.approx(b["d_mismatch"], rel=1e-4)
    assert b["loss_d"] == pytest.approx(a["loss_d"] + 2.0 * a["d_mismatch"], rel=1e-4)
    assert "d_mismatch" not in first_step(tiny_config(synth_data, tmp_path / "c", projection=True))
    with pytest.raises(ValueError, match="--w-d-mismatch needs --projection"):
        tiny_config(synth_data, tmp_path / "d", w_d_mismatch=1.0).check()


def wrong_minus_right(trainer) -> float:
    """D's mean verdict on training faces told their own attributes, minus told the step's edit targets."""
    d, gaps = trainer.model.discriminator, []
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for step in range(4):
            x, y = trainer.batch(step)
            y_wrong = edit_targets(y, g)
            told_wrong = (y_wrong != y).any(1)
            gaps.append((d(x, y)[0] - d(x, y_wrong)[0])[told_wrong].mean())
    return float(torch.stack(gaps).mean())


def test_d_learns_to_tell_a_face_with_its_own_attributes_from_one_told_others(synth_data, tmp_path):
    """Generator and D trained together for 120 steps: a projection D alone learns some of this from the edits
    it is shown with their targets (measured: a margin of 0.67), the matching-aware term much more (1.23)."""
    kw = dict(projection=True, steps=120, eval_every=1000, ckpt_every=1000)
    with_term = Trainer(tiny_config(synth_data, tmp_path / "a", w_d_mismatch=1.0, **kw), log=lambda *a: None).fit()
    without = Trainer(tiny_config(synth_data, tmp_path / "b", **kw), log=lambda *a: None).fit()
    assert wrong_minus_right(with_term) > 0.9
    assert wrong_minus_right(with_term) > wrong_minus_right(without) + 0.3
