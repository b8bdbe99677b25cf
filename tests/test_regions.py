"""Attribute regions (faceedit.train.regions, --w-mask-outside): each attribute's region is where it moves the
pixels with the other attributes held fixed, and the edit mask pays for what it opens outside its edit's region."""
from __future__ import annotations

import numpy as np
import pytest

from faceedit.train.regions import attribute_regions


def two_attribute_faces(n=400, s=32, seed=0):
    """Grey faces where attribute 0 brightens the top-left quarter and attribute 1 darkens the bottom-right one;
    attribute 1 is present on 90% of the faces that have attribute 0 and 10% of the others (as Mustache goes with
    Male), so comparing mean faces would smear each one's region over the other's."""
    rng = np.random.default_rng(seed)
    a0 = rng.random(n) < 0.5
    a1 = np.where(a0, rng.random(n) < 0.9, rng.random(n) < 0.1)
    img = np.full((n, s, s, 3), 128.0) + rng.normal(0, 10, (n, s, s, 3))
    img[a0, : s // 2, : s // 2] += 60
    img[a1, s // 2:, s // 2:] -= 60
    return np.clip(img, 0, 255).astype(np.uint8), np.stack([a0, a1], 1).astype(np.float32)


def test_each_attribute_gets_its_own_region_even_when_attributes_go_together():
    images, labels = two_attribute_faces()
    regions = attribute_regions(images, labels, blur=1)
    assert regions.shape == (2, 32, 32) and regions.dtype == np.float32
    assert 0 <= regions.min() and regions.max() <= 1
    top_left, bottom_right = (slice(0, 16), slice(0, 16)), (slice(16, 32), slice(16, 32))
    assert regions[0][top_left].mean() > 0.9 and regions[0][bottom_right].mean() < 0.1
    assert regions[1][bottom_right].mean() > 0.9 and regions[1][top_left].mean() < 0.1
    # the naive map, mean face with minus mean face without, puts attribute 0 in attribute 1's corner too
    naive = np.abs(images[labels[:, 0] > 0].mean(0) - images[labels[:, 0] == 0].mean(0)).mean(-1)
    assert naive[bottom_right].mean() > 0.5 * naive[top_left].mean()


def test_the_blur_gives_a_region_a_margin():
    images, labels = two_attribute_faces()
    sharp, soft = attribute_regions(images, labels, blur=1), attribute_regions(images, labels, blur=5)
    assert sharp[0][17, 8] < 0.1 < soft[0][17, 8]  # one pixel below the top-left quarter


def test_an_edit_is_allowed_the_union_of_the_regions_it_changes():
    torch = pytest.importorskip("torch")
    from faceedit.train.regions import edit_regions
    regions = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.5]]])  # (A=2, 2, 2)
    y = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    y_edit = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    allowed = edit_regions(regions, y, y_edit)
    assert allowed.shape == (3, 1, 2, 2)
    assert torch.equal(allowed[0, 0], regions[0])
    assert torch.equal(allowed[1, 0], torch.tensor([[1.0, 0.0], [0.0, 0.5]]))
    assert torch.equal(allowed[2, 0], torch.zeros(2, 2))  # nothing changed: every pixel it opens is outside


def test_the_mask_pays_its_weight_outside_the_region_and_the_run_draws_the_regions(synth_data, tmp_path):
    torch = pytest.importorskip("torch")
    from conftest import tiny_config
    from faceedit.train.train import Trainer

    def first_step(out, **kw):
        stats = []
        Trainer(tiny_config(synth_data, tmp_path / out, steps=1, edit_mask=True, **kw),
                log=lambda *a: None).fit(lambda step, total, s: stats.append(s))
        return stats[0]
    a = first_step("a", w_mask_outside=1.0)
    b = first_step("b", w_mask_outside=4.0)
    assert 0 < a["mask_outside"] < a["mask"]  # the regions cover something, so less is outside than in all
    assert b["mask_outside"] == pytest.approx(a["mask_outside"], rel=1e-5)
    assert b["loss_g"] == pytest.approx(a["loss_g"] + 3.0 * a["mask_outside"], rel=1e-5)
    assert (tmp_path / "a" / "regions.png").stat().st_size > 0
    assert "mask_outside" not in first_step("c")


def test_the_option_needs_the_edit_mask(synth_data, tmp_path):
    pytest.importorskip("torch")
    from conftest import tiny_config
    with pytest.raises(ValueError, match="--w-mask-outside needs --edit-mask"):
        tiny_config(synth_data, tmp_path, w_mask_outside=1.0).check()
