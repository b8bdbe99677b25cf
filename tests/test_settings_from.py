"""`faceedit export-update --settings-from`: a candidate takes another model directory's editing settings (gains,
auto strength tops, implied rules, edit filter), so it is scored as that model edits, weights apart."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import cli, model_with

DEFAULT = Path(__file__).resolve().parents[1] / "faceedit" / "models" / "default"


def _settings(model: Path) -> dict:
    from faceedit.core.model_dir import ModelInfo
    info = ModelInfo.load(model)
    rules = (info.manifest.get("implied") or {}).get("rules")
    flt = {k: v for k, v in (info.edit_filter or {}).items() if k != "copied_from"} or None
    return {"gains": info.edit_gains, "tops": info.edit_tops, "rules": rules, "filter": flt}


def test_settings_from_copies_what_an_edit_is_made_with_and_nothing_else(tiny_model_dir, tmp_path):
    model = tmp_path / "candidate"
    shutil.copytree(tiny_model_dir, model)
    graphs = {p.name: p.read_bytes() for p in model.glob("*.onnx")}
    own = _settings(model)
    shipped = _settings(DEFAULT)
    assert own != shipped and max(shipped["tops"]) > 1 and shipped["rules"] and shipped["filter"]  # a real change

    r = cli("export-update", "--model", model, "--settings-from", DEFAULT)
    assert r.exit_code == 0, r.output
    assert _settings(model) == shipped
    assert {p.name: p.read_bytes() for p in model.glob("*.onnx")} == graphs  # the weights stay the candidate's
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["edit_strength"]["copied_from"] == str(DEFAULT)
    assert "tiers" not in manifest or manifest["tiers"] != json.loads((DEFAULT / "manifest.json").read_text())["tiers"]
    from faceedit.engine.editor import Editor
    ed, ref = (Editor.load(m, backend="onnxruntime", precision="fp32") for m in (model, DEFAULT))
    assert ed.attribute_filters == ref.attribute_filters and ed.edit_filter  # the engine filters as shipped

    # later options still apply on top of the copy
    r = cli("export-update", "--model", model, "--settings-from", DEFAULT, "--edit-filter", "off")
    assert r.exit_code == 0, r.output
    assert _settings(model) == {**shipped, "filter": None}

    # a source without implied rules or a filter takes them away: the copy edits exactly as the source does
    r = cli("export-update", "--model", model, "--settings-from", tiny_model_dir)
    assert r.exit_code == 0, r.output
    assert _settings(model) == own
    manifest = json.loads((model / "manifest.json").read_text())
    assert "implied" not in manifest and "edit_filter" not in manifest


def test_settings_from_refuses_a_model_of_other_attributes_in_one_line(tiny_model_dir, tmp_path):
    model = tmp_path / "candidate"
    shutil.copytree(tiny_model_dir, model)
    before = (model / "manifest.json").read_bytes()
    attrs = json.loads(before)["attributes"]
    other = model_with(tiny_model_dir, tmp_path / "other", attributes=attrs[::-1])
    for source, words in ((other, "edits other attributes"), (tmp_path / "nowhere", "does not exist")):
        r = cli("export-update", "--model", model, "--settings-from", source)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and words in r.output, r.output
        assert (model / "manifest.json").read_bytes() == before  # nothing half-written
