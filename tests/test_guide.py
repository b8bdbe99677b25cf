"""The robust guide classifier: bounded adversarial examples, a checkpoint of its own, and a training run
that consults it."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_config  # noqa: E402
from faceedit.train.guide import build_guide, fgsm_example, load_guide, train_guide  # noqa: E402
from faceedit.train.train import Trainer  # noqa: E402


def test_fgsm_example_stays_within_eps_and_hurts_the_classifier():
    torch.manual_seed(0)
    model = build_guide(5, 64, width=8).eval()
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    y = (torch.rand(4, 5) > 0.5).float()
    eps = 8 / 255
    adv = fgsm_example(model, x, y, eps)
    assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= -1 and adv.max() <= 1
    loss = lambda t: torch.nn.functional.binary_cross_entropy_with_logits(model(t), y).item()  # noqa: E731
    noise = (x + (torch.rand_like(x) * 2 - 1) * eps).clamp(-1, 1)
    assert loss(adv) > loss(noise)


def test_guide_trains_loads_and_joins_the_edit_loss(synth_data, tmp_path):
    path = train_guide(synth_data, tmp_path / "guide.pt", steps=6, batch_size=16, log=lambda *a: None)
    guide, state = load_guide(path)
    assert state["format"] == "faceedit-guide-1" and len(state["val_accuracy"]) == len(state["attributes"])
    assert not guide.training
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    t = Trainer(tiny_config(synth_data, tmp_path / "run", steps=3, eval_every=100, guide=str(path)), log=lambda *a: None)
    losses = []
    t.fit(lambda step, total, s: losses.append(s))
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(s["flip"])) for s in losses)
    # the guide is a fixed critic: training the generator against it leaves its weights alone
    assert all(torch.equal(before[k], v) for k, v in t.guide.state_dict().items())
    with pytest.raises(ValueError, match="not a faceedit guide"):
        load_guide(tmp_path / "run" / "last.pt")


def test_train_guide_cli_refuses_missing_data_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from faceedit.cli.main import app
    r = CliRunner().invoke(app, ["train", "guide", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g.pt")])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and "nowhere" in r.output
    assert not (tmp_path / "g.pt").exists()
