"""The latent prior new faces are drawn from (engine.prior, export.prior, `faceedit prior fit`): fitted end to end
on tiny synthetic data, installed atomically and checked at load, drawn deterministically for a seed on every
backend, old Gaussian files still read, and the samples step of `faceedit eval`."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import cli
from faceedit.core.model_dir import ModelInfo
from faceedit.engine import Editor
from faceedit.engine.backends import availability
from faceedit.engine.errors import ModelError
from faceedit.engine.prior import LatentPrior, read_shares, weak_draws

CPU_BACKENDS = [n for n, ok, _ in availability() if ok and n in ("onnxruntime", "openvino")]


@pytest.fixture(scope="module")
def cgmm_model(tiny_model_dir, synth_data, tmp_path_factory):
    """The tiny model with a conditional mixture prior fitted on its synthetic train faces and installed."""
    from faceedit.export.prior import fit_prior
    d = tmp_path_factory.mktemp("cgmm") / "model"
    shutil.copytree(tiny_model_dir, d)
    fit_prior(d, [synth_data], "cgmm", install=True, components=3, dims=12, temperature=0.9, log=lambda *a: None)
    return d


def test_fit_command_end_to_end(tiny_model_dir, synth_data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    old = json.loads((model / "manifest.json").read_text())["latent_prior"]["path"]
    out, codes = tmp_path / "gmm.npz", tmp_path / "codes.npz"
    r = cli("prior", "fit", "--model", model, "--data", synth_data, "--kind", "gmm", "--components", 2, "--dims", 8,
            "--out", out, "--install", "--codes", codes)
    assert r.exit_code == 0, r.output
    assert "gmm prior, sha256" in r.output and "held-out log-likelihood" in r.output
    entry = json.loads((model / "manifest.json").read_text())["latent_prior"]
    assert entry["kind"] == "gmm" and entry["path"].startswith("latent_prior-") and entry["path"] != old
    assert not (model / old).exists()  # the previous prior file is gone, the new one listed with its hash
    assert (model / entry["path"]).read_bytes() == out.read_bytes()
    assert entry["fitted"]["components"] == 2 and entry["fitted"]["heldout_faces"] == 24
    assert set(entry["reads"]["per_attribute"]) == set(ModelInfo.load(model).attribute_names)
    assert entry["command"].startswith("faceedit prior fit --model")
    ed = Editor.load(model, backend="onnxruntime", precision="fp32")
    assert ed.prior.kind == "gmm" and ed.sample(3, {"male": 1}, seed=1).shape == (3, 64, 64, 3)
    # a second fit reuses the codes it kept; a gaussian fit writes the old kind with its name
    r = cli("prior", "fit", "--model", model, "--data", synth_data, "--kind", "gaussian", "--install", "--codes", codes)
    assert r.exit_code == 0 and "codes from" in r.output, r.output
    assert Editor.load(model, backend="onnxruntime", precision="fp32").prior.kind == "gaussian"
    # one-line refusals
    for args, said in ((["--kind", "flow", "--install"], "--kind"), ([], "nowhere to put"),
                       (["--kind", "gmm", "--components", 500, "--install"], "--components")):
        r = cli("prior", "fit", "--model", model, "--data", synth_data, *args)  # after any progress lines: one error
        last = r.output.strip().splitlines()[-1]
        assert r.exit_code == 2 and last.startswith("error:") and said in last and "Traceback" not in r.output, r.output


def test_temperature_command_redraws_the_same_prior_at_the_new_default(tiny_model_dir, tmp_path):
    """`faceedit prior temperature`: a new file with the same arrays, installed; its default draws are the old
    file's draws at that temperature (float16 factors written back as they were read; the file keeps the
    temperature as float32, so 0.8 draws at 0.800000012: equal to float32 rounding)."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = Editor.load(model, backend="onnxruntime", precision="fp32")
    old = json.loads((model / "manifest.json").read_text())["latent_prior"]["path"]
    want = before.draw_latents(5, seed=3, temperature=0.8)
    r = cli("prior", "temperature", "--model", model, "--temperature", 0.8, "--why", "rule.txt")
    assert r.exit_code == 0 and "default temperature 0.8" in r.output, r.output
    entry = json.loads((model / "manifest.json").read_text())["latent_prior"]
    assert entry["temperature"] == 0.8 and entry["temperature_chosen"] == "rule.txt" and entry["path"] != old
    assert not (model / old).exists()
    after = Editor.load(model, backend="onnxruntime", precision="fp32")
    assert after.prior.temperature == pytest.approx(0.8) and after.prior.kind == before.prior.kind
    np.testing.assert_allclose(after.draw_latents(5, seed=3), want, rtol=1e-6, atol=1e-7)
    r = cli("prior", "temperature", "--model", model, "--temperature", 3)
    last = r.output.strip().splitlines()[-1]
    assert r.exit_code == 2 and last.startswith("error:") and "0..2" in last, r.output


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sampling_is_deterministic_for_a_seed_on_every_backend(cgmm_model, backend):
    ref = Editor.load(cgmm_model, backend="onnxruntime", precision="fp32")
    ed = Editor.load(cgmm_model, backend=backend, precision="fp32")
    asked = {"male": 1, "smiling": 0}
    np.testing.assert_array_equal(ed.draw_latents(5, seed=4), ref.draw_latents(5, seed=4))  # numpy alone draws
    a = ed.sample(5, asked, seed=4)
    np.testing.assert_array_equal(a, ed.sample(5, asked, seed=4))            # same seed, same bytes
    assert not np.array_equal(a, ed.sample(5, asked, seed=5))
    assert np.abs(a.astype(int) - ref.sample(5, asked, seed=4)).max() <= 2   # fp32 graphs on two runtimes
    # the first faces of more are the same faces; and one face per request: row i is what sample() draws for
    # its attributes at that position (within a level: another batch size may take another kernel)
    assert np.abs(a[:2].astype(int) - ed.sample(2, asked, seed=4)).max() <= 1
    rows = ed.sample_rows([asked, {"male": 0}, asked], seed=4)
    assert np.abs(rows[[0, 2]].astype(int) - a[[0, 2]]).max() <= 1


