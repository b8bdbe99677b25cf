"""Attention-mask compositing (issue 27 part 2, --edit-mask): the decoder also draws a soft mask per edit and the
edit users get is crop + mask * (edited - reconstruction). A tiny mask model trains (its mask terms logged),
resumes exactly, starts from a mask-less model directory as the full-face edit, exports a mask output, and the
engine's edit is the torch composite, the crop itself wherever the mask is 0 (in a photo too)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_config  # noqa: E402
from faceedit.train.model import MASK_START_LOGIT, composite  # noqa: E402
from faceedit.train.train import Trainer  # noqa: E402


def run_steps(cfg, resume=False, log=lambda *a: None):
    stats = []
    Trainer(cfg, resume=resume, log=log).fit(lambda step, total, s: stats.append((step, s)))
    return stats


@pytest.fixture(scope="module")
def mask_run(synth_data, tmp_path_factory):
    """A tiny --edit-mask run of 4 steps: (its folder, the stats of each step)."""
    out = tmp_path_factory.mktemp("mask_run")
    return out, run_steps(tiny_config(synth_data, out, edit_mask=True))


@pytest.fixture(scope="module")
def mask_model_dir(mask_run, tmp_path_factory):
    pytest.importorskip("onnx")
    from faceedit.export import export_model
    out = tmp_path_factory.mktemp("mask_model") / "model"
    export_model(mask_run[0] / "last.pt", out, int8=False, openvino=False, fp16=False, log=lambda *a: None)
    return out


def test_a_mask_model_trains_and_logs_its_mask_terms(mask_run):
    from faceedit.train.checkpoint import load_checkpoint
    run, stats = mask_run
    assert [s for s, _ in stats] == [1, 2, 3, 4]
    for _, s in stats:
        assert 0 < s["mask"] <= 1 and s["mask_tv"] >= 0
    assert {"mask", "mask_tv"} <= set(open(run / "log.csv").readline().strip().split(","))
    assert (run / "samples" / "step_0000004_mask.png").exists()
    model, state = load_checkpoint(run / "last.pt")
    assert state["model_config"]["edit_mask"] is True and model.decoder.mask is not None
    with torch.no_grad():
        z, y = torch.randn(2, *model.cfg.z_shape), torch.ones(2, model.cfg.n_attr)
        image, m = model.decoder(z, y, with_mask=True)
        assert torch.equal(image, model.decoder(z, y))  # the default call still gives the image alone
        assert m.shape == (2, 1, 64, 64) and 0 <= float(m.min()) and float(m.max()) <= 1


def test_the_mask_costs_what_its_weights_say(synth_data, tmp_path):
    """loss_g of a mask run is the mask-less sum plus w_mask * mask + w_mask_tv * mask_tv (one step, same seed)."""
    a = run_steps(tiny_config(synth_data, tmp_path / "a", steps=1, edit_mask=True, w_mask=0.0, w_mask_tv=0.0))[0][1]
    b = run_steps(tiny_config(synth_data, tmp_path / "b", steps=1, edit_mask=True, w_mask=3.0, w_mask_tv=5.0))[0][1]
    assert b["loss_g"] == pytest.approx(a["loss_g"] + 3.0 * b["mask"] + 5.0 * b["mask_tv"], rel=1e-5)


def test_the_mask_conv_learns_at_its_own_rate(synth_data, tmp_path):
    """--lr-mask: the mask conv's group runs at lr * lr_mask, every other group at lr."""
    t = Trainer(tiny_config(synth_data, tmp_path / "a", steps=1, edit_mask=True, lr_mask=7.0), log=lambda *a: None)
    t.fit()
    *rest, mask_group = t.opt_g.param_groups
    assert {id(p) for p in mask_group["params"]} == {id(p) for p in t.model.decoder.mask.parameters()}
    assert mask_group["lr"] == pytest.approx(7.0 * rest[0]["lr"]) and rest[0]["lr"] > 0
    assert all(g["lr"] == rest[0]["lr"] for g in rest + t.opt_d.param_groups)


