"""--colourless-critics: the edit critics read every attribute but the colour ones off a grey view of the edit,
so the generator earns nothing for glasses, a mustache, age or sex by painting a patch of colour (the blue, green
and orange blots of docs/training-log.md); hair colours and pale skin are still judged in colour.
--critic-chroma-blur: that colour is seen blurred, so a fine pattern of colour buys no hair colour either."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_config  # noqa: E402
from faceedit.core.attributes import DEFAULT_ATTRIBUTES  # noqa: E402
from faceedit.train.augment import COLOUR_ATTRIBUTES, grey_some, luminance, smooth_chroma  # noqa: E402
from faceedit.train.model import AttributeHead, EncoderTrunk, ModelConfig  # noqa: E402
from faceedit.train.train import Trainer, colour_where_it_counts, critic_views  # noqa: E402

REC601 = torch.tensor([0.299, 0.587, 0.114])


def test_luminance_sees_brightness_not_hue():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=g) - 0.5
    # a change of hue at constant brightness: orthogonal to the Rec. 601 weights
    hue = torch.linalg.cross(REC601, torch.tensor([1.0, 0.0, 0.0]))[None, :, None, None] * 0.3
    assert torch.allclose(luminance(x), luminance(x + hue), atol=1e-6)
    assert not torch.allclose(luminance(x), luminance(x + 0.3), atol=1e-3)
    grey = luminance(x)
    assert torch.allclose(luminance(grey), grey, atol=1e-6) and grey.shape == x.shape


def grad_of_column(column: str, colourless: bool) -> torch.Tensor:
    """d(critic logit of `column`)/d(edit pixels), through the critic views training builds."""
    torch.manual_seed(0)
    head = AttributeHead(ModelConfig(), EncoderTrunk(ModelConfig())).eval()
    colour = torch.tensor([a in COLOUR_ATTRIBUTES for a in DEFAULT_ATTRIBUTES])
    edits = (torch.rand(4, 3, 64, 64) - 0.5).requires_grad_(True)  # inside [-1, 1]: soften's clamp stays out
    logits = head(critic_views(edits, 1.5, colourless))
    if colourless:
        logits = colour_where_it_counts(logits, colour)
    assert logits.shape == (4, len(DEFAULT_ATTRIBUTES))
    logits[:, DEFAULT_ATTRIBUTES.index(column)].sum().backward()
    return edits.grad


def share_of_gradient_along_hue(grad: torch.Tensor) -> float:
    """How much of the gradient changes hue rather than brightness: its part orthogonal to the Rec. 601
    weights, as a share of its norm (0: it can only ask for lighter or darker pixels)."""
    w = (REC601 / REC601.norm())[None, :, None, None]
    along = (grad * w).sum(1, keepdim=True) * w
    return float((grad - along).norm() / grad.norm())


def test_only_colour_attributes_can_ask_for_colour():
    assert share_of_gradient_along_hue(grad_of_column("Eyeglasses", colourless=True)) < 1e-5
    assert share_of_gradient_along_hue(grad_of_column("Male", colourless=True)) < 1e-5
    # a colour attribute still asks for colour, and without the option every attribute did
    assert share_of_gradient_along_hue(grad_of_column("Blond_Hair", colourless=True)) > 0.1
    assert share_of_gradient_along_hue(grad_of_column("Eyeglasses", colourless=False)) > 0.1


def test_grey_some_greys_about_that_share_of_rows():
    torch.manual_seed(0)
    x = torch.rand(4000, 3, 2, 2) * 2 - 1
    out = grey_some(x, 0.25)
    grey = (out[:, 0] == out[:, 1]).all(-1).all(-1) & (out[:, 1] == out[:, 2]).all(-1).all(-1)
    assert abs(float(grey.float().mean()) - 0.25) < 0.03
    assert torch.equal(out[~grey], x[~grey])


def test_smooth_chroma_keeps_brightness_and_area_colour_and_drops_fine_colour():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(2, 3, 32, 32, generator=g) * 0.4 - 0.2
    base = luminance(base)  # a grey face, so the colour below is all the colour there is
    hue = torch.linalg.cross(REC601, torch.tensor([1.0, 0.0, 0.0]))[None, :, None, None]
    checks = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2 - 1).float()  # period-2 pattern
    fine = base + 0.3 * hue * checks
    area = base + 0.3 * hue
    assert torch.allclose(luminance(smooth_chroma(fine, 2.0)), luminance(fine), atol=1e-5)
    assert torch.allclose(smooth_chroma(fine, 2.0), base, atol=1e-3)      # the checks of colour are gone
    assert torch.allclose(smooth_chroma(area, 2.0), area, atol=1e-5)      # colour over an area stays
    assert torch.equal(smooth_chroma(fine, 0.0), fine)


def test_critics_see_the_blurred_colour_and_the_grey_view():
    edits = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.5
    torch.manual_seed(0)  # the same jitter for both
    views = critic_views(edits, 0.0, colourless=True, chroma_blur=1.5)
    torch.manual_seed(0)
    plain = critic_views(edits, 0.0, colourless=True)
    assert views.shape == (6, 3, 16, 16)
    assert torch.allclose(views[3:], plain[3:], atol=1e-6)                # the grey half is untouched
    assert torch.allclose(views[:3], smooth_chroma(plain[:3], 1.5), atol=1e-5)


def test_a_training_step_runs_with_it(synth_data, tmp_path):
    steps = {}
    for on in (False, True):
        torch.manual_seed(0)
        t = Trainer(tiny_config(synth_data, tmp_path / str(on), colourless_critics=on), log=lambda *a: None)
        x, y = t.batch(0)
        steps[on] = t.train_step(x, y)
    assert steps[True].keys() == steps[False].keys()
    assert all(math.isfinite(v) for v in steps[True].values())
