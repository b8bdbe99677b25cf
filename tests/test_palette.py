"""--w-own-palette (faceedit.train.palette): a non-colour edit pays for hues the face does not have, not for
brightness, not for colours the reconstruction already has, and not at all when it changes a colour attribute."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from faceedit.train.palette import own_palette_loss  # noqa: E402
from faceedit.train.train import Trainer  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402

SKIN = torch.tensor([0.55, 0.15, -0.05])    # RGB in [-1, 1]: a warm skin tone
GREEN = torch.tensor([-0.3, 0.3, -0.3])
SKY = torch.tensor([-0.4, 0.0, 0.6])        # a blue background


def face(n: int = 2, size: int = 32) -> torch.Tensor:
    """Skin everywhere but a blue band at the left edge (a background the palette does not hold)."""
    x = SKIN[None, :, None, None].repeat(n, 1, size, size)
    x[:, :, :, :3] = SKY[:, None, None]
    return x


def paint(x: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """x with its scalp (the top rows) painted in colour."""
    out = x.clone()
    out[:, :, :8, 4:] = colour[:, None, None]
    return out


def test_a_new_hue_costs_and_the_face_s_own_tones_do_not():
    x = face()
    none = torch.zeros(2, dtype=torch.bool)
    assert own_palette_loss(x, x, x, none) == 0                                    # no edit, no cost
    assert own_palette_loss(x, x, paint(x, GREEN), none) > 0.05                    # a green scalp
    assert own_palette_loss(x, x, paint(x, SKIN), none) == 0                       # bald in the skin tone
    assert own_palette_loss(x, x, paint(x, torch.full((3,), -0.8)), none) == 0     # a dark grey mustache
    assert own_palette_loss(x, x, paint(x, SKIN * 0.7), none) == 0                 # shade: not a new hue
    # the blue background is the reconstruction's own: keeping it costs nothing, only what an edit adds counts
    assert own_palette_loss(x, x, x.clone(), none) == 0
    # a colour edit (hair colour, pale skin) is exempt, row by row
    assert own_palette_loss(x, x, paint(x, GREEN), torch.tensor([True, True])) == 0
    half = own_palette_loss(x, x, paint(x, GREEN), torch.tensor([True, False]))
    assert half == pytest.approx(0.5 * own_palette_loss(x, x, paint(x, GREEN), none).item())
    # several renderings of each face (raw and residual edits) share the faces' palettes
    two = own_palette_loss(x, x, torch.cat([paint(x, GREEN), x]), torch.zeros(4, dtype=torch.bool))
    assert two == pytest.approx(0.5 * own_palette_loss(x, x, paint(x, GREEN), none).item())


def test_its_gradient_moves_colour_never_brightness():
    x = face()
    edit = paint(x, GREEN).requires_grad_(True)
    own_palette_loss(x, x, edit, torch.zeros(2, dtype=torch.bool)).backward()
    g = edit.grad
    assert g.abs().sum() > 0
    assert g.sum(1).abs().max() < 1e-6          # equal in R, G and B: a grey shift has no gradient
    # a small step against the gradient lowers the cost: it moves the green towards the face's tones or grey
    none = torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        assert own_palette_loss(x, x, edit - 50 * g, none) < own_palette_loss(x, x, edit, none) - 1e-3


def test_a_training_step_runs_with_it(synth_data, tmp_path):
    torch.manual_seed(0)
    t = Trainer(tiny_config(synth_data, tmp_path / "run", w_own_palette=40.0, colourless_critics=True),
                log=lambda *a: None)
    x, y = t.batch(0)
    stats = t.train_step(x, y)
    assert "own_palette" in stats and stats["own_palette"] >= 0
    assert all(math.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match="--w-own-palette"):
        tiny_config(synth_data, tmp_path / "bad", w_own_palette=-1.0).check()
