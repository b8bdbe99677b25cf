"""Carrying training to another machine: the packed data set and the slim checkpoint (`faceedit train bundle`)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_config  # noqa: E402
from faceedit.train.bundle import pack_data, slim_checkpoint, unpack_data  # noqa: E402
from faceedit.train.checkpoint import load_checkpoint  # noqa: E402
from faceedit.train.data import ImageCache, load_celeba  # noqa: E402
from faceedit.train.train import Trainer  # noqa: E402


def test_packed_data_trains_without_the_photos_and_matches_the_crops(synth_data, tmp_path):
    bundle = tmp_path / "bundle"
    n = pack_data(synth_data, bundle, size=64, max_val=10)
    src, packed = load_celeba(synth_data), load_celeba(bundle)
    assert n == len(packed.names) == len(src.split_indices("train")) + 10
    assert len(packed.split_indices("test")) == 0 and not (bundle / "img_align_celeba").exists()
    cache = tmp_path / "elsewhere"  # as on the other machine: an empty cache
    path = unpack_data(bundle, cache)
    assert path.exists() and unpack_data(bundle, cache) == path  # a second unpack reuses it
    crops = ImageCache(packed, 64, cache).images
    originals = ImageCache(src, 64).images
    pos = {name: i for i, name in enumerate(src.names)}
    for j, name in enumerate(packed.names):
        i = pos[name]
        assert (packed.labels[j] == src.labels[i]).all() and packed.partition[j] == src.partition[i]
        mse = np.mean((crops[j].astype(float) - originals[i]) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 33, name  # WebP at quality 97: close to the crop, not equal
    cfg = tiny_config(bundle, tmp_path / "run", steps=2, eval_every=2, max_val=8, cache_dir=str(cache))
    Trainer(cfg, log=lambda *a: None).fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt")[1]["step"] == 2


def test_slim_checkpoint_resumes_and_loads_generator_only(tiny_checkpoint, synth_data, tmp_path):
    slim, gen_only = tmp_path / "slim.pt", tmp_path / "gen.pt"
    slim_checkpoint(tiny_checkpoint, slim)
    slim_checkpoint(tiny_checkpoint, gen_only, generator_only=True)
    state = torch.load(gen_only, weights_only=True)
    assert "opt_g" not in state and not any(k.startswith("discriminator.") for k in state["model"])
    assert all(v.dtype == torch.float16 for v in state["model"].values() if v.is_floating_point())
    full, _ = load_checkpoint(tiny_checkpoint)
    light, _ = load_checkpoint(gen_only)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        a, b = full.decoder(full.encoder(x)[0], torch.ones(2, full.cfg.n_attr)), light.decoder(light.encoder(x)[0], torch.ones(2, full.cfg.n_attr))
    assert (a - b).abs().max() < 0.02  # fp16 weights
    # resume from the slim one (weights and step travel, Adam restarts)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(slim.read_bytes())
    said = []
    t = Trainer(tiny_config(synth_data, run, steps=6, eval_every=100), resume=True, log=said.append)
    assert t.step == 4 and any("no optimizer state" in s for s in said)
    t.fit()
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 6
    # a generator-only checkpoint resumes with a fresh discriminator, and says so
    (run / "last.pt").write_bytes(gen_only.read_bytes())
    said.clear()
    t = Trainer(tiny_config(synth_data, run, steps=8), resume=True, log=said.append)
    assert t.step == 4 and any("no discriminator: it starts fresh" in s for s in said), said
    assert all(torch.equal(p, q) for p, q in zip(t.model.decoder.parameters(), light.decoder.parameters()))
    # a checkpoint that lacks part of the generator is refused, D or no D
    broken = {**torch.load(gen_only, weights_only=True)}
    broken["model"] = {k: v for k, v in broken["model"].items() if not k.startswith("decoder.out")}
    torch.save(broken, run / "last.pt")
    with pytest.raises(RuntimeError, match="do not match"):
        Trainer(tiny_config(synth_data, run, steps=8), resume=True, log=lambda *a: None)


def test_load_checkpoint_refuses_missing_generator_weights(tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("decoder.")}
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="do not match"):
        load_checkpoint(tmp_path / "broken.pt")


def test_bundle_command_errors_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from faceedit.cli.main import app
    r = CliRunner().invoke(app, ["train", "bundle", "pack-data", "--data", str(tmp_path / "nowhere"),
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and r.output.startswith("error: data folder not found"), r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
    torch.save({"step": 1}, tmp_path / "junk.pt")  # a .pt, but no training checkpoint
    r = CliRunner().invoke(app, ["train", "bundle", "slim", "--checkpoint", str(tmp_path / "junk.pt"),
                                 "--out", str(tmp_path / "slim.pt")])
    assert r.exit_code == 2 and "is not a faceedit checkpoint" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "slim.pt").exists()


def test_bundle_commands_pack_unpack_and_slim(synth_data, tiny_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from faceedit.cli.main import app
    run = lambda *args: CliRunner().invoke(app, ["train", "bundle", *args])  # noqa: E731
    r = run("pack-data", "--data", str(synth_data), "--out", str(tmp_path / "b"), "--max-val", "4")
    assert r.exit_code == 0 and f"packed {len(load_celeba(synth_data).split_indices('train')) + 4} faces" in r.output
    r = run("unpack-data", "--bundle", str(tmp_path / "b"))
    assert r.exit_code == 0 and "crops decoded into" in r.output
    r = run("slim", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "s.pt"), "--generator-only")
    assert r.exit_code == 0, r.output
    assert not any(k.startswith("discriminator.") for k in torch.load(tmp_path / "s.pt", weights_only=True)["model"])