def test_a_conditional_prior_draws_latents_of_faces_with_the_attributes_asked_for(cgmm_model):
    ed = Editor.load(cgmm_model, backend="onnxruntime", precision="fp32")
    assert ed.prior.kind == "cgmm" and ed.prior.temperature == pytest.approx(0.9)
    k = ed.attribute_names.index("Male")
    on, off = np.zeros((400, 14), np.float32), np.zeros((400, 14), np.float32)
    on[:, k] = 1
    z_on, z_off = ed.draw_latents(400, seed=0, conditions=on), ed.draw_latents(400, seed=0, conditions=off)
    assert not np.allclose(z_on, z_off)  # the same noise, other attributes: other latents
    # temperature scales the noise around each component: lower, closer together
    spread = lambda t: ed.draw_latents(400, seed=0, temperature=t).reshape(400, -1).std(0).mean()
    assert spread(0.5) < spread(1.0)
    how = ed.sampling({"male": 1}, 7, 0.5)
    assert how["prior"]["kind"] == "cgmm" and how["prior"]["temperature"] == 0.5 and how["seed"] == 7


def test_the_prior_file_is_checked_when_read(cgmm_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(cgmm_model, bad)
    name = json.loads((bad / "manifest.json").read_text())["latent_prior"]["path"]
    data = bytearray((bad / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / name).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its manifest"):
        ModelInfo.load(bad)
    ed = Editor.load(bad, backend="onnxruntime", precision="fp32", verify=False)  # graphs not hashed: the prior still is
    with pytest.raises(ModelError, match=f"latent prior .*{name} does not match its manifest"):
        ed.sample(2, seed=0)
    (bad / name).unlink()
    with pytest.raises(ModelError, match="missing"):
        Editor.load(bad, backend="onnxruntime", precision="fp32", verify=False).sample(1)


def test_unknown_kinds_and_wrong_shapes_are_refused_in_one_line(tmp_path):
    p = tmp_path / "p.npz"
    np.savez(p, kind=np.array("flow"), mean=np.zeros(8))
    with pytest.raises(ModelError, match="unknown kind 'flow'"):
        LatentPrior.load(p, None, 8)
    np.savez(p, mean=np.zeros(8), factor=np.eye(4))  # an old Gaussian file (no kind) of the wrong size
    with pytest.raises(ModelError, match=r"factor has shape \(4, 4\)"):
        LatentPrior.load(p, None, 8)
    np.savez(p, mean=np.zeros(4), factor=np.eye(4))
    prior = LatentPrior.load(p, None, 4)
    assert prior.kind == "gaussian" and prior.temperature == 1.0
    np.testing.assert_array_equal(prior.draw(3, seed=2), np.random.default_rng(2).standard_normal((3, 4)))


def test_warnings_come_from_the_figures_of_the_prior_drawn_from(cgmm_model):
    info = ModelInfo.load(cgmm_model)
    ed = Editor.load(cgmm_model, backend="onnxruntime", precision="fp32")
    fit = info.manifest["latent_prior"]["reads"]["per_attribute"]
    weak = [a for a, v in fit.items() if v["on"] is not None and v["on"] < 0.5]
    said = ed.sampling({w: 1 for w in weak})["warnings"]
    assert len(said) == len(weak) and all("attribute head" in s for s in said)
    # an evaluation of this very prior overrides the fit's reading; one of another prior is ignored
    m = dict(info.manifest)
    rates = {a: {"on": 0.1, "off": 0.9} for a in info.attribute_names}
    m["eval"] = {"samples_read_per_attribute": rates, "samples_prior_sha256": ed.prior.sha256,
                 "samples_judge": "reporting_judge.onnx", "split": "val"}
    out = weak_draws(m, ed.prior, {"Bald": 1.0, "Smiling": 0.0})
    assert [(w["attribute"], w["value"]) for w in out] == [("Bald", "on")] and "reporting_judge.onnx" in out[0]["message"]
    m["eval"]["samples_prior_sha256"] = "0" * 64
    m["latent_prior"] = {k: v for k, v in m["latent_prior"].items() if k != "reads"}
    assert weak_draws(m, ed.prior, {"Bald": 1.0}) == []


def test_read_shares_counts_each_side():
    read = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], bool)
    asked = np.array([[1, 0], [1, 0], [0, 0], [0, 1]], bool)
    s = read_shares(read, asked, ["A", "B"])
    assert s["A"] == {"on": 1.0, "off": 1.0, "balanced": 1.0, "n_on": 2, "n_off": 2}
    assert s["B"]["on"] == 1.0 and s["B"]["off"] == pytest.approx(2 / 3, abs=1e-4) and s["B"]["n_off"] == 3


