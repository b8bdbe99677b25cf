"""--w-own-palette (faceedit.train.palette): a non-colour edit pays for hues the face does not have, not for
brightness, not for colours the reconstruction already has; colour edits pay nothing, or with --colour-palettes
pay against the colours real faces with that attribute have."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from faceedit.train import augment  # noqa: E402
from faceedit.train.palette import own_palette_loss, palette_distance, reference_keep, reference_palettes  # noqa: E402
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


YELLOW = torch.tensor([0.7, 0.5, -0.5])


def test_colour_edits_are_held_to_the_colours_real_faces_with_that_attribute_have():
    # 40 faces: skin, and the top rows (the "hair" region) yellow on the blond ones (column 1), dark otherwise
    u8 = lambda c: ((c + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()  # noqa: E731
    images = np.repeat(u8(SKIN)[None, None, None], 40, 0).repeat(32, 1).repeat(32, 2)
    labels = np.zeros((40, 2), np.float32)
    labels[:20, 1] = 1
    images[:20, :8] = u8(YELLOW)
    images[20:, :8] = u8(torch.full((3,), -0.8))
    regions = np.zeros((2, 32, 32), np.float32)
    regions[1, :8] = 1
    refs = reference_palettes(images, labels, [1], regions, per=4)
    assert refs.shape == (1, 4, 2)
    # drawn among given indices (a training split) without copying: the same faces, the same colours
    assert np.array_equal(reference_palettes(images, labels, [1], regions, per=4, among=np.arange(40)), refs)
    yellow_chroma = np.array([YELLOW[2] - (0.299 * YELLOW[0] + 0.587 * YELLOW[1] + 0.114 * YELLOW[2]),
                              YELLOW[0] - (0.299 * YELLOW[0] + 0.587 * YELLOW[1] + 0.114 * YELLOW[2])])
    assert np.abs(refs[0] - yellow_chroma).max() < 0.02   # every reference colour is the blond faces' yellow

    x = face()
    none = torch.zeros(2, dtype=torch.bool)
    references = torch.from_numpy(refs.reshape(-1, 2))
    keep = torch.ones(2, 4, dtype=torch.bool)
    assert own_palette_loss(x, x, paint(x, YELLOW), none) > 0.05                       # not the face's colour
    assert own_palette_loss(x, x, paint(x, YELLOW), none, references, keep) == 0       # but blond hair's
    assert own_palette_loss(x, x, paint(x, GREEN), none, references, keep) > 0.05      # green is neither
    assert own_palette_loss(x, x, paint(x, YELLOW), none, references, ~keep) > 0.05    # rows that may not use it
    with pytest.raises(ValueError, match="references and keep go together"):
        own_palette_loss(x, x, paint(x, YELLOW), none, references)                    # which rows may use them?


def test_which_reference_colours_an_edit_may_use():
    sources = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    targets = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    # columns 1 and 2 are colour attributes, 2 references each; column 0 is not
    keep = reference_keep(targets, sources, [1, 2], 2)
    assert keep.tolist() == [[True, True, False, False],    # turned 1 on (and 2 off): 1's colours
                             [True, True, True, True],      # only turned a colour off: any of them
                             [False, False, False, False],  # changed no colour attribute: none
                             [False, False, False, False]]


@pytest.mark.parametrize("colour_palettes", [False, True])
def test_a_training_step_runs_with_it(synth_data, tmp_path, colour_palettes):
    torch.manual_seed(0)
    t = Trainer(tiny_config(synth_data, tmp_path / "run", w_own_palette=40.0, colourless_critics=True,
                            colour_palettes=colour_palettes), log=lambda *a: None)
    assert (t.references is not None) == colour_palettes
    x, y = t.batch(0)
    stats = t.train_step(x, y)
    assert "own_palette" in stats and stats["own_palette"] >= 0
    assert all(math.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match="--w-own-palette"):
        tiny_config(synth_data, tmp_path / "bad", w_own_palette=-1.0).check()
    with pytest.raises(ValueError, match="--colour-palettes needs"):
        tiny_config(synth_data, tmp_path / "bad", colour_palettes=True).check()


def test_the_distance_is_the_nearest_shade_s_and_so_is_its_gradient():
    """palette_distance searches without autograd and differentiates only the nearest colour: its values and
    gradient must be those of the plain definition, min over kept colours p and t in [0, 1] of |c - t p|."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    palette = torch.randn(3, 9, 2, generator=g) * 0.3
    palette[:, 4] = palette[:, 2]                                         # a duplicate, as reference_palettes makes
    keep = torch.rand(3, 9, generator=g) > 0.4
    keep[:, 0] = True
    weights = torch.rand(3, 16, 16, generator=g)

    def plain(x):
        c = augment.chroma(x).flatten(2).transpose(1, 2)[:, :, None, :]  # [N, P, 1, 2]
        p = palette[:, None, :, :]                                       # [N, 1, K, 2]
        t = ((c * p).sum(-1, keepdim=True) / p.pow(2).sum(-1, keepdim=True)).clamp(0, 1)
        d = (c - t * p).norm(dim=-1).masked_fill(~keep[:, None, :], float("inf"))
        return d.amin(-1).reshape(3, 16, 16)

    grads = []
    for f in (plain, lambda x: palette_distance(x, palette, keep)):
        xi = x.clone().requires_grad_(True)
        d = f(xi)
        (d * weights).sum().backward()
        grads.append((d.detach(), xi.grad))
    (d_plain, g_plain), (d_fast, g_fast) = grads
    far = d_plain > 0.01  # where a distance can be charged (the tolerance is 0.03); near 0 both are rounding
    assert far.float().mean() > 0.5
    assert torch.allclose(d_fast[far], d_plain[far], atol=1e-5)
    # float32 rounding differs (|c|^2 - 2t c.p + t^2 |p|^2 against |c - t p|): ~1e-5 on gradients of size ~1
    assert torch.allclose(g_fast.permute(0, 2, 3, 1)[far], g_plain.permute(0, 2, 3, 1)[far], atol=1e-4)
