"""The projected discriminator (--w-projected, faceedit.train.projected): trainable heads on the face recogniser's
frozen features. Its heads learn and the recogniser does not, the generator pays w * its verdict, and a run
with it resumes exactly (a run without it can turn it on)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import fit_collecting as run, side_critic_resumes_and_turns_on, tiny_config  # noqa: E402
from faceedit.train.train import Trainer  # noqa: E402


def test_the_heads_learn_the_recogniser_does_not_and_g_pays_its_weight(synth_data, tmp_path):
    from faceedit.train.face_descriptor import _net_on
    recogniser = {k: v.clone() for k, v in _net_on("cpu").state_dict().items()}
    a, stats_a = run(tiny_config(synth_data, tmp_path / "a", steps=2, w_projected=1.0))
    fresh = Trainer(tiny_config(synth_data, tmp_path / "f", w_projected=1.0), log=lambda *a: None).projected
    for s in stats_a:
        assert s["loss_p"] > 0 and s["adv_projected"] > 0
    moved = [not torch.equal(p, q) for p, q in zip(a.projected.state_dict().values(), fresh.state_dict().values())]
    assert any(moved)
    assert all(torch.equal(v, recogniser[k]) for k, v in _net_on("cpu").state_dict().items())
    assert all(p.requires_grad for p in a.projected.parameters())  # unfrozen again after the generator's pass
    # the same run with three times the weight: identical up to the generator's first update, loss_g moves by 2x
    _, stats_b = run(tiny_config(synth_data, tmp_path / "b", steps=1, w_projected=3.0))
    assert stats_b[0]["adv_projected"] == pytest.approx(stats_a[0]["adv_projected"], rel=1e-5)
    assert stats_b[0]["loss_g"] == pytest.approx(stats_a[0]["loss_g"] + 2.0 * stats_a[0]["adv_projected"], rel=1e-5)


@pytest.mark.slow
def test_a_run_with_the_critic_resumes_exactly_and_one_without_can_turn_it_on(synth_data, tmp_path):
    first = side_critic_resumes_and_turns_on(synth_data, tmp_path, {"w_projected": 1.0},
                                             ("loss_g", "loss_d", "loss_p", "adv_projected", "pixel", "edit"), "projected")
    assert first["loss_p"] > 0


def test_the_critics_learn_at_lr_d_times_the_generators_rate(synth_data, tmp_path):
    """--lr-d (TTUR): D's and the projected critic's groups run at lr * lr_d, the generator's at lr; and with it
    D's step is bigger, so the same first batch leaves D's weights further from where they started."""
    def first_move(lr_d, out):
        t = Trainer(tiny_config(synth_data, tmp_path / out, steps=1, w_projected=1.0, lr_d=lr_d), log=lambda *a: None)
        start = [p.detach().clone() for p in t.model.discriminator.parameters()]
        t.fit()
        return t, sum((p - q).abs().sum().item() for p, q in zip(t.model.discriminator.parameters(), start))
    t, moved_4 = first_move(4.0, "a")
    g_lr = t.opt_g.param_groups[0]["lr"]
    assert g_lr > 0 and all(g["lr"] == g_lr for g in t.opt_g.param_groups)
    assert all(g["lr"] == pytest.approx(4.0 * g_lr) for g in t.opt_d.param_groups + t.opt_p.param_groups)
    _, moved_1 = first_move(1.0, "b")
    assert moved_4 > 2.0 * moved_1


def test_the_local_critic_learns_where_an_edit_is_fake():
    """--projected-local: trained on real faces against the same faces with a small blot painted where a mask
    opened (7% of the face), the heads call the blotted patches fake and the rest of those faces real, on faces
    they never saw (averaged over all patches at once, "everything is real" was nearly as cheap)."""
    from skimage import data as skdata
    from faceedit.train import projected
    from faceedit.train.projected import ProjectedCritic
    torch.manual_seed(0)
    face = torch.from_numpy(skdata.astronaut()[30:230, 140:340].copy()).permute(2, 0, 1).float() / 127.5 - 1
    face = torch.nn.functional.interpolate(face[None], size=(64, 64), mode="area")[0]

    def batch(n):  # the face moved by a few pixels and re-lit; the blot: a green square in one of two places
        real = torch.stack([torch.roll(face, (int(dy), int(dx)), (1, 2)) for dy, dx in torch.randint(-4, 5, (n, 2))])
        real = (real * (0.8 + 0.4 * torch.rand(n, 1, 1, 1))).clamp(-1, 1)
        mask = torch.zeros(n, 1, 64, 64)
        for i, top in enumerate(torch.randint(0, 2, (n,)).tolist()):
            mask[i, :, 8 + 32 * top:20 + 32 * top, 20:44] = 1  # 7% of the face, as small as a real edit
        fake = real * (1 - mask) + mask * torch.tensor([-1.0, 1.0, -1.0])[None, :, None, None]
        return real, fake, mask

    critic = ProjectedCritic()
    opt = torch.optim.Adam(critic.parameters(), 2e-3, betas=(0.5, 0.999))
    for _ in range(40):
        real, fake, mask = batch(8)
        loss = projected.critic_loss(critic, real, fake, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, fake, mask = batch(8)
    with torch.no_grad():
        logits = critic.patch_logits(projected.face_features(fake))[1]  # the 17x17 stage
    opened = projected._opened(mask, logits)
    inside, outside = logits[opened > 0.9].mean(), logits[opened < 0.1].mean()
    assert inside < 0 < outside, (inside, outside)
    # the generator pays for the edited patches only: a mask that opens nothing ... opens nothing to pay for
    assert projected.generator_loss(critic, fake, torch.zeros_like(mask)) == 0
    assert projected.generator_loss(critic, fake, mask) > projected.generator_loss(critic, fake)


def test_a_local_critic_run_steps_and_needs_the_mask(synth_data, tmp_path):
    _, stats = run(tiny_config(synth_data, tmp_path / "a", steps=1, edit_mask=True, w_projected=1.0,
                               projected_local=True, diff_augment=True))
    assert stats[0]["loss_p"] > 0 and stats[0]["adv_projected"] > 0
    with pytest.raises(ValueError, match="--projected-local needs --edit-mask"):
        tiny_config(synth_data, tmp_path / "b", w_projected=1.0, projected_local=True).check()