@pytest.mark.slow
def test_a_mask_run_resumes_exactly_and_a_mask_less_run_can_turn_it_on(synth_data, tmp_path):
    full = run_steps(tiny_config(synth_data, tmp_path / "a", steps=6, ckpt_every=4, eval_every=100, edit_mask=True))
    run_steps(tiny_config(synth_data, tmp_path / "b", steps=4, ckpt_every=4, eval_every=100, edit_mask=True))
    resumed = run_steps(tiny_config(synth_data, tmp_path / "b", steps=6, ckpt_every=4, eval_every=100, edit_mask=True),
                        resume=True)
    assert [s for s, _ in resumed] == [5, 6]
    for (_, a), (_, b) in zip(full[4:], resumed):
        for k in ("loss_g", "loss_d", "pixel", "edit", "mask", "mask_tv"):
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k
    # a mask run cannot lose its mask when it resumes
    with pytest.raises(RuntimeError, match="--edit-mask"):
        Trainer(tiny_config(synth_data, tmp_path / "b", steps=8), resume=True, log=lambda *a: None)
    # a mask-less run (D and Adam included) resumes with --edit-mask: the mask conv starts full, with fresh moments
    run_steps(tiny_config(synth_data, tmp_path / "c", steps=4, ckpt_every=4, eval_every=100))
    logs = []
    t = Trainer(tiny_config(synth_data, tmp_path / "c", steps=6, ckpt_every=4, eval_every=100, edit_mask=True),
                resume=True, log=logs.append)
    assert t.step == 4 and any("no edit mask" in m for m in logs), logs
    assert torch.count_nonzero(t.model.decoder.mask.weight) == 0
    assert torch.all(t.model.decoder.mask.bias == MASK_START_LOGIT)
    t.fit()
    assert torch.count_nonzero(t.model.decoder.mask.weight) > 0


def test_from_model_gives_a_mask_less_model_a_full_mask_and_keeps_its_rgb(tiny_model_dir, synth_data, tmp_path):
    import onnxruntime as ort

    from faceedit.train.checkpoint import load_checkpoint
    from faceedit.train.from_model import checkpoint_from_model, rebuild
    model, _, _ = rebuild(tiny_model_dir, edit_mask=True)
    model.eval()
    assert model.cfg.edit_mask and not rebuild(tiny_model_dir)[0].cfg.edit_mask
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, *model.cfg.z_shape)).astype(np.float32)
    y = rng.integers(0, 2, (3, model.cfg.n_attr)).astype(np.float32)
    image = ort.InferenceSession(str(tiny_model_dir / "decoder.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"z": z, "attributes": y})[0]
    with torch.no_grad():
        rgb, m = model.decoder(torch.from_numpy(z), torch.from_numpy(y), with_mask=True)
    np.testing.assert_allclose(rgb.numpy(), image, atol=1e-4)  # the same RGB output as the source
    np.testing.assert_allclose(m.numpy(), 1 / (1 + np.exp(-MASK_START_LOGIT)), atol=1e-6)  # ~0.95 everywhere
    path = checkpoint_from_model(tiny_model_dir, synth_data, tmp_path / "ft", faces=64, log=lambda *a: None,
                                 edit_mask=True)
    assert load_checkpoint(path)[1]["model_config"]["edit_mask"] is True


def test_the_export_adds_a_mask_output_and_the_manifest_says_so(mask_model_dir):
    from faceedit.core.model_dir import ModelInfo
    m = json.loads((mask_model_dir / "manifest.json").read_text())
    assert m["edit_mask"]["output"] == "edit_mask"
    outs = {g: [t["name"] for t in m["graphs"][g]["fp32"]["outputs"]] for g in ("decoder", "editor")}
    assert outs == {"decoder": ["image", "edit_mask"], "editor": ["edited", "reconstruction", "probabilities", "edit_mask"]}
    assert m["graphs"]["editor"]["fp32"]["outputs"][-1]["shape"] == ["N", 1, 64, 64]
    assert ModelInfo.load(mask_model_dir).edit_mask


def test_a_manifest_that_claims_a_mask_its_graphs_lack_is_refused(tiny_model_dir, tmp_path):
    from conftest import model_with
    from faceedit.core.model_dir import ModelError, ModelInfo
    assert not ModelInfo.load(tiny_model_dir).edit_mask
    bad = model_with(tiny_model_dir, tmp_path / "bad", edit_mask={"output": "edit_mask"})
    with pytest.raises(ModelError, match="edit_mask"):
        ModelInfo.load(bad)


def _faces(n, h=64, w=64, seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC) for s in small])


