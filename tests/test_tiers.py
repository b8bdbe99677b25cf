"""Quality tiers: drawn from a validation evaluation by the written rule, stored in the manifest, read by the
engine, shown by `faceedit run`, `faceedit attrs` and /v1/model."""
import json
import shutil

import pytest
from typer.testing import CliRunner

from faceedit.cli.main import app
from faceedit.core.manifest import decoder_fingerprint
from faceedit.core.model_dir import ModelError, ModelInfo
from faceedit.core.strength import top_multipliers
from faceedit.export.tiers import draw_tiers, rate
from faceedit.models import DEFAULT_MODEL

ASTRONAUT = DEFAULT_MODEL.parents[2] / "examples" / "astronaut.jpg"


def test_the_rule_needs_all_three_bars():
    assert rate(0.6, 0.8, 1.0) == ("stable", [])
    tier, why = rate(0.49, 0.8, 1.0)
    assert tier == "experimental" and "realistic success" in why[0]
    assert rate(0.6, 0.59, 1.0)[0] == "experimental"  # looks real because the edit barely changes anything
    assert rate(0.6, 0.8, 1.11)[0] == "experimental"  # stripes / colour noise
    assert rate(0.6, 0.8, 0.84)[0] == "experimental"  # blur
    assert rate(0.5, 0.6, 0.85)[0] == rate(0.5, 0.6, 1.10)[0] == "stable"  # the bars are inclusive


def eval_of(model_dir, stable: set, split="val") -> dict:
    """A `faceedit eval` JSON that measured model_dir as it is, with realism figures: the attributes in
    `stable` clear every bar, the others fail realistic success only."""
    m = json.loads((model_dir / "manifest.json").read_text())
    names = [a["name"] for a in m["attributes"]]
    tops = dict(zip(names, top_multipliers(m.get("edit_strength"), names)))
    from faceedit.core.attributes import edit_gains
    realistic = {n: (0.7 if n in stable else 0.2) for n in names}
    return {"split": split, "faces": 40, "attributes": names, "edit_success": {},
            "model_decoder_sha256": decoder_fingerprint(m),
            "edit_gains": dict(zip(names, edit_gains(m.get("edit_strength"), names))),
            "implied": {"rules": (m.get("implied") or {}).get("rules") or {}},
            "auto_strength": {"top_multiplier": tops},
            "edit_filter": m.get("edit_filter"), "judges": {"scoring": "judge.onnx"},
            "realism": {"edit_success_realistic": {"per_attribute": realistic},
                        "edit_success_judged": {"per_attribute": {n: 0.8 for n in names}},
                        "artifact_ratio": {"per_attribute": {n: {"median": 1.0} for n in names}}}}


@pytest.fixture()
def model(tmp_path):
    dest = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, dest)
    m = json.loads((dest / "manifest.json").read_text())
    m.pop("tiers", None)  # start unrated, whatever the shipped model says
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


def update(model, *args):
    return CliRunner().invoke(app, ["export-update", "--model", str(model), *args])


def test_export_update_draws_tiers_and_every_reader_shows_them(model, tmp_path):
    assert ModelInfo.load(model).tiers == {}  # unrated: no tier anywhere
    ev = tmp_path / "val.json"
    ev.write_text(json.dumps(eval_of(model, {"Smiling", "Young", "Bangs"})))
    r = update(model, "--tiers-from", str(ev), "--demote", "Bangs=a smear over the forehead")
    assert r.exit_code == 0, r.output
    info = ModelInfo.load(model)
    assert info.tiers["Smiling"] == info.tiers["Young"] == "stable"
    assert info.tiers["Bangs"] == "experimental"  # demoted by eye
    assert info.tiers["Bald"] == "experimental"
    entry = info.manifest["tiers"]
    assert "by eye: a smear over the forehead" in entry["per_attribute"]["Bangs"]["why"]
    assert entry["per_attribute"]["Bald"]["realistic_success"] == 0.2 and entry["rule"]["realistic_success_min"] == 0.5

    # faceedit run: one line naming the experimental attributes the user set, none for stable ones
    out = tmp_path / "out.png"
    r = CliRunner().invoke(app, ["run", "--image", str(ASTRONAUT), "--model", str(model), "--set", "bald=1",
                                 "--set", "smiling=0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.output.splitlines() if "experimental (" in line]
    assert len(notes) == 1 and "Bald" in notes[0] and "Smiling" not in notes[0]
    r = CliRunner().invoke(app, ["run", "--image", str(ASTRONAUT), "--model", str(model), "--set", "smiling=0",
                                 "--out", str(tmp_path / "out2.png")])
    assert r.exit_code == 0 and "experimental (" not in r.output

    # faceedit attrs: marks per attribute, and the table in --json
    r = CliRunner().invoke(app, ["attrs", "--image", str(ASTRONAUT), "--model", str(model)])
    lines = {line.split()[0]: line for line in r.output.splitlines() if line.startswith("  ")}
    assert "[experimental edit]" in lines["Bald"] and "[experimental edit]" not in lines["Smiling"]
    r = CliRunner().invoke(app, ["attrs", "--image", str(ASTRONAUT), "--model", str(model), "--json"])
    assert json.loads(r.output[r.output.index("{"):])["edit_tiers"] == info.tiers

    # /v1/model (its body is FaceService.model_info)
    pytest.importorskip("fastapi")
    from faceedit.serve.service import FaceService, ServiceConfig
    service = FaceService(ServiceConfig(model=str(model), backend="onnxruntime"))
    try:
        assert service.model_info()["tiers"] == info.tiers
    finally:
        service.close()


def test_tiers_are_drawn_on_validation_from_an_eval_of_this_very_model(model, tmp_path):
    before = (model / "manifest.json").read_bytes()
    for name, change in (("test", {"split": "test"}), ("other", {"model_decoder_sha256": "0" * 64}),
                         ("norealism", {"realism": {}})):
        bad = tmp_path / f"{name}.json"
        bad.write_text(json.dumps({**eval_of(model, set()), **change}))
        r = update(model, "--tiers-from", str(bad))
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert (model / "manifest.json").read_bytes() == before
    r = update(model, "--demote", "Bald=bad")
    assert r.exit_code == 2 and "--tiers-from" in r.output
    r = update(model, "--tiers-from", str(tmp_path / "test.json"), "--demote", "Bald")
    assert r.exit_code == 2 and "NAME=WHY" in r.output


def test_a_tampered_tiers_entry_is_refused_at_load(model):
    m = json.loads((model / "manifest.json").read_text())
    names = [a["name"] for a in m["attributes"]]
    for bad in ({"per_attribute": {"Bald": {"tier": "great"}}}, {"per_attribute": {"Wings": {"tier": "stable"}}},
                ["stable"]):
        m["tiers"] = bad
        (model / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(ModelError, match="tiers"):
            ModelInfo.load(model)
    with pytest.raises(ValueError, match="validation"):
        draw_tiers({"split": "test"}, model / "x.json", names)
