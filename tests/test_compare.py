"""`faceedit compare` (faceedit/eval/compare.py): the same faces, one row per model, every attribute flipped the
same way for each model; bad input is one line and writes nothing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import cli, model_with

pytest.importorskip("onnx")

from faceedit.eval.compare import HEAD_H, LABEL_W, flip_requests  # noqa: E402

TILE = 40


def cells(sheet: np.ndarray, face: int, row: int, n_models: int, n_attr: int) -> list[np.ndarray]:
    """The tiles of one model's row of one face: [input, edit of attribute 0, 1, ...]."""
    y = HEAD_H + face * (14 + n_models * TILE) + 14 + row * TILE
    return [sheet[y:y + TILE, LABEL_W + c * TILE:LABEL_W + (c + 1) * TILE] for c in range(n_attr + 1)]


def test_each_edit_flips_what_the_model_reads():
    values, mask = flip_requests(np.array([0.9, 0.2, 0.5]))
    assert mask.tolist() == np.eye(3).tolist()
    assert values.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]   # on -> off, off -> on; 0.5 reads as off


def test_the_same_faces_one_row_per_model(tiny_model_dir, synth_data, tmp_path):
    import json
    stronger = model_with(tiny_model_dir, tmp_path / "stronger", edit_strength={"gain": 3.0})
    n_attr = len(json.loads((tiny_model_dir / "manifest.json").read_text())["attributes"])
    out = tmp_path / "sheet.png"
    r = cli("compare", "--model", tiny_model_dir, "--model", stronger, "--model", tiny_model_dir,
            "--data", synth_data, "--split", "val", "--start", 2, "--count", 3, "--tile", TILE, "--out", out)
    assert r.exit_code == 0, r.output
    assert "3 val faces from 2" in r.output
    sheet = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (HEAD_H + 3 * (14 + 3 * TILE), LABEL_W + TILE * (n_attr + 1), 3)
    faces_differ = False
    for face in range(3):
        plain, strong, again = (cells(sheet, face, row, 3, n_attr) for row in range(3))
        assert np.array_equal(plain[0], strong[0]) and np.array_equal(plain[0], again[0])  # one input per face
        assert all(np.array_equal(a, b) for a, b in zip(plain, again))   # the same model edits the same way
        assert any(not np.array_equal(a, b) for a, b in zip(plain[1:], strong[1:]))  # a gain of 3 pushes harder
        assert any(np.abs(e.astype(int) - plain[0].astype(int)).mean() > 0.5 for e in plain[1:])  # edits change it
        if face and not np.array_equal(plain[0], previous):
            faces_differ = True
        previous = plain[0]
    assert faces_differ


def test_bad_input_is_one_line_and_writes_nothing(tiny_model_dir, synth_data, tmp_path):
    out = tmp_path / "sheet.png"
    for args, words in (
            (["--model", tmp_path / "nope", "--data", synth_data], "model not found"),
            (["--model", tiny_model_dir, "--data", tmp_path / "nodata"], "data folder not found"),
            (["--model", tiny_model_dir, "--data", synth_data, "--start", 500], "no faces from 500 on"),
            (["--model", tiny_model_dir, "--data", synth_data, "--split", "dev"], "unknown split")):
        r = cli("compare", *args, "--out", out)
        assert r.exit_code != 0 and words in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    r = cli("compare", "--model", tiny_model_dir, "--data", synth_data, "--out", tmp_path / "sheet.jpg")
    assert r.exit_code != 0 and "must be a .png" in r.output
    assert not list(tmp_path.glob("*sheet*"))
