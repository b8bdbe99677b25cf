"""The latent adversary (--w-latent-adv, faceedit.train.latent): a classifier reads the attributes off the latent
and the encoder learns to leave it nothing to read, while keeping what reconstruction needs; a run with it
resumes exactly, and a run without it can turn it on."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import fit_collecting as run, side_critic_resumes_and_turns_on, tiny_config  # noqa: E402
from faceedit.train import latent  # noqa: E402
from faceedit.train.train import Trainer  # noqa: E402


def toy_batch(g, n=64):
    """Inputs (n, 4, 8, 8): channel 0 carries a binary attribute, channels 1-3 the content to reconstruct."""
    a = (torch.rand(n, 1, generator=g) < 0.5).float()
    x = torch.randn(n, 4, 8, 8, generator=g)
    x[:, :1] = (2 * a - 1)[:, :, None, None] + 0.1 * x[:, :1]
    return x, a


def fresh_reader_accuracy(encoder, g, steps=150):
    """How well a new classifier, trained on the frozen encoder's latents, reads the attribute (held-out batch)."""
    reader = latent.LatentClassifier(4, 1, width=32, dropout=0.0)
    opt = torch.optim.Adam(reader.parameters(), 3e-3)
    for _ in range(steps):
        x, a = toy_batch(g)
        with torch.no_grad():
            z = encoder(x)
        opt.zero_grad()
        latent.classifier_loss(reader, z, a).backward()
        opt.step()
    x, a = toy_batch(g, 512)
    with torch.no_grad():
        return float(((reader(encoder(x)) > 0).float() == a).float().mean())


def train_toy(w_latent_adv: float, steps=400):
    """A 1x1-conv encoder and decoder on toy_batch: the decoder must rebuild channels 1-3 only, so the attribute's
    channel is free to drop; the latent adversary at w_latent_adv asks the encoder to drop it."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    encoder, decoder = torch.nn.Conv2d(4, 4, 1), torch.nn.Conv2d(4, 3, 1)
    critic = latent.LatentClassifier(4, 1, width=32)
    opt_g = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], 3e-3)
    opt_c = torch.optim.Adam(critic.parameters(), 3e-3)
    for _ in range(steps):
        x, a = toy_batch(g)
        z = encoder(x)
        opt_c.zero_grad()
        latent.classifier_loss(critic, z, a).backward()
        opt_c.step()
        critic.requires_grad_(False)
        loss = (decoder(z) - x[:, 1:]).pow(2).mean() + w_latent_adv * latent.encoder_loss(critic, z)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        critic.requires_grad_(True)
    x, _ = toy_batch(g, 512)
    with torch.no_grad():
        rebuilt = float((decoder(encoder(x)) - x[:, 1:]).pow(2).mean())
    return encoder, rebuilt, g


def test_the_encoder_learns_to_leave_the_attribute_out_of_the_latent_and_keeps_the_rest():
    plain, plain_err, g = train_toy(0.0)
    assert fresh_reader_accuracy(plain, g) > 0.95  # nothing asks it to: the latent still tells the attribute
    emptied, err, g = train_toy(2.0)
    assert fresh_reader_accuracy(emptied, g) < 0.65  # a new classifier, trained to the end, reads near chance
    assert err < 0.1 and plain_err < 0.1  # and the content (variance 1) survives either way


def test_the_encoders_loss_is_zero_for_an_undecided_classifier_and_grows_with_its_certainty():
    critic = latent.LatentClassifier(16, 3)
    torch.nn.init.zeros_(critic.net[-1].weight)
    torch.nn.init.zeros_(critic.net[-1].bias)
    z = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        assert float(latent.encoder_loss(critic, z)) == pytest.approx(0.0, abs=1e-6)
        torch.nn.init.constant_(critic.net[-1].bias, 3.0)
        assert float(latent.encoder_loss(critic, z)) > 0.5


def test_a_run_trains_the_classifier_and_the_encoder_pays_its_weight(synth_data, tmp_path):
    a, stats_a = run(tiny_config(synth_data, tmp_path / "a", steps=2, w_latent_adv=1.0))
    fresh = Trainer(tiny_config(synth_data, tmp_path / "f", w_latent_adv=1.0), log=lambda *a: None).latent
    assert all(s["loss_l"] > 0 and "latent_adv" in s for s in stats_a)
    assert any(not torch.equal(p, q) for p, q in zip(a.latent.state_dict().values(), fresh.state_dict().values()))
    assert all(p.requires_grad for p in a.latent.parameters())  # unfrozen again after the generator's pass
    # three times the weight: the same first step up to the generator's update, loss_g moves by 2x the term
    _, stats_b = run(tiny_config(synth_data, tmp_path / "b", steps=1, w_latent_adv=3.0))
    assert stats_b[0]["latent_adv"] == pytest.approx(stats_a[0]["latent_adv"], rel=1e-4, abs=1e-6)
    assert stats_b[0]["loss_g"] == pytest.approx(stats_a[0]["loss_g"] + 2.0 * stats_a[0]["latent_adv"], rel=1e-4)


@pytest.mark.slow
def test_a_run_with_the_adversary_resumes_exactly_and_one_without_can_turn_it_on(synth_data, tmp_path):
    first = side_critic_resumes_and_turns_on(synth_data, tmp_path, {"w_latent_adv": 1.0},
                                             ("loss_g", "loss_d", "loss_l", "latent_adv", "pixel"), "latent")
    assert first["loss_l"] > 0
    # the log gained the new columns under its old rows: every row's step is where the header says it is
    import csv
    with open(tmp_path / "c" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[3]["loss_l"] == "" and float(rows[4]["loss_l"]) > 0
