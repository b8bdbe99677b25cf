"""`faceedit run / attrs / sample` end to end on the tiny exported model: a real photo (skimage's astronaut,
public domain) detected, edited and pasted back with the background untouched; input formats; and every
user error as one line, a non-zero exit and no file written."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cli


@pytest.fixture()
def face_file(synth_data, tmp_path):
    """One synthetic face in CelebA framing (an --aligned input)."""
    src = sorted((Path(synth_data) / "img_align_celeba").iterdir())[0]
    dst = tmp_path / "face.png"
    Image.open(src).convert("RGB").save(dst)
    return dst


def test_astronaut_is_detected_edited_and_pasted_back(model_args, tmp_path):
    skd = pytest.importorskip("skimage.data")
    img = skd.astronaut()
    src = tmp_path / "astronaut.png"
    Image.fromarray(img).save(src)
    r = cli("run", "--image", src, "--set", "young=1", "--set", "smiling=0.5", "--json", *model_args)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    out = np.asarray(Image.open(report["out"]).convert("RGB"))
    assert Path(report["out"]).name == "astronaut.edited.png" and out.shape == img.shape
    x, y, w, h = report["faces"][0]["box"]
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # her face, not the flag or the shuttle
    changed = np.any(out != img, axis=2)
    assert changed.sum() > 500
    ys, xs = np.nonzero(changed)
    cx, cy = x + w / 2, y + h / 2
    # every changed pixel lies in the face region (the aligned crop's footprint around the face)
    assert np.abs(xs - cx).max() < 1.5 * w and np.abs(ys - cy).max() < 1.7 * h
    outside = np.ones(changed.shape, bool)
    outside[max(0, int(cy - 1.7 * h)):int(cy + 1.7 * h), max(0, int(cx - 1.5 * w)):int(cx + 1.5 * w)] = False
    np.testing.assert_array_equal(out[outside], img[outside])
    assert set(report["faces"][0]["attributes_after"]) == set(report["faces"][0]["attributes"])


def test_default_names_never_overwrite(model_args, face_file):
    for expected in ("face.edited.png", "face.edited-1.png"):
        r = cli("run", "--image", face_file, "--aligned", "--set", "male=1", *model_args)
        assert r.exit_code == 0, r.output
        assert (face_file.parent / expected).is_file()
        # written through a temp file, yet with the mode a plain open() gives (not mkstemp's 0600)
        umask = os.umask(0)
        os.umask(umask)
        assert (face_file.parent / expected).stat().st_mode & 0o777 == 0o666 & ~umask
        assert "->" in r.output and "<- set" in r.output  # before -> after attributes


@pytest.mark.parametrize("kind", ["grey", "rgba", "16bit", "webp", "bmp", "jpeg"])
def test_input_formats(model_args, face_file, tmp_path, kind):
    rgb = np.asarray(Image.open(face_file))
    src = tmp_path / {"webp": "in.webp", "bmp": "in.bmp", "jpeg": "in.jpg"}.get(kind, "in.png")
    if kind == "grey":
        Image.fromarray(rgb[:, :, 1]).save(src)
    elif kind == "rgba":
        Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)]), "RGBA").save(src)
    elif kind == "16bit":
        Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(src)
    else:
        Image.fromarray(rgb).save(src)
    r = cli("run", "--image", src, "--aligned", "--set", "young=0", *model_args)
    assert r.exit_code == 0, r.output
    out = Image.open(src.with_name(f"in.edited{src.suffix}"))
    assert out.size == (rgb.shape[1], rgb.shape[0])
    if kind == "rgba":
        assert out.mode == "RGBA" and np.all(np.asarray(out)[:, :, 3] == 77)


def test_exif_rotation_is_honoured(model_args, face_file, tmp_path):
    im = Image.open(face_file)
    src = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    im.transpose(Image.Transpose.ROTATE_90).save(src, exif=exif)
    r = cli("run", "--image", src, "--aligned", "--set", "young=1", "--out", tmp_path / "o.png", *model_args)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "o.png").size == im.size  # upright, as the viewer shows it


@pytest.mark.parametrize("source, expected", [(("jpg", 2), 2), (("jpg", 0), 0), (("png", None), 0)])
def test_jpeg_output_keeps_the_sources_chroma_subsampling(model_args, face_file, tmp_path, source, expected):
    from PIL import JpegImagePlugin
    suffix, sampling = source
    src = tmp_path / f"in.{suffix}"
    Image.open(face_file).save(src, **({"quality": 92, "subsampling": sampling} if suffix == "jpg" else {}))
    r = cli("run", "--image", src, "--aligned", "--set", "young=1", "--out", tmp_path / "o.jpg", *model_args)
    assert r.exit_code == 0, r.output
    assert JpegImagePlugin.get_sampling(Image.open(tmp_path / "o.jpg")) == expected


def test_folder_and_glob(model_args, synth_data, tmp_path):
    files = sorted((Path(synth_data) / "img_align_celeba").iterdir())[:3]
    folder = tmp_path / "in"
    folder.mkdir()
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    r = cli("run", "--image", folder, "--aligned", "--set", "bald=1", "--out", tmp_path / "out", *model_args)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f.name for f in files)
    r = cli("attrs", "--image", str(folder / "*.jpg"), "--aligned", "--json", *model_args)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output[r.output.index("["):])
    assert len(rows) == 3 and "Bald" in rows[0]["faces"][0]["attributes"]


def test_sample_grid(model_args, tmp_path):
    r = cli("sample", "--set", "male=1", "--count", "16", "--seed", "3", "--out", tmp_path / "grid.png", *model_args)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "grid.png").size == (4 * 64 + 6, 4 * 64 + 6)
    assert "(prior gaussian, temperature 1, seed 3)" in r.output  # how they were drawn: the export's Gaussian


def _tamper(tiny_model_dir, tmp_path):
    import shutil
    bad = tmp_path / "bad-model"
    shutil.copytree(tiny_model_dir, bad)
    data = bytearray((bad / "editor.onnx").read_bytes())
    data[100] ^= 1
    (bad / "editor.onnx").write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("case", ["corrupt", "not_image", "bomb", "bomb_cap", "no_face", "unknown_attr",
                                  "out_of_range", "bad_set", "missing_model", "tampered_model",
                                  "backend_unavailable", "bad_out_suffix", "face_index"])
def test_errors_are_one_line_and_write_nothing(case, tiny_model_dir, face_file, tmp_path):
    args = ["--model", tiny_model_dir, "--backend", "onnxruntime"]
    image, sets, extra, match = face_file, ["young=1"], ["--aligned"], ""
    if case == "corrupt":
        image = tmp_path / "broken.jpg"
        buf = face_file.with_suffix(".jpg")
        Image.open(face_file).save(buf)
        image.write_bytes(buf.read_bytes()[:300])
        buf.unlink()
        match = "corrupt or truncated"
    elif case == "not_image":
        image = tmp_path / "notes.jpg"
        image.write_text("hello")
        match = "not an image"
    elif case == "bomb":
        image = tmp_path / "bomb.png"
        Image.new("1", (10000, 6000)).save(image)  # 60 MP that compresses to a few KB
        match = "over the 50 MP limit"
    elif case == "bomb_cap":
        extra += ["--max-pixels", "0.001"]
        match = "--max-pixels"
    elif case == "no_face":
        image = tmp_path / "wall.png"
        Image.fromarray(np.full((200, 300, 3), 120, np.uint8)).save(image)
        extra, match = [], "aligned face crop, use --aligned"
    elif case == "unknown_attr":
        sets, match = ["yuong=1"], "Did you mean 'young'"
    elif case == "out_of_range":
        sets, match = ["young=3"], "out of range"
    elif case == "bad_set":
        sets, match = ["young"], "--set: an attribute setting is NAME=VALUE"
    elif case == "missing_model":
        args, match = ["--model", tmp_path / "nowhere"], "does not exist"
    elif case == "tampered_model":
        args, match = ["--model", _tamper(tiny_model_dir, tmp_path)], "sha256"
    elif case == "backend_unavailable":
        args, match = ["--model", tiny_model_dir, "--backend", "tensorrt"], "not available"
    elif case == "bad_out_suffix":
        extra, match = extra + ["--out", tmp_path / "x.xyz"], "cannot write"
    elif case == "face_index":
        skd = pytest.importorskip("skimage.data")
        image = tmp_path / "astro.png"
        Image.fromarray(skd.astronaut()).save(image)
        extra, match = ["--face", "5"], "--face: there is no face 5: astro.png has 1 face"
    before = {p.name for p in tmp_path.rglob("*")}
    r = cli("run", "--image", image, *[a for s in sets for a in ("--set", s)], *extra, *args)
    assert r.exit_code != 0
    errors = [l for l in r.output.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and match in errors[0], r.output
    assert "Traceback" not in r.output
    assert {p.name for p in tmp_path.rglob("*")} == before  # nothing written, not even a temp file


def test_engine_errors_name_their_option_and_the_cli_its_flag():
    """The engine says which option an error concerns by its API name (EngineError.field) and never spells a
    flag; the CLI's reporter names the flag: in front, or by rewording the engine's hint."""
    from faceedit.cli.reporting import one_line
    from faceedit.engine.errors import EngineError, NoFaceFound
    from faceedit.engine.photo import parse_face_choice
    from faceedit.engine.request import parse_changes
    with pytest.raises(EngineError) as e:
        parse_changes(["young=x"])
    assert e.value.field == "set" and "--" not in str(e.value)
    assert one_line(e.value) == "--set: 'x' is not a number for young (0 off, 1 on, -1..2)"
    with pytest.raises(EngineError) as e:
        parse_face_choice("-1")
    assert e.value.field == "face" and one_line(e.value) == "--face: a face number must be >= 0, got -1"
    crop = NoFaceFound("no face found in a.png: if it is already an aligned face crop, say so (aligned)", field="aligned")
    assert one_line(crop) == "no face found in a.png: if it is already an aligned face crop, use --aligned"
    assert one_line(EngineError("over the limit\nmore", field="max_pixels")) == "--max-pixels: over the limit"
    assert one_line(ValueError("no field here")) == "no field here"


def test_warns_before_an_edit_the_model_rarely_lands(tiny_model_dir, face_file, tmp_path):
    """The manifest's eval figures (export --eval-json) name attributes whose edits rarely land: `run` says so
    before editing, and says nothing for the others."""
    import shutil
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    manifest = json.loads((model / "manifest.json").read_text())
    weak, strong = [a["name"] for a in manifest["attributes"]][:2]
    manifest["eval"] = {"split": "test", "edit_success_per_attribute": {weak: 0.036, strong: 0.9}}
    (model / "manifest.json").write_text(json.dumps(manifest))
    args = ["--model", model, "--backend", "onnxruntime", "--precision", "fp32", "--aligned"]
    r = cli("run", "--image", face_file, "--set", f"{weak}=1", "--out", tmp_path / "a.png", *args)
    assert r.exit_code == 0, r.output
    assert f"note: {weak} edits landed on 4% of the test faces" in r.output
    r = cli("run", "--image", face_file, "--set", f"{strong}=1", "--out", tmp_path / "b.png", *args)
    assert r.exit_code == 0, r.output
    assert "note:" not in r.output
