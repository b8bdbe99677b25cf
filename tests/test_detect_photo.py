"""The photo path on the BlazeFace detector: --face all edits every face in one batch and skips (with a line)
a face too small to edit, --detector picks the detector, the pasted change fades out before the face mask
ends (no seam) and a no-op edit leaves the face as it was, and plain JPEGs decode to Pillow's pixels.
Photos are made here from scikit-image's astronaut (public domain)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import cli
from faceedit.engine import align as A

pytest.importorskip("skimage")
from faceedit.bench import detection as D  # noqa: E402

def group_photo(path):
    """Two faces big enough to edit (eyes 22 and 32 px apart) and one too small (10 px), on a faceless
    background, in a small photo (where the detector finds faces down to ~20 px)."""
    canvas = D._background(200, 420)
    eyes = [D.paste(canvas, D.similarity(d, a, c), D.HEAD) for d, a, c in
            ((10, 0, (70, 90)), (22, -8, (190, 85)), (32, 5, (320, 80)))]
    Image.fromarray(canvas).save(path)
    return canvas, eyes


def test_face_all_edits_every_face_and_skips_one_too_small(model_args, tmp_path):
    src = tmp_path / "group.png"
    img, eyes = group_photo(src)
    out = tmp_path / "out.png"
    r = cli("run", "--image", src, "--set", "smiling=0.5", "--face", "all", "--out", out, "--json", *model_args)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output[r.output.index("{"):])
    faces = rep["faces"]
    assert len(faces) == 3
    skipped = [f for f in faces if "skipped" in f]
    assert len(skipped) == 1 and "too small to edit" in skipped[0]["skipped"]
    x, y, w, h = skipped[0]["box"]
    assert abs(x + w / 2 - 70) < 10  # the tiny face, and only it
    edited = np.asarray(Image.open(out).convert("RGB"))
    changed = np.any(edited != img, axis=2)
    for f in faces:
        x, y, w, h = f["box"]
        region = changed[max(0, y):y + h, max(0, x):x + w]
        assert (region.any() if "skipped" not in f else not region.any()), f
        assert "blazeface" in f["found"] and "landmarks" in f["found"]
    plain = cli("run", "--image", src, "--set", "smiling=1", "--face", "all", "--out", tmp_path / "o2.png", *model_args)
    assert plain.exit_code == 0 and "skipped: too small to edit" in plain.output


def test_a_lone_face_too_small_is_an_error_not_an_edit(model_args, tmp_path):
    canvas = D._background(240, 300)
    D.paste(canvas, D.similarity(10.0, 0, (150, 110)), D.HEAD)
    src = tmp_path / "small.png"
    Image.fromarray(canvas).save(src)
    r = cli("run", "--image", src, "--set", "young=1", "--out", tmp_path / "o.png", *model_args)
    assert r.exit_code == 2 and "too small to edit" in r.output
    assert len(r.output.strip().splitlines()[-1]) < 300 and not (tmp_path / "o.png").exists()


def test_detector_flag(model_args, tmp_path):
    src = tmp_path / "astronaut.png"
    Image.fromarray(D._astronaut()).save(src)
    r = cli("attrs", "--image", src, "--detector", "haar", "--json", *model_args)
    assert r.exit_code == 0, r.output
    assert "haar" in json.loads(r.output[r.output.index("{"):])["faces"][0]["found"]
    r = cli("run", "--image", src, "--set", "young=1", "--detector", "viola", *model_args)
    assert r.exit_code == 2 and "unknown detector" in r.output


@pytest.fixture(scope="module")
def shipped():
    """The shipped model at fixed strength and literal: a value set is the value the decoder gets."""
    from faceedit.engine import Editor, PhotoEditor
    return PhotoEditor(Editor.load(backend="onnxruntime", precision="fp32", auto_strength=False, implied=False))


def _mask_in_photo(pe, photo_rgb, face):
    """The face mask the paste used, carried into the photo's pixels."""
    crop, al = A.align(photo_rgb, face.eyes, pe.crop_eyes, pe.editor.size)
    m = A.face_mask(al.side, A.to_crop(al, face.landmarks))
    out = np.zeros(photo_rgb.shape[:2], np.float32)
    x0, y0, x1, y1 = al.box
    mm = al.matrix.copy()
    mm[:, 2] += mm[:, :2] @ np.array([x0, y0], np.float64)
    out[y0:y1, x0:x1] = cv2.warpAffine(m, mm, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def _cases():
    keep = {"scaled, 40-px face in 1024x768", "scaled, 200-px face in 1024x768", "scaled, 700-px face in 1024x768",
            "rotated +30 degrees", "tight crop, face 100% of a 115-px frame", "three faces side by side"}
    return [c for c in D.synthetic_cases() if c.name in keep]


def test_no_op_edit_leaves_every_face_size_as_it_was(shipped):
    from faceedit.engine.imageio import Photo
    gains = dict(zip(shipped.editor.attribute_names, shipped.editor.model.edit_gains))
    for case in _cases():
        photo = Photo(case.rgb, None)
        base = shipped.edit([photo], {}, which="all")[0]
        for k, face in enumerate(base.faces):
            # each attribute the decoder takes unscaled, set to the value the face already has
            for name in [n for n, g in gains.items() if g == 1.0][:4]:
                value = int(face.before[name] > 0.5)
                out = shipped.edit([photo], {name: value}, which="all")[0]
                x, y, w, h = face.box
                diff = np.abs(out.photo.rgb.astype(int) - case.rgb)[max(0, y):y + h, max(0, x):x + w]
                assert diff.mean() <= 2.0, (case.name, k, name, diff.mean())


def test_the_pasted_change_fades_out_inside_the_mask(shipped):
    from faceedit.engine.imageio import Photo
    for case in _cases():
        photo = Photo(case.rgb, None)
        faces = shipped.faces(case.rgb)
        out = shipped.edit([photo], {"blond_hair": 1, "eyeglasses": 1}, which="all")[0].photo.rgb
        diff = np.abs(out.astype(int) - case.rgb).max(axis=2)
        mask = np.zeros(case.rgb.shape[:2], np.float32)
        for f in faces:
            mask = np.maximum(mask, _mask_in_photo(shipped, case.rgb, f))
        core = diff[mask >= 0.5].mean()
        assert core > 2, case.name                                # a real edit, not a no-op
        if (mask == 0).any():                                     # (a tight crop's mask covers it all)
            assert diff[mask == 0].max() <= 1, case.name          # nothing outside the faces
        ring = (mask > 0) & (mask < 0.05)
        # faded to a tenth of the face's change before the mask ends: no step where the edit stops
        assert diff[ring].mean() <= 0.1 * core + 1, (case.name, diff[ring].mean(), core)


@pytest.mark.parametrize("side", [64, 100, 333, 1024])  # a crop is never smaller than the model's input
def test_face_mask_is_zero_at_the_crop_border_and_smooth(side):
    for marks in (None, [[0.365, 0.432], [0.628, 0.432], [0.55, 0.6], [0.56, 0.74]]):
        m = A.face_mask(side, marks)
        assert m[0].max() == m[-1].max() == m[:, 0].max() == m[:, -1].max() == 0.0
        assert m[side // 2, side // 2] == pytest.approx(1.0, abs=1e-3)
        # fades over >= 2 px sigma: about a Gaussian edge's slope per pixel, 1 / (sqrt(2 pi) * 2) = 0.2
        steps = max(np.abs(np.diff(m, axis=0)).max(), np.abs(np.diff(m, axis=1)).max())
        assert steps < 0.22


def test_face_mask_follows_a_turned_face():
    side = 200
    frontal = A.face_mask(side, [[0.365, 0.432], [0.628, 0.432], [0.488, 0.591], [0.493, 0.723]])
    turned = A.face_mask(side, [[0.365, 0.432], [0.628, 0.432], [0.56, 0.59], [0.56, 0.72]])
    xs = np.arange(side)
    cx = lambda m: float((m.sum(0) * xs).sum() / m.sum())  # noqa: E731
    assert cx(turned) > cx(frontal) + 0.02 * side


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_decodes_to_pillows_pixels_upright(tmp_path, orientation):
    from faceedit.engine.imageio import read_photo
    rng = np.random.default_rng(orientation)
    base = rng.integers(0, 256, (6, 9, 3)).astype(np.uint8).repeat(12, 0).repeat(12, 1)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.jpg"
    Image.fromarray(base).save(p, exif=exif, quality=90)
    ref = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
    got = read_photo(p).rgb
    assert got.shape == ref.shape and np.array_equal(got, ref)


def test_truncated_jpeg_still_fails_in_one_line(tmp_path):
    from faceedit.engine.errors import ImageError
    from faceedit.engine.imageio import read_photo
    p = tmp_path / "t.jpg"
    Image.fromarray(D._astronaut()).save(p, quality=90)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        read_photo(p)
