"""The runtime on the tiny exported model: no torch, same results batched or not, every input form, thread
safety, backend and precision selection, and the model directory checks. The model is untrained: these test
mechanics, not beauty."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from faceedit.engine import Editor
from faceedit.engine.backends import NAMES, availability
from faceedit.engine.errors import BackendUnavailable, EngineError, ModelError

CPU_BACKENDS = [n for n, ok, _ in availability() if ok and n in ("onnxruntime", "openvino")]


@pytest.fixture(scope="module")
def editor(tiny_model_dir):
    return Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")


def faces(n, h=64, w=64, seed=0):
    """Smooth random images (a face-like low-frequency field), uint8 RGB."""
    import cv2
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC) for s in small])


def test_engine_loads_and_edits_without_torch(tiny_model_dir, tmp_path):
    # torch made unimportable: any import of it (or of faceedit.train / faceedit.export) fails loudly
    script = f"""
import sys
sys.modules['torch'] = None
import numpy as np
from faceedit.engine import Editor, DynamicBatcher
from faceedit.engine.photo import PhotoEditor
from faceedit.engine.imageio import Photo
for backend in ("auto", "onnxruntime"):
    ed = Editor.load({str(tiny_model_dir)!r}, backend=backend)
    img = np.full((80, 70, 3), 128, np.uint8)
    ed.edit(img, {{"young": 1}}); ed.attributes(img); ed.reconstruct(img); ed.sample(2, {{"male": 1}}, seed=0)
    with DynamicBatcher(ed) as b:
        b.submit(img, {{"smiling": 1}}).result(10)
    PhotoEditor(ed).edit([Photo(img, None)], {{"young": 1}}, aligned=True)
shipped = Editor.load(backend="onnxruntime")  # the shipped model: auto strength re-renders with the head's verdict
assert shipped.auto_strength
shipped.edit(shipped.sample(4, {{"young": 0}}, seed=0), {{"young": 1}})
bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'faceedit.train', 'faceedit.export'))]
assert not [m for m in bad if sys.modules[m] is not None], bad
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batch_of_8_equals_8_single_edits(tiny_model_dir, backend):
    ed = Editor.load(tiny_model_dir, backend=backend, precision="fp32")
    imgs = faces(8, 72, 60)
    change = {"young": 1, "smiling": 0.3, "Black-Hair": 0}
    batch = ed.edit(imgs, change)
    singles = np.stack([ed.edit(im, change) for im in imgs])
    assert batch.shape == imgs.shape and batch.dtype == np.uint8
    assert np.abs(batch.astype(int) - singles).max() <= 1  # uint8 rounding of ~1e-6 float differences
    # and at the float level, the model's outputs agree to float noise
    request = ed.request(change)
    got = ed.edit_crops(list(imgs), request)
    for i in range(8):
        one = ed.edit_crops([imgs[i]], request)
        for name in ("edited", "reconstruction", "result", "before"):
            np.testing.assert_allclose(getattr(got, name)[i:i + 1], getattr(one, name), atol=1e-5)


def test_results_keep_the_input_form_and_size(editor):
    one = faces(1, 90, 75)[0]
    assert editor.edit(one, {"male": 1}).shape == (90, 75, 3)
    lst = editor.edit([one, faces(1, 40, 50)[0]], {"male": 1})
    assert isinstance(lst, list) and [a.shape for a in lst] == [(90, 75, 3), (40, 50, 3)]
    arr = editor.edit(faces(3, 64, 64), {"male": 1})
    assert isinstance(arr, np.ndarray) and arr.shape == (3, 64, 64, 3)
    probs = editor.attributes(one)
    assert isinstance(probs, dict) and list(probs) == editor.attribute_names
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    batch = editor.attributes(faces(3))
    assert batch.shape == (3, len(editor.attribute_names))
    assert editor.reconstruct(one).shape == (90, 75, 3)
    grey, rgba = one[:, :, 0], np.dstack([one, np.full(one.shape[:2], 255, np.uint8)])
    assert editor.edit(grey, {"male": 1}).shape == (90, 75, 3)
    np.testing.assert_array_equal(editor.edit(rgba, {"male": 1}), editor.edit(one, {"male": 1}))


