"""Auto strength (faceedit.core.strength): the climbing rule on a fake model, then the engine on the shipped model
with auto strength switched on for one attribute, checked against fixed-strength edits."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from faceedit.core.strength import auto_multipliers, multipliers_up_to, top_multipliers

DEFAULT = Path(__file__).resolve().parents[1] / "faceedit" / "models" / "default"


def fake_model(needs):
    """A fake renderer whose attribute 0 reads 'on' once its multiplier reaches needs[row]; records calls."""
    calls = []

    def render(rows, mult):
        calls.append((list(rows), mult.copy()))
        return np.stack([mult[:, 0], np.asarray(rows, np.float32)], 1)  # 'image' = (multiplier, row)

    def head(images):
        on = images[:, 0] >= np.asarray(needs, np.float32)[images[:, 1].astype(int)]
        return np.stack([on.astype(np.float32), np.zeros(len(on), np.float32)], 1)
    return render, head, calls


def test_climbs_until_the_head_agrees_and_keeps_the_top_when_it_never_does():
    render, head, calls = fake_model(needs=[1.0, 2.0, 9.0, 1.5])
    values = np.array([[1, 0]] * 4, np.float32)
    mask = np.array([[1, 0]] * 4, np.float32)
    mult = auto_multipliers(render, head, values, mask, top=[2.5, 1.0])
    np.testing.assert_array_equal(mult[:, 0], [1.0, 2.0, 2.5, 1.5])
    np.testing.assert_array_equal(mult[:, 1], 1.0)              # never set: never pushed
    assert calls[0][0] == [0, 1, 2, 3]                          # everyone once at 1
    assert [c[0] for c in calls[1:]] == [[1, 2, 3], [1, 2], [2]]  # then only the rows still short


def test_partial_and_extrapolated_values_unset_attributes_and_attributes_without_rungs_are_left_alone():
    render, head, calls = fake_model(needs=[9.0, 9.0, 9.0, 9.0])
    values = np.array([[0.3, 0], [1, 0], [1, 0], [2, 0]], np.float32)
    mask = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], np.float32)
    mult = auto_multipliers(render, head, values, mask, top=[2.0, 1.0])
    # 0.3 asks for a partial edit, 2 is the user's own strength: neither is pushed
    np.testing.assert_array_equal(mult[:, 0], [1.0, 1.0, 2.0, 1.0])
    assert len(calls) == 3  # the first pass, then row 2 alone at 1.5 and at 2


def test_top_multipliers_from_the_manifest():
    names = ["A", "B"]
    assert top_multipliers({"gain": 1.0, "auto": {"top_multiplier": {"B": 2.5}}}, names) == [1.0, 2.5]
    assert top_multipliers(None, names) == [1.0, 1.0]
    assert multipliers_up_to(2.0) == [1.0, 1.5, 2.0]
    for bad in (0.5, 1.2, 5.0, float("nan")):
        with pytest.raises(ValueError):
            top_multipliers({"auto": {"top_multiplier": {"A": bad}}}, names)


@pytest.fixture(scope="module")
def auto_model(tmp_path_factory):
    """The shipped model with auto strength up to 3x on Young only."""
    d = tmp_path_factory.mktemp("auto") / "model"
    shutil.copytree(DEFAULT, d)
    m = json.loads((d / "manifest.json").read_text())
    m["edit_strength"]["auto"] = {"top_multiplier": {"Young": 3.0}}
    (d / "manifest.json").write_text(json.dumps(m))
    return d


def test_engine_edit_is_the_first_fixed_strength_edit_the_head_reads_as_asked(auto_model):
    from faceedit.engine import Editor
    auto = Editor.load(auto_model, backend="onnxruntime", precision="fp32")
    fixed = Editor.load(auto_model, backend="onnxruntime", precision="fp32", auto_strength=False)
    assert auto.auto_strength and not fixed.auto_strength
    faces = list(auto.sample(24, {"young": 0, "male": 1}, seed=3))  # faces the model draws, not photos
    got = auto.edit(faces, {"young": 1})
    young = auto.attribute_names.index("Young")
    pushed = 0
    for i, face in enumerate(faces):
        # multiplier m on the gain = user value 0.5 + m (1 - 0.5) at fixed strength
        for m in multipliers_up_to(3.0):
            out = fixed.edit_crops([face], fixed.request({"young": 0.5 + m * 0.5}))
            # result: the residual result at model size, what the head judges
            if fixed.run_attributes(out.result)[0, young] > 0.5 or m == 3.0:
                break
        pushed += m > 1
        np.testing.assert_array_equal(got[i], out.images[0], err_msg=f"face {i}, expected multiplier {m}")
    assert 0 < pushed < len(faces), pushed  # some landed at once, some needed pushing
    np.testing.assert_array_equal(fixed.edit(faces[:4], {"young": 1}),
                                  np.stack([fixed.edit_crops([f], fixed.request({"young": 1})).images[0]
                                            for f in faces[:4]]))
    # the request's option is the fixed editor's edit, on the one auto editor
    np.testing.assert_array_equal(auto.edit(faces, auto.request({"young": 1}, auto_strength=False)),
                                  fixed.edit(faces, {"young": 1}))


def test_bench_times_auto_strength_against_fixed(auto_model):
    from faceedit.engine import Editor
    from faceedit.bench.plan import make_plan
    from faceedit.bench.report import auto_strength_line
    from faceedit.bench.suite import measure_auto_strength
    ed = Editor.load(auto_model, backend="onnxruntime", precision="fp32")
    out = measure_auto_strength(ed, make_plan("tiny"), log=lambda *a: None)
    assert out["attribute"] == "Young" and out["top_multiplier"] == 3.0
    assert 0 <= out["share_pushed"] <= 1  # how many depends on the faces; timings are never asserted
    for key in ("fixed_batch_1", "auto_batch_1", "fixed_batch_2", "auto_batch_2"):
        assert out[key]["p50_ms"] > 0
    assert "pushed" in auto_strength_line({"auto_strength": out})
    fixed = Editor.load(auto_model, backend="onnxruntime", precision="fp32", auto_strength=False)
    assert "absent" in measure_auto_strength(fixed, make_plan("tiny"), log=lambda *a: None)


def test_run_cli_pushes_by_default_and_not_with_fixed_strength(auto_model, tmp_path):
    """`faceedit run` on model-drawn faces (aligned, model size): the default output is the Editor's auto
    strength edit, --fixed-strength the fixed one, and on a face that needed a push the two differ."""
    from typer.testing import CliRunner

    from faceedit.cli.main import app
    from faceedit.engine import Editor
    from faceedit.engine.imageio import read_photo, write_photo
    auto = Editor.load(auto_model, backend="onnxruntime", precision="fp32")
    fixed = Editor.load(auto_model, backend="onnxruntime", precision="fp32", auto_strength=False)
    faces = auto.sample(24, {"young": 0, "male": 1}, seed=3)
    pushed = [f for f in faces if not np.array_equal(auto.edit(f, {"young": 1}), fixed.edit(f, {"young": 1}))]
    assert pushed, "no face needed a push"
    src = tmp_path / "face.png"
    write_photo(src, pushed[0], None)
    args = ["run", "--model", str(auto_model), "--backend", "onnxruntime", "--precision", "fp32", "--aligned",
            "--image", str(src), "--set", "young=1"]
    for extra, editor in (([], auto), (["--fixed-strength"], fixed)):
        out = tmp_path / f"out{len(extra)}.png"
        r = CliRunner().invoke(app, [*args, *extra, "--out", str(out)])
        assert r.exit_code == 0, r.output
        np.testing.assert_array_equal(read_photo(out).rgb, editor.edit(pushed[0], {"young": 1}))
        # the user is told when and how hard an edit was pushed
        assert ("auto strength pushed: Young x" in r.output) == (editor is auto), r.output
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "j.png"), "--json"])
    report = json.loads(r.output[r.output.index("{"):])
    (face,) = report["faces"]
    assert set(face["auto_strength"]) == {"Young"} and face["auto_strength"]["Young"] in multipliers_up_to(3.0)[1:]


def test_batcher_callers_get_the_auto_strength_edit_of_their_own_face(auto_model):
    """Auto strength decides per row, so a face batched with strangers gets what it gets alone."""
    import concurrent.futures as cf

    from faceedit.engine import DynamicBatcher, Editor
    auto = Editor.load(auto_model, backend="onnxruntime", precision="fp32")
    faces = auto.sample(24, {"young": 0, "male": 1}, seed=3)
    edits = [{"young": 1}, {"young": 1, "smiling": 1}, {"black_hair": 1}]
    expect = [[auto.edit(f, e) for e in edits] for f in faces]
    with DynamicBatcher(auto, max_batch=16, max_delay_ms=5) as batcher, cf.ThreadPoolExecutor(8) as pool:
        jobs = {(i, j): pool.submit(lambda i=i, j=j: batcher.submit(faces[i], edits[j]).result(30))
                for i in range(len(faces)) for j in range(len(edits))}
        for (i, j), job in jobs.items():
            np.testing.assert_array_equal(job.result(), expect[i][j], err_msg=f"face {i}, edit {edits[j]}")
