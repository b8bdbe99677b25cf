"""Implied attributes (faceedit.core.implied): rules from labels, how they fire, the engine and the CLI on the
shipped model, `faceedit eval` and `faceedit export-update` on synthetic faces."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceedit.cli.main import app
from faceedit.core.implied import derive_rules, implied_values, rule_table

DEFAULT = Path(__file__).resolve().parents[1] / "faceedit" / "models" / "default"
NAMES = ["Bald", "Male", "Mustache", "No_Beard", "Young"]


def test_rules_come_from_near_certain_informative_co_occurrences():
    rng = np.random.default_rng(0)
    n = 4000
    male = rng.random(n) < 0.4
    bald = male & (rng.random(n) < 0.05)                              # every bald face is male
    mustache = male & (rng.random(n) < 0.3)
    no_beard = ~(mustache | (male & (rng.random(n) < 0.25)))         # a mustache is facial hair
    young = rng.random(n) < 0.95                                      # near-universal: implies nothing
    labels = np.stack([bald, male, mustache, no_beard, young], 1).astype(np.int8)
    # Bald=0 and Young=1 hold for over 90% of all faces, so no rule ever names them
    assert derive_rules(labels, NAMES) == {
        "Bald=1": {"Male": 1},
        "Male=0": {"Mustache": 0, "No_Beard": 1},
        "Mustache=1": {"Male": 1, "No_Beard": 0},
        "No_Beard=0": {"Male": 1},
        "No_Beard=1": {"Mustache": 0}}
    assert derive_rules(labels, NAMES, ["Mustache"]) == {"Mustache=1": {"Male": 1, "No_Beard": 0}}
    # below the share, no rule: with a mustache on 10% of women "Mustache=1 -> Male=1" breaks
    labels[:, 2] |= ~male & (rng.random(n) < 0.1)
    labels[:, 3] &= ~labels[:, 2].astype(bool)
    assert derive_rules(labels, NAMES, ["Mustache"]) == {"Mustache=1": {"No_Beard": 0}}


def test_rules_fire_on_full_values_never_override_the_user_and_cancel_when_they_disagree():
    table = rule_table({"rules": {"Mustache=1": {"Male": 1, "No_Beard": 0}, "Male=0": {"No_Beard": 1}}}, NAMES)
    values = np.array([[0, 0, 1, 0, 0],     # mustache on
                       [0, 0, 0.6, 0, 0],   # partial: no rule
                       [0, 0, 2, 0, 0],     # beyond on: rules of "on"
                       [0, 0, 1, 0, 0],     # mustache on, the user also sets Male=0
                       [0, 0, 0, 0, 0]],    # mustache off: no rule for that value
                      np.float32)
    mask = np.zeros_like(values)
    mask[:, 2] = 1
    mask[3, 1] = 1
    w, fires = implied_values(table, values, mask)
    assert fires[0].tolist() == [False, True, False, True, False] and w[0, 1] == 1 and w[0, 3] == 0
    assert not fires[1].any() and not fires[4].any()
    assert fires[2].tolist() == fires[0].tolist()
    # row 3: Male is the user's (never overridden); Male=0 says No_Beard=1, Mustache=1 says 0: left alone
    assert not fires[3].any()
    assert rule_table(None, NAMES) is None and rule_table({"rules": {}}, NAMES) is None
    for bad in ({"Nope=1": {"Male": 1}}, {"Male=2": {"Bald": 0}}, {"Male=1": {"Male": 0}}, {"Male=1": {"Bald": 3}}):
        with pytest.raises(ValueError):
            rule_table({"rules": bad}, NAMES)


@pytest.fixture(scope="module")
def implied_model(tmp_path_factory):
    """The shipped model with auto strength off (so both editors below render once) and the shipped rules."""
    d = tmp_path_factory.mktemp("implied") / "model"
    shutil.copytree(DEFAULT, d)
    m = json.loads((d / "manifest.json").read_text())
    m["edit_strength"].pop("auto", None)
    m["implied"] = {"rules": {"Mustache=1": {"Male": 1, "No_Beard": 0, "Blond_Hair": 0}, "Male=0": {"No_Beard": 1}}}
    (d / "manifest.json").write_text(json.dumps(m))
    return d


def test_engine_edit_equals_naming_the_implied_attributes_yourself(implied_model):
    from faceedit.engine import Editor
    implied = Editor.load(implied_model, backend="onnxruntime", precision="fp32")
    literal = Editor.load(implied_model, backend="onnxruntime", precision="fp32", implied=False)
    assert implied.implied and not literal.implied and "implied attributes" in implied.describe()
    faces = implied.sample(16, {"male": 0, "no_beard": 1, "blond_hair": 0, "mustache": 0}, seed=5)  # model-drawn faces
    probs = implied.attributes(faces)
    names = implied.attribute_names
    col = {n: names.index(n) for n in ("Male", "No_Beard", "Blond_Hair")}
    # faces the head reads as beardless women who are not blond: the rules change Male and No_Beard only
    keep = [i for i in range(len(faces)) if probs[i, col["Male"]] < 0.5 and probs[i, col["No_Beard"]] > 0.5
            and probs[i, col["Blond_Hair"]] < 0.5]
    assert len(keep) >= 4, probs[:, list(col.values())]
    faces = faces[keep]
    got = implied.edit(faces, {"mustache": 1})
    np.testing.assert_array_equal(got, literal.edit(faces, {"mustache": 1, "male": 1, "no_beard": 0}))
    assert not np.array_equal(got, literal.edit(faces, {"mustache": 1}))  # the rules changed the picture
    # the request's option is the literal editor's edit, on the one implied editor
    np.testing.assert_array_equal(implied.edit(faces, implied.request({"mustache": 1}, implied=False)),
                                  literal.edit(faces, {"mustache": 1}))
    out = implied.edit_crops(list(faces), implied.request({"mustache": 1}))
    assert out.implied[:, col["Male"]].all() and out.implied[:, col["No_Beard"]].all()
    assert out.implied.sum() == 2 * len(faces)
    # a partial value asks for a partial edit: nothing implied
    np.testing.assert_array_equal(implied.edit(faces, {"mustache": 0.5}), literal.edit(faces, {"mustache": 0.5}))


def test_run_cli_reports_implied_attributes_and_literal_turns_them_off(implied_model, tmp_path):
    from faceedit.engine import Editor
    from faceedit.engine.imageio import read_photo, write_photo
    ed = Editor.load(implied_model, backend="onnxruntime", precision="fp32")
    faces = ed.sample(16, {"male": 0, "no_beard": 1, "blond_hair": 0}, seed=5)
    probs = ed.attributes(faces)
    i = int(np.argmin(probs[:, ed.attribute_names.index("Male")]))
    src = tmp_path / "face.png"
    write_photo(src, faces[i], None)
    args = ["run", "--model", str(implied_model), "--backend", "onnxruntime", "--precision", "fp32", "--aligned",
            "--image", str(src), "--set", "mustache=1"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.png")])
    assert r.exit_code == 0 and "implied (--literal to leave alone): Male=1, No_Beard=0" in r.output, r.output
    np.testing.assert_array_equal(read_photo(tmp_path / "a.png").rgb, ed.edit(faces[i], {"mustache": 1}))
    r = CliRunner().invoke(app, [*args, "--literal", "--out", str(tmp_path / "b.png"), "--json"])
    assert r.exit_code == 0, r.output
    (face,) = json.loads(r.output[r.output.index("{"):])["faces"]
    assert face["implied"] == {}
    literal = Editor.load(implied_model, backend="onnxruntime", precision="fp32", implied=False)
    np.testing.assert_array_equal(read_photo(tmp_path / "b.png").rgb, literal.edit(faces[i], {"mustache": 1}))
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c.png"), "--json"])
    (face,) = json.loads(r.output[r.output.index("{"):])["faces"]
    assert face["implied"] == {"Male": 1, "No_Beard": 0}


def test_export_update_writes_rules_and_eval_scores_edits_with_them(tiny_model_dir, synth_data, tmp_path):
    """Rules from the train labels go into the manifest; eval then sets them on every edit, reports the
    disturbance of the attributes an edit did not set, and export-update refuses figures measured without them."""
    from tests.test_eval import val_eval  # noqa: the same CLI helper
    from faceedit.train.judge import train_judge
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    judge = train_judge(synth_data, tmp_path / "judge.pt", steps=4, batch_size=16, log=lambda *a: None)
    before_eval = tmp_path / "before.json"
    _, plain = val_eval(model, judge, synth_data, before_eval, intensities="1")
    assert plain["implied"]["rules"] == {}

    def update(*args):
        return CliRunner().invoke(app, ["export-update", "--model", str(model), *args])
    for args, words in ((["--implied-for", "Mustache"], "--implied-data"),
                        (["--implied-for", "Nope", "--implied-data", str(synth_data)], "not among"),
                        (["--implied-for", "Young", "--implied-data", str(synth_data)], "no value of Young")):
        r = update(*args)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and words in r.output, r.output
    r = update("--implied-for", "Male,Mustache", "--implied-data", str(synth_data))
    assert r.exit_code == 0, r.output
    rules = json.loads((model / "manifest.json").read_text())["implied"]["rules"]
    # synthetic mustaches are all on men; women never have one nor a beard
    assert rules == {"Male=0": {"Mustache": 0, "No_Beard": 1}, "Mustache=1": {"Male": 1}}
    after_eval = tmp_path / "after.json"
    _, res = val_eval(model, judge, synth_data, after_eval, intensities="1")
    assert res["implied"]["rules"] == rules
    # a rule changed an attribute on exactly the faces where the model read it otherwise
    from faceedit.train.data import ImageCache, load_celeba
    from faceedit.eval.subject import open_model
    ds = load_celeba(synth_data)
    under = open_model(model)
    x = ImageCache(ds, under.image_size).images[ds.split_indices("val")].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    src = under.probabilities(x) > 0.5
    col = res["attributes"].index
    expect = {a: 0.0 for a in res["attributes"]}
    for a, v, implied in (("Male", 0, rules["Male=0"]), ("Mustache", 1, rules["Mustache=1"])):
        flipped_to_v = src[:, col(a)] != bool(v)
        differs = np.any([src[:, col(b)] != bool(w) for b, w in implied.items()], 0)
        expect[a] = round(float((flipped_to_v & differs).mean()), 4)
    assert res["implied"]["faces_changed"] == expect and max(expect.values()) > 0, expect
    free = res["edit_disturbance_excluding_implied"]["intensity_1"]["per_attribute"]
    moved = res["edit_disturbance"]["intensity_1"]["per_attribute"]
    assert all(free[a] == moved[a] for a in res["attributes"] if expect[a] == 0)  # nothing set: the same figure
    assert plain["edit_success"]["intensity_1"]["residual"]["per_attribute"]["Young"] == \
        res["edit_success"]["intensity_1"]["residual"]["per_attribute"]["Young"]      # other edits unchanged
    # the eval made before the rules is not this manifest's figure; the one after is
    r = update("--eval-json", str(before_eval))
    assert r.exit_code == 2 and "implied" in r.output
    r = update("--eval-json", str(after_eval))
    assert r.exit_code == 0, r.output
    assert json.loads((model / "manifest.json").read_text())["eval"]["implied_rules"] == ["Male=0", "Mustache=1"]
    r = update("--implied-for", "")
    assert r.exit_code == 0 and "implied" not in json.loads((model / "manifest.json").read_text())


def test_a_malformed_implied_entry_is_refused_in_one_line(implied_model, tmp_path):
    from faceedit.engine import Editor
    from faceedit.engine.errors import ModelError
    d = tmp_path / "model"
    shutil.copytree(implied_model, d)
    m = json.loads((d / "manifest.json").read_text())
    for bad in ({"rules": {"Mustache=1": {"Male": 7}}}, {"rules": ["Mustache=1"]}, {"rules": {"Beard=1": {"Male": 1}}}):
        (d / "manifest.json").write_text(json.dumps({**m, "implied": bad}))
        with pytest.raises(ModelError, match="implied") as e:
            Editor.load(d, backend="onnxruntime")
        assert "\n" not in str(e.value)


def test_training_flips_can_follow_the_rules_too():
    """edit_targets(implied=...): a single flip to Mustache=1 on a woman asks the decoder for a mustached man."""
    torch = pytest.importorskip("torch")
    from faceedit.train.train import edit_targets
    table = rule_table({"rules": {"Mustache=1": {"Male": 1, "No_Beard": 0}}}, NAMES)
    y = torch.tensor([[0, 0, 0, 1, 1]] * 512, dtype=torch.float32)  # young beardless women
    g = torch.Generator().manual_seed(0)
    plain = edit_targets(y, torch.Generator().manual_seed(0), focus=[2], focus_frac=1.0)
    ruled = edit_targets(y, g, focus=[2], focus_frac=1.0, implied=table)
    flipped = plain[:, 2] == 1                                     # the rows that got the single flip
    assert flipped.sum() > 100 and (plain[flipped][:, 1] == 0).all()
    assert (ruled[flipped][:, 1] == 1).all() and (ruled[flipped][:, 3] == 0).all()
    assert torch.equal(ruled[~flipped], plain[~flipped])          # shuffled rows are real faces: untouched
