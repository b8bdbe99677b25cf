"""The guided filter on the edit's change (faceedit.engine.edit_filter) and the Editor that applies it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from faceedit.engine import Editor, EngineError
from faceedit.engine.edit_filter import EditFilter, GuidedFilter
from faceedit.engine.tensors import to_tensor


def faces(n, h, w, seed):
    """Smooth random uint8 RGB images (a face-like low-frequency field)."""
    import cv2
    small = np.random.default_rng(seed).integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    return [cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC) for s in small]


def _scene(size=64):
    """A guide with flat regions and one sharp vertical edge (dark hair | light skin), in [-1, 1]."""
    x = np.empty((1, 3, size, size), np.float32)
    x[:, :, :, : size // 2] = np.array([-0.6, -0.7, -0.75], np.float32)[:, None, None]
    x[:, :, :, size // 2:] = np.array([0.5, 0.2, 0.1], np.float32)[:, None, None]
    return x


def _stripes(size=64, period=2, amp=0.2):
    col = np.where((np.arange(size) // (period // 2)) % 2 == 0, amp, -amp).astype(np.float32)
    return np.broadcast_to(col[None, None, None, :], (1, 3, size, size)).copy()


def _laplacian_energy(img):
    d = img[..., 1:-1, 1:-1] * 4 - img[..., :-2, 1:-1] - img[..., 2:, 1:-1] - img[..., 1:-1, :-2] - img[..., 1:-1, 2:]
    return float((d ** 2).mean())


def test_a_flat_change_passes_unchanged_and_no_change_stays_none():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    f = GuidedFilter(2, 1e-3)
    np.testing.assert_allclose(f.filter(x, np.full_like(x, 0.3)), 0.3, atol=1e-5)
    assert not f.filter(x, np.zeros_like(x)).any()


def test_stripes_the_face_does_not_have_are_removed_and_the_colour_change_kept():
    x, f = _scene(), GuidedFilter(2, 1e-3)
    shift = np.zeros_like(x)
    shift[:, :, :, :32] = np.array([0.5, 0.35, 0.1], np.float32)[:, None, None]  # dark hair -> blond
    out = f.filter(x, shift + _stripes())
    inner = (slice(None), slice(None), slice(4, 60), slice(4, 28))  # inside the hair, off the border
    # the stripes: over 95% of their high-frequency energy gone; the colour change within 2% of its size
    assert _laplacian_energy(out[inner]) < 0.05 * _laplacian_energy(_stripes()[inner])
    np.testing.assert_allclose(out[inner].mean((2, 3))[0], [0.5, 0.35, 0.1], atol=0.01)


def test_a_change_that_follows_the_faces_edge_stays_sharp():
    x, f = _scene(), GuidedFilter(4, 1e-3)
    change = np.zeros_like(x)
    change[:, :, :, :32] = 0.4  # only the hair side changes, up to its edge
    out = f.filter(x, change)
    row = out[0, 0, 32]
    assert row[29] > 0.38 and abs(row[34]) < 0.02  # three pixels either side of the edge
    blurred = GuidedFilter(4, 1e4).filter(x, change)[0, 0, 32]  # eps huge: a plain box blur
    assert blurred[29] < 0.36 and blurred[34] > 0.05


def test_applied_at_the_crops_size_it_matches_the_model_size_and_follows_the_larger_guide():
    x, f = _scene(), GuidedFilter(2, 1e-3)
    change = np.zeros_like(x)
    change[:, :, :, :32] = 0.4
    coef = f.coefficients(x, change)[:, 0]
    crop64 = np.clip((x[0].transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(f.apply(coef, crop64), f.filter(x, change)[0].transpose(1, 2, 0), atol=0.01)
    # a 4x crop whose edge is sharp: the change ends at the crop's edge, not in a 4-px ramp around it
    import cv2
    crop256 = cv2.resize(crop64, (256, 256), interpolation=cv2.INTER_NEAREST)
    row = f.apply(coef, crop256)[128, :, 0]
    assert row[126] > 0.35 and abs(row[130]) < 0.05


@pytest.mark.parametrize("entry", [{"kind": "median", "radius": 2, "eps": 1e-3}, {"kind": "guided", "radius": 0,
                                   "eps": 1e-3}, {"kind": "guided", "radius": 2}, "guided"])
def test_a_bad_filter_entry_in_the_manifest_is_refused(tiny_model_dir, tmp_path, entry):
    bad = _with_filter(tiny_model_dir, tmp_path / "bad", entry)
    with pytest.raises(EngineError, match="edit_filter"):
        Editor.load(bad, backend="onnxruntime", precision="fp32")


def _with_filter(model_dir, dest, entry):
    from tests.conftest import model_with
    return model_with(model_dir, dest, edit_filter=entry)


def test_the_editor_filters_the_change_where_the_manifest_asks(tiny_model_dir, tmp_path):
    filtered_dir = _with_filter(tiny_model_dir, tmp_path / "filtered", {"kind": "guided", "radius": 2, "eps": 1e-3})
    plain = Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")
    filt = Editor.load(filtered_dir, backend="onnxruntime", precision="fp32")
    off = Editor.load(filtered_dir, backend="onnxruntime", precision="fp32", edit_filter=False)
    assert filt.edit_filter and not plain.edit_filter and not off.edit_filter
    imgs = faces(3, 96, 80, seed=11)
    x = to_tensor(imgs, filt.size)
    changes = {"young": 1, "male": 0}
    out = filt.edit_crops(list(imgs), filt.request(changes))
    # model size: x + the filtered change; the unfiltered editor (or request): x + the change itself
    np.testing.assert_allclose(out.result, np.clip(x + GuidedFilter(2, 1e-3).filter(x, out.edited - out.reconstruction),
                                                   -1, 1), atol=1e-6)
    for unfiltered in (plain.edit_crops(list(imgs), changes),
                       filt.edit_crops(list(imgs), filt.request(changes, filtered=False))):
        np.testing.assert_allclose(unfiltered.edited, out.edited, atol=1e-6)
        np.testing.assert_allclose(unfiltered.result, np.clip(x + out.edited - out.reconstruction, -1, 1), atol=1e-6)
    # crops: filtered differs from plain; turned off (for the editor or the request) it is plain; nothing set
    # is still the photo bit for bit
    np.testing.assert_array_equal(np.stack(filt.edit(imgs, filt.request(changes, filtered=False))),
                                  np.stack(plain.edit(imgs, changes)))
    assert not np.array_equal(np.stack(filt.edit(imgs, changes)), np.stack(plain.edit(imgs, changes)))
    np.testing.assert_array_equal(np.stack(off.edit(imgs, changes)), np.stack(plain.edit(imgs, changes)))
    np.testing.assert_array_equal(filt.edit(imgs[0], {}), imgs[0])
    # the change that reaches the crop is smoother than the unfiltered one (the tiny model's is noisy)
    d_filt = np.stack(filt.edit(imgs, changes)).astype(np.float32) - np.stack(imgs)
    d_plain = np.stack(plain.edit(imgs, changes)).astype(np.float32) - np.stack(imgs)
    assert _laplacian_energy(d_filt.transpose(0, 3, 1, 2)) < 0.7 * _laplacian_energy(d_plain.transpose(0, 3, 1, 2))


def test_per_attribute_filters_choose_by_what_the_user_set():
    names = ["Bald", "Eyeglasses", "Young"]
    f = EditFilter.from_manifest({"kind": "guided", "per_attribute": {"Bald": {"radius": 2, "eps": 1e-3},
                                                                      "Young": {"radius": 4, "eps": 1e-2}}}, names)
    assert f.for_row([1, 0, 0]) == GuidedFilter(2, 1e-3)
    assert f.for_row([0, 1, 0]) is None                      # glasses: structure a filter would blur away
    assert f.for_row([1, 1, 0]) is None                      # a mixed request keeps what glasses add
    assert f.for_row([1, 0, 1]) == GuidedFilter(4, 1e-2)     # both filtered: the smoother of the two
    assert f.for_row([0, 0, 0]) is None
    assert f.to_manifest(names)["per_attribute"] == {"Bald": {"radius": 2, "eps": 1e-3}, "Young": {"radius": 4, "eps": 1e-2}}
    one = EditFilter.from_manifest({"kind": "guided", "radius": 2, "eps": 1e-3}, names)
    assert one.to_manifest(names) == {"kind": "guided", "radius": 2, "eps": 1e-3}
    with pytest.raises(ValueError, match="Mustache"):
        EditFilter.from_manifest({"kind": "guided", "per_attribute": {"Mustache": {"radius": 2, "eps": 1e-3}}}, names)


def test_the_editor_filters_only_the_attributes_listed(tiny_model_dir, tmp_path):
    from faceedit.engine import DynamicBatcher
    per = _with_filter(tiny_model_dir, tmp_path / "per", {"kind": "guided",
                                                          "per_attribute": {"Young": {"radius": 2, "eps": 1e-3}}})
    plain = Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")
    filt = Editor.load(per, backend="onnxruntime", precision="fp32")
    imgs = faces(2, 80, 80, seed=12)
    young, male, both = {"young": 1}, {"male": 0}, {"young": 1, "male": 0}
    assert not np.array_equal(np.stack(filt.edit(imgs, young)), np.stack(plain.edit(imgs, young)))
    np.testing.assert_array_equal(np.stack(filt.edit(imgs, male)), np.stack(plain.edit(imgs, male)))
    np.testing.assert_array_equal(np.stack(filt.edit(imgs, both)), np.stack(plain.edit(imgs, both)))
    # the batcher (each request its own attributes, in one batch) gives the Editor's pixels
    with DynamicBatcher(filt, max_batch=4, max_delay_ms=50) as b:
        futures = [b.submit(im, ch) for im in imgs for ch in (young, male)]
        got = [fu.result(timeout=60) for fu in futures]
    want = [filt.edit(im, ch) for im in imgs for ch in (young, male)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_export_update_writes_and_removes_the_filter(tiny_model_dir, tmp_path):
    from tests.conftest import cli
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    r = cli("export-update", "--model", model, "--edit-filter", "young=2,0.001", "--edit-filter", "Male=4,0.01",
            "--edit-filter-note", "chosen on validation")
    assert r.exit_code == 0, r.output
    entry = json.loads((model / "manifest.json").read_text())["edit_filter"]
    assert entry["per_attribute"] == {"Male": {"radius": 4, "eps": 0.01}, "Young": {"radius": 2, "eps": 0.001}}
    assert entry["chosen"] == "chosen on validation"
    assert Editor.load(model, backend="onnxruntime", precision="fp32").edit_filter
    r = cli("export-update", "--model", model, "--edit-filter", "Mustachio=2,0.001")
    assert r.exit_code != 0 and "Mustachio" in r.output and "Traceback" not in r.output
    assert "Male" in json.loads((model / "manifest.json").read_text())["edit_filter"]["per_attribute"]  # untouched
    r = cli("export-update", "--model", model, "--edit-filter", "off")
    assert r.exit_code == 0, r.output
    assert "edit_filter" not in json.loads((model / "manifest.json").read_text())


def test_bench_times_the_filter_on_an_attribute_it_filters(tiny_model_dir, tmp_path):
    from faceedit.bench.plan import make_plan
    from faceedit.bench.report import edit_filter_line
    from faceedit.bench.suite import measure_edit_filter
    per = _with_filter(tiny_model_dir, tmp_path / "per", {"kind": "guided",
                                                          "per_attribute": {"Young": {"radius": 2, "eps": 1e-3}}})
    out = measure_edit_filter(Editor.load(per, backend="onnxruntime", precision="fp32"), make_plan("tiny"),
                              log=lambda *a: None)
    assert out["attribute"] == "Young" and out["filter"] == {"radius": 2, "eps": 1e-3}
    for key in ("off_batch_1", "on_batch_1", "off_batch_2", "on_batch_2"):
        assert out[key]["p50_ms"] > 0  # timings are never asserted, only that both ways were timed
    assert "radius 2" in edit_filter_line({"edit_filter": out})
    plain = Editor.load(tiny_model_dir, backend="onnxruntime", precision="fp32")
    assert "absent" in measure_edit_filter(plain, make_plan("tiny"), log=lambda *a: None)

