"""Data layer: CelebA reader, crop, cache, synthetic faces, and `faceedit data check` on broken folders."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from faceedit.cli.main import app
from faceedit.train.data import (IMAGE_DIR, DataError, ImageCache, crop_face, decode, load_celeba)
from faceedit.train.synth import write_synthetic_celeba

runner = CliRunner()


def check(path):
    return runner.invoke(app, ["data", "check", str(path)])


def test_synth_is_deterministic_and_passes_check(tmp_path):
    a = write_synthetic_celeba(tmp_path / "a", 30, 89, seed=3)
    b = write_synthetic_celeba(tmp_path / "b", 30, 89, seed=3)
    c = write_synthetic_celeba(tmp_path / "c", 30, 89, seed=4)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        assert (a / name).read_text() == (b / name).read_text()
    assert (a / IMAGE_DIR / "000007.jpg").read_bytes() == (b / IMAGE_DIR / "000007.jpg").read_bytes()
    assert (a / "list_attr_celeba.txt").read_text() != (c / "list_attr_celeba.txt").read_text()
    r = check(a)
    assert r.exit_code == 0, r.output
    assert "30 images" in r.output and "train 24" in r.output


def test_reader_selects_attributes_by_any_spelling(synth_data):
    ds = load_celeba(synth_data)
    names, cols = ds.select(["young", "blond_hair", "Blond-Hair", "EYEGLASSES"])
    assert names == ["Young", "Blond_Hair", "Blond_Hair", "Eyeglasses"]
    assert cols.shape == (240, 4) and set(np.unique(cols)) <= {0, 1}
    assert 0 < cols[:, 0].mean() < 1
    with pytest.raises(ValueError, match="Did you mean 'smiling'"):
        ds.select(["smilling"])


def test_crop_is_proportional_across_resolutions(tmp_path):
    full = write_synthetic_celeba(tmp_path / "full", 10, 178, seed=5)
    half = write_synthetic_celeba(tmp_path / "half", 10, 89, seed=5)
    a = crop_face(decode(full / IMAGE_DIR / "000001.jpg"), 64).astype(float)
    b = crop_face(decode(half / IMAGE_DIR / "000001.jpg"), 64).astype(float)
    assert decode(full / IMAGE_DIR / "000001.jpg").shape == (218, 178, 3)
    assert decode(half / IMAGE_DIR / "000001.jpg").shape == (109, 89, 3)
    assert np.abs(a - b).mean() < 12  # same framing: only resampling differs
    assert crop_face(decode(half / IMAGE_DIR / "000001.jpg"), 128).shape == (128, 128, 3)


def test_cache_decodes_once_and_matches(synth_data, tmp_path):
    ds = load_celeba(synth_data)
    c1 = ImageCache(ds, 64, tmp_path)
    mtime = c1.path.stat().st_mtime_ns
    c2 = ImageCache(ds, 64, tmp_path)
    assert c2.path == c1.path and c2.path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(c2.images[5], crop_face(decode(synth_data / IMAGE_DIR / ds.names[5]), 64))
    assert ImageCache(ds, 32, tmp_path).path != c1.path


@pytest.fixture
def broken(tmp_path):
    return write_synthetic_celeba(tmp_path / "d", 20, 89, seed=1)


def assert_one_line_failure(result, *words):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    err = [l for l in result.output.splitlines() if l.startswith("error:")]
    assert len(err) == 1, result.output
    for w in words:
        assert w in err[0], err[0]


def test_missing_label_file(broken):
    (broken / "list_attr_celeba.txt").unlink()
    assert_one_line_failure(check(broken), "missing list_attr_celeba.txt")


def test_label_line_with_39_values(broken):
    p = broken / "list_attr_celeba.txt"
    lines = p.read_text().splitlines()
    lines[5] = " ".join(lines[5].split()[:-1])
    p.write_text("\n".join(lines) + "\n")
    assert_one_line_failure(check(broken), "line 6", "39 values")


def test_truncated_jpeg(broken):
    p = broken / IMAGE_DIR / "000004.jpg"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    assert_one_line_failure(check(broken), "truncated JPEG: 000004.jpg")
    with pytest.raises(DataError):
        decode(p)


def test_listed_image_absent(broken):
    (broken / IMAGE_DIR / "000009.jpg").unlink()
    assert_one_line_failure(check(broken), "absent: 000009.jpg")


def test_missing_folder_and_partition(broken, tmp_path):
    assert_one_line_failure(check(tmp_path / "nope"), "not found")
    p = broken / "list_eval_partition.txt"
    p.write_text("\n".join(p.read_text().splitlines()[:-3]) + "\n")
    assert_one_line_failure(check(broken), "no partition")


def test_corrupt_image(broken):
    (broken / IMAGE_DIR / "000002.jpg").write_bytes(b"not a jpeg at all")
    assert_one_line_failure(check(broken), "corrupt")