@pytest.mark.parametrize("fused", [True, False])
def test_the_engine_edit_is_the_torch_composite(mask_run, mask_model_dir, fused):
    from faceedit.engine import Editor
    from faceedit.train.checkpoint import load_checkpoint
    ed = Editor.load(mask_model_dir, backend="onnxruntime", precision="fp32", auto_strength=False, implied=False,
                     edit_filter=False)
    ed.fused = fused
    assert ed.edit_mask
    crops = list(_faces(3, seed=1))
    request = ed.request({ed.attribute_names[0]: 1, ed.attribute_names[3]: 0})
    out = ed.edit_crops(crops, request)
    assert out.edit_mask.shape == (3, 64, 64) and out.edit_mask.dtype == np.float32
    model, _ = load_checkpoint(mask_run[0] / "last.pt")
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)
    with torch.no_grad():
        edited, recon, _, m = model.edit(x, torch.from_numpy(np.stack([request.target] * 3)),
                                         torch.from_numpy(np.stack([request.mask] * 3)))
        want = composite(x, edited, recon, m)
    np.testing.assert_allclose(out.edit_mask, m[:, 0].numpy(), atol=1e-4)
    np.testing.assert_allclose(out.result, want.numpy(), atol=1e-4)
    expect = np.clip(crops + (want.numpy() - x.numpy()).transpose(0, 2, 3, 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(np.stack(out.images).astype(int) - expect).max() <= 1


class _HalfMask:
    """The editor graph, its edit mask replaced: 0 on the left half, 1 on the right."""

    def __init__(self, graph):
        self.graph = graph

    def run(self, feeds):
        out = list(self.graph.run(feeds))
        m = np.zeros_like(out[-1])
        m[..., m.shape[-1] // 2:] = 1
        return out[:-1] + [m]


@pytest.mark.parametrize("raw", [False, True])
def test_where_the_mask_is_0_nothing_moves_in_the_crop_or_the_photo(mask_model_dir, raw):
    from faceedit.engine import Editor, tensors
    from faceedit.engine.imageio import Photo
    from faceedit.engine.photo import PhotoEditor
    ed = Editor.load(mask_model_dir, backend="onnxruntime", precision="fp32")
    ed._graphs["editor"] = _HalfMask(ed._graph("editor"))
    request = ed.request({ed.attribute_names[0]: 1, ed.attribute_names[1]: 0}, raw=raw)
    crops = [_faces(1, 64, 64, seed=2)[0], _faces(1, 96, 96, seed=3)[0]]
    out = ed.edit_crops(crops, request)
    if not raw:
        x = tensors.to_tensor(crops[:1], 64)[0]  # the model's input, as the engine makes it
        np.testing.assert_array_equal(out.result[0][..., :32], x[..., :32])  # exactly the input at model size
        np.testing.assert_array_equal(out.images[0][:, :32], crops[0][:, :32])
        np.testing.assert_array_equal(out.images[1][:, :47], crops[1][:, :47])  # upsampled: 0 left of its ramp
        assert not np.array_equal(out.images[0][:, 32:], crops[0][:, 32:])
    # a photo: an aligned 96 px face in a bigger picture, pasted back (raw edits gated when pasted)
    photo = np.full((120, 140, 3), 90, np.uint8)
    photo[10:106, 20:116] = crops[1]
    pe = PhotoEditor(ed)
    jobs = pe.prepare(Photo(photo, None), aligned=True)
    jobs[0] = type(jobs[0])(jobs[0].face, crops[1], type(jobs[0].placement)(20, 10, 96))
    got = pe.edit([Photo(photo, None)], request, prepared=[jobs])[0].photo.rgb
    np.testing.assert_array_equal(got[:, :20 + 47], photo[:, :20 + 47])
    assert not np.array_equal(got[10:106, 20 + 48:116], photo[10:106, 20 + 48:116])