@pytest.fixture(scope="module")
def tiny_judges(synth_data, tmp_path_factory):
    """(choice judge, reporting judge) .pt, a few steps each: they read, not well."""
    pytest.importorskip("torch")
    from faceedit.train.judge import train_judge
    d = tmp_path_factory.mktemp("judges")
    return (train_judge(synth_data, d / "judge.pt", steps=4, batch_size=16, log=lambda *a: None),
            train_judge(synth_data, d / "reporting_judge.pt", steps=4, batch_size=16, log=lambda *a: None,
                        arch="reporting"))


def test_eval_measures_samples_alone_and_writes_the_card(cgmm_model, synth_data, tiny_judges, tmp_path):
    out, card = tmp_path / "samples.json", tmp_path / "card.md"
    judge, reporting = tiny_judges
    r = cli("eval", "--model", cgmm_model, "--data", synth_data, "--split", "val", "--judge", judge,
            "--reporting-judge", reporting, "--no-edits", "--folds", 2, "--epochs", 1, "--json", out, "--card", card)
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    b = res["samples"]
    assert "edit_success" not in res and b["faces"] == 24 and b["judge"] == "reporting_judge.pt"
    prior = Editor.load(cgmm_model, backend="onnxruntime", precision="fp32").prior
    assert b["prior"]["kind"] == "cgmm" and b["prior"]["sha256"] == prior.sha256 and b["prior"]["temperature"] == 0.9
    assert set(b["read"]["per_attribute"]) == set(res["attributes"])
    assert all(v["n_on"] + v["n_off"] == 24 for v in b["read"]["per_attribute"].values())
    assert 0 <= b["two_sample"]["accuracy"] <= 1 and 0 <= b["two_sample"]["reconstruction"] <= 1
    assert b["two_sample"]["reconstruction_from"].startswith("measured here")
    assert b["kid"]["features"] == "reporting_judge.pt" and b["kid"]["drawn"] is not None
    s = res["summary"]
    assert s["samples_prior"] == "cgmm" and s["samples_prior_sha256"] == prior.sha256
    assert s["samples_read_per_attribute"]["Male"] == {k: b["read"]["per_attribute"]["Male"][k] for k in ("on", "off")}
    assert "new faces: 24 drawn from the cgmm prior" in r.output and "--no-edits" in res["command"]
    text = card.read_text()
    assert text.startswith("## New faces") and "| **mean of 13** |" in text and "cgmm" in text
    # export-update --samples-from: those figures into a copy's manifest (the rest of its eval summary kept), so
    # sampling warns with the judge's reads; refused for another prior or another temperature
    model = tmp_path / "model"
    shutil.copytree(cgmm_model, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["eval"] = {"edit_success_mean13": 0.5}
    (model / "manifest.json").write_text(json.dumps(manifest))
    r = cli("export-update", "--model", model, "--samples-from", out)
    assert r.exit_code == 0, r.output
    e = json.loads((model / "manifest.json").read_text())["eval"]
    assert e["edit_success_mean13"] == 0.5 and e["samples_split"] == "val" and e["samples_faces"] == 24
    assert e["samples_read_per_attribute"] == s["samples_read_per_attribute"]
    from faceedit.engine.prior import read_rates
    info = ModelInfo.load(model)
    assert read_rates(info.manifest, Editor.load(model, backend="onnxruntime", precision="fp32").prior)["by"] == \
        "reporting_judge.pt, val split"
    cli("prior", "temperature", "--model", model, "--temperature", 0.5)
    r = cli("export-update", "--model", model, "--samples-from", out)
    assert r.exit_code == 2 and "another latent prior" in r.output.strip().splitlines()[-1], r.output
    # the same draw again at another temperature, without the two-sample test: other faces, figures kept apart
    r = cli("eval", "--model", cgmm_model, "--data", synth_data, "--split", "val", "--judge", judge,
            "--reporting-judge", reporting, "--no-edits", "--no-two-sample", "--sample-temperature", 0.5, "--json", out)
    assert r.exit_code == 0, r.output
    b2 = json.loads(out.read_text())["samples"]
    assert b2["prior"]["temperature"] == 0.5 and "skipped" in b2["two_sample"]
    r = cli("export-update", "--model", cgmm_model, "--samples-from", out)  # drawn at 0.5, the file draws at 0.9
    assert r.exit_code == 2 and "temperature" in r.output.strip().splitlines()[-1], r.output
    r = cli("eval", "--model", cgmm_model, "--data", synth_data, "--split", "val", "--judge", judge,
            "--no-edits", "--no-samples")
    assert r.exit_code == 2 and "nothing to evaluate" in r.output


@pytest.fixture(scope="module")
def pale_model(tiny_checkpoint, synth_data, tmp_path_factory):
    """The tiny model after its decoder learnt Pale_Skin hard (200 steps of reconstruction in which half the
    batch's latents are zeroed, so those faces come from the attributes alone), exported, with a cgmm prior."""
    torch = pytest.importorskip("torch")
    from faceedit.export import export_model
    from faceedit.export.prior import fit_prior
    from faceedit.train.checkpoint import load_checkpoint
    from faceedit.train.data import ImageCache, load_celeba
    model, state = load_checkpoint(tiny_checkpoint)
    ds = load_celeba(synth_data)
    _, labels = ds.select(list(state["model_config"]["attributes"]))
    idx = ds.split_indices("train")
    x = torch.from_numpy(np.ascontiguousarray(ImageCache(ds, 64).images[idx])).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(labels[idx]).float()
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread wastes nothing on a busy machine
    model.decoder.train()
    opt = torch.optim.Adam(model.decoder.parameters(), 1e-2)
    for _ in range(200):
        j = torch.randint(0, len(x), (16,))
        with torch.no_grad():
            mu = model.encoder(x[j])[0] * (torch.rand(16, 1, 1, 1) < 0.5).float()
        loss = (model.decoder(mu, y[j]) - x[j]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    model.eval()
    d = tmp_path_factory.mktemp("pale")
    torch.save({**state, "model": model.state_dict()}, d / "pale.pt")
    export_model(d / "pale.pt", d / "model", int8=False, openvino=False, fp16=False, log=lambda *a: None)
    fit_prior(d / "model", [synth_data], "cgmm", install=True, components=3, dims=12, log=lambda *a: None)
    return d / "model"


@pytest.mark.slow
def test_a_tiny_models_samples_carry_a_strongly_trained_attribute(pale_model):
    ed = Editor.load(pale_model, backend="onnxruntime", precision="fp32")
    assert ed.prior.kind == "cgmm"
    skin = lambda faces: faces[:, 26:42, 22:42].astype(float).mean((1, 2, 3))  # the middle of the face
    on, off = ed.sample(32, {"pale_skin": 1}, seed=0), ed.sample(32, {"pale_skin": 0}, seed=0)
    diff = skin(on) - skin(off)  # the same latents, the attribute on vs off: paler on nearly every face
    assert (diff > 0).mean() >= 0.8 and np.median(diff) > 10, diff.round()
    # one face per request, as eval draws them: each with its own value
    rows = skin(ed.sample_rows([{"pale_skin": i % 2} for i in range(32)], seed=1))
    assert np.median(rows[1::2]) > np.median(rows[0::2]) + 5, rows.round()
    # the fit's own reading (the attribute head, barely trained here) is in the manifest, per attribute
    reads = ModelInfo.load(pale_model).manifest["latent_prior"]["reads"]
    assert reads["faces"] == 24 and "Pale_Skin" in reads["per_attribute"]