def test_no_change_is_the_identity_and_raw_is_the_decoder(editor):
    img = faces(1, 100, 80, seed=3)[0]
    # residual edit with nothing set: edited == reconstruction, so the photo comes back bit for bit
    np.testing.assert_array_equal(editor.edit(img, {}), img)
    raw = editor.edit(img, {}, raw=True)
    assert raw.shape == img.shape and not np.array_equal(raw, img)
    np.testing.assert_array_equal(raw, editor.reconstruct(img))


def test_residual_edit_adds_the_upsampled_difference(editor):
    import cv2
    img = faces(1, 128, 128, seed=4)[0]
    out = editor.edit_crops([img], editor.request({"young": 1}))
    edited, recon = out.edited, out.reconstruction
    d = cv2.resize(np.ascontiguousarray((edited[0] - recon[0]).transpose(1, 2, 0)) * 127.5, (128, 128),
                   interpolation=cv2.INTER_LINEAR)
    expect = np.clip(img + d + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(editor.edit(img, {"young": 1}), expect)


def test_fused_editor_graph_and_separate_graphs_agree(tiny_model_dir):
    fused = Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")
    split = Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")
    split.fused = False  # the path int8 models take (they have no fused graph)
    imgs = list(faces(4, seed=5))
    a = fused.edit_crops(imgs, fused.request({"smiling": 1, "bald": 0.5}))
    b = split.edit_crops(imgs, split.request({"smiling": 1, "bald": 0.5}))
    for name in ("edited", "reconstruction", "before"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5)


def _with_edit_strength(model_dir, dest, strength):
    from tests.conftest import model_with
    return model_with(model_dir, dest, edit_strength=strength)


def test_edit_gain_from_the_manifest_scales_set_values(tiny_model_dir, tmp_path):
    gained = _with_edit_strength(tiny_model_dir, tmp_path / "gained", {"gain": 2.0})
    plain = Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")
    strong = Editor.load(gained, backend="onnxruntime", precision="fp32")
    assert set(plain.model.edit_gains) == {1.0} and set(strong.model.edit_gains) == {2.0}
    values = np.repeat(np.array([[0.0], [0.5], [1.0]], np.float32), len(strong.attribute_names), 1)
    np.testing.assert_allclose(strong._targets(values, np.zeros_like(values), None)[0], 2 * values - 0.5)
    imgs = faces(3, seed=7)
    # value 1 at gain 2 is value 1.5 at gain 1; faces' own (unset) attributes are untouched by the gain
    np.testing.assert_array_equal(strong.edit(imgs, {"smiling": 1}), plain.edit(imgs, {"smiling": 1.5}))
    np.testing.assert_array_equal(strong.edit(imgs, {"smiling": 0.5}), plain.edit(imgs, {"smiling": 0.5}))
    np.testing.assert_array_equal(strong.reconstruct(imgs), plain.reconstruct(imgs))
    assert not np.array_equal(strong.edit(imgs, {"smiling": 1}), plain.edit(imgs, {"smiling": 1}))


def test_per_attribute_gain_scales_only_its_attribute(tiny_model_dir, tmp_path):
    gained = _with_edit_strength(tiny_model_dir, tmp_path / "gained", {"gain": 1.0, "per_attribute": {"Smiling": 2.0}})
    plain = Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")
    strong = Editor.load(gained, backend="onnxruntime", precision="fp32")
    i = strong.attribute_names.index("Smiling")
    assert strong.model.edit_gains[i] == 2.0 and sum(strong.model.edit_gains) == len(strong.attribute_names) + 1
    ones = np.ones((2, len(strong.attribute_names)), np.float32)
    expected = ones.copy()
    expected[:, i] = 1.5
    np.testing.assert_allclose(strong._targets(ones, np.zeros_like(ones), None)[0], expected)
    imgs = faces(3, seed=8)
    np.testing.assert_array_equal(strong.edit(imgs, {"smiling": 1}), plain.edit(imgs, {"smiling": 1.5}))
    np.testing.assert_array_equal(strong.edit(imgs, {"young": 1}), plain.edit(imgs, {"young": 1}))
    np.testing.assert_array_equal(strong.edit(imgs, {"young": 0, "smiling": 1}),
                                  plain.edit(imgs, {"young": 0, "smiling": 1.5}))


@pytest.mark.parametrize("strength", [{"gain": 0}, {"per_attribute": {"Smiling": "strong"}},
                                      {"per_attribute": {"Smiling": float("nan")}}])
def test_a_bad_edit_gain_in_the_manifest_is_refused(tiny_model_dir, tmp_path, strength):
    bad = _with_edit_strength(tiny_model_dir, tmp_path / "bad", strength)
    with pytest.raises(ModelError, match="manifest.json"):
        Editor.load(bad, backend="onnxruntime", precision="fp32")


def test_sample_draws_from_the_fitted_latent_prior(editor, tiny_model_dir):
    with np.load(tiny_model_dir / editor.model.latent_prior) as f:
        mean, factor = f["mean"], f["factor"].astype(np.float64)
    z = editor.draw_latents(4000, seed=1).reshape(4000, -1)
    scale = np.sqrt((factor ** 2).sum(1))  # per-dimension standard deviation of the fit
    assert np.all(np.abs(z.mean(0) - mean) < 0.1 * scale + 1e-3)
    np.testing.assert_allclose(z.std(0), scale, rtol=0.1, atol=1e-3)
    assert editor.sample(2, seed=3).shape == (2, 64, 64, 3)


def test_sample_is_seeded(editor):
    a = editor.sample(5, {"male": 1}, seed=7)
    assert a.shape == (5, editor.size, editor.size, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, editor.sample(5, {"male": 1}, seed=7))
    assert not np.array_equal(a, editor.sample(5, {"male": 1}, seed=8))


def test_attribute_names_and_values_are_checked(editor):
    with pytest.raises(ValueError, match="Did you mean 'young'"):
        editor.edit(faces(1)[0], {"yuong": 1})
    for v in (2.5, -1.5, float("nan")):
        with pytest.raises(EngineError, match="out of range"):
            editor.edit(faces(1)[0], {"young": v})
    for v in (-1, 0, 0.5, 1, 2):  # the whole documented range works, extrapolation included
        editor.edit(faces(1)[0], {"Young": v})
    with pytest.raises(EngineError, match="uint8"):
        editor.edit(np.zeros((8, 8, 3), np.float32), {"young": 1})


def test_threads_share_one_editor(editor):
    imgs = faces(16, seed=9)
    expect = [editor.edit(im, {"young": 1}) for im in imgs]
    errors, got = [], [None] * 16

    def worker(i):
        try:
            for _ in range(5):
                got[i] = editor.edit(imgs[i], {"young": 1})
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for a, b in zip(got, expect):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_auto_backend_says_which_and_falls_back(tiny_model_dir, monkeypatch):
    ed = Editor.load(tiny_model_dir)
    expected = "openvino" if "openvino" in CPU_BACKENDS else "onnxruntime"
    assert ed.backend.name == expected and "auto" in ed.selection
    from faceedit.engine.backends.openvino import OpenVINOCPU
    monkeypatch.setattr(OpenVINOCPU, "available", classmethod(lambda cls: (False, "not installed (test)")))
    ed = Editor.load(tiny_model_dir)
    assert ed.backend.name == "onnxruntime"
    assert any("openvino" in s for s in ed.skipped)


def test_backend_and_precision_errors(tiny_model_dir):
    with pytest.raises(BackendUnavailable, match="unknown backend 'nope'"):
        Editor.load(tiny_model_dir, backend="nope")
    with pytest.raises(BackendUnavailable, match="not available"):
        Editor.load(tiny_model_dir, backend="onnxruntime-cuda")  # no GPU ONNX Runtime in CI
    with pytest.raises(BackendUnavailable, match="has no int8"):
        Editor.load(tiny_model_dir, backend="onnxruntime", precision="int8")  # exported without variants
    assert set(NAMES) >= {"onnxruntime", "openvino", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt"}


def test_missing_or_tampered_model_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Editor.load(tmp_path / "nowhere")
    bad = tmp_path / "model"
    shutil.copytree(tiny_model_dir, bad)
    data = bytearray((bad / "decoder.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bad / "decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        Editor.load(bad)
    m = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert m["format"] == "faceedit-model"


def test_model_by_name(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FACEEDIT_MODELS", str(tiny_model_dir.parent))
    assert Editor.load(tiny_model_dir.name, backend="onnxruntime").model.path == tiny_model_dir
    with pytest.raises(ModelError, match="not found"):
        Editor.load("no-such-model")


def test_an_edit_request_is_resolved_once_and_passes_through(monkeypatch):
    """--set is parsed into one EditRequest at the edge; the photo path hands that object down unchanged."""
    from faceedit.engine import EditRequest, EngineError
    from faceedit.cli.photo_jobs import Job, run_jobs
    from faceedit.engine.photo import PhotoEditor
    from faceedit.engine.imageio import write_photo
    import faceedit.engine.request as request_module
    editor = Editor.load(backend="onnxruntime", precision="fp32")
    req = editor.request({"SMILING": 1, "young": 0.25})
    assert isinstance(req, EditRequest) and req.values == {"Smiling": 1.0, "Young": 0.25}
    assert editor.request(req) is req
    # the edit's options ride on the request; each can only turn a step off (or raw on) for this request
    assert req.options == (True, True, True, False)  # auto_strength, implied, filtered, raw
    off = editor.request(req, auto_strength=False, raw=True)
    assert off is not req and off.options == (False, True, True, True) and off.values == req.values
    assert editor.request(off) is off and editor.request(off, auto_strength=True).auto_strength is False
    assert editor.request({"young": 1}, implied=False, filtered=False).options == (True, False, False, False)
    with pytest.raises(EngineError, match="Did you mean .smiling"):
        editor.request({"smilng": 1})
    calls = []
    real = request_module.resolve
    monkeypatch.setattr(request_module, "resolve", lambda *a: calls.append(a) or real(*a))
    face = np.zeros((64, 64, 3), np.uint8) + 128
    with tempfile.TemporaryDirectory() as d:
        src = write_photo(Path(d) / "a.png", face)
        outs = list(run_jobs(PhotoEditor(editor), [Job(src, Path(d) / "b.png", False)], req, aligned=True))
        assert outs[0].error is None and outs[0].written.is_file()
    assert calls == []  # the request was not resolved again on its way to the decoder


def test_one_request_per_crop_each_with_its_own_values_and_options():
    """edit_crops with a list of requests (values and options differing row to row) gives each crop exactly
    what it gets alone; and a request's option is the same edit as an Editor loaded with that step off. The
    shipped model: it has auto strength, implied rules and an edit filter."""
    ed = Editor.load(backend="onnxruntime", precision="fp32")
    crops = list(ed.sample(6, {"young": 0, "male": 1}, seed=3))
    asks = [ed.request({"young": 1}), ed.request({"black_hair": 1}, filtered=False),
            ed.request({"mustache": 1}, implied=False), ed.request({"young": 1}, auto_strength=False),
            ed.request({"smiling": 0}, raw=True), ed.request({"bald": 1})]
    mixed = ed.edit_crops(crops, asks)
    n, a, s = len(crops), len(ed.attribute_names), ed.size
    assert len(mixed.images) == n and mixed.before.shape == mixed.multipliers.shape == mixed.implied.shape == (n, a)
    assert mixed.edited.shape == mixed.reconstruction.shape == mixed.result.shape == (n, 3, s, s)
    assert mixed.implied.dtype == bool and (mixed.multipliers[3] == 1).all()  # fixed strength: never pushed
    np.testing.assert_array_equal(mixed.result[4], mixed.edited[4])  # raw: the decoder's output is the result
    for i, (crop, r) in enumerate(zip(crops, asks)):
        alone = ed.edit_crops([crop], r)
        np.testing.assert_array_equal(mixed.images[i], alone.images[0], err_msg=f"row {i}")
        for name in ("before", "edited", "reconstruction", "result", "multipliers", "implied"):
            np.testing.assert_allclose(getattr(mixed, name)[i], getattr(alone, name)[0], atol=1e-5, err_msg=name)
    with pytest.raises(EngineError, match="2 edit requests for 6 crops"):
        ed.edit_crops(crops, asks[:2])
    for option, switch in (("auto_strength", "auto_strength"), ("implied", "implied"), ("filtered", "edit_filter")):
        off = Editor.load(backend="onnxruntime", precision="fp32", **{switch: False})
        for change in ({"young": 1}, {"black_hair": 1}, {"mustache": 1}):
            np.testing.assert_array_equal(np.stack(ed.edit(crops, ed.request(change, **{option: False}))),
                                          np.stack(off.edit(crops, change)), err_msg=f"{option} {change}")
