"""Change what an exported model's manifest says about editing, without re-exporting: implied attributes (rules
from the train labels), auto strength chosen on a validation sweep of that very directory, the editing settings
of another model directory (a candidate scored with the shipped model's settings), and the summary of an
evaluation of it. Only manifest.json changes (written atomically); the graphs and their hashes stay as exported."""
from __future__ import annotations

from pathlib import Path

from faceedit.core.attributes import edit_gains
from faceedit.export import ExportError, _read_eval, load_eval_json
from faceedit.core.manifest import decoder_fingerprint, write_manifest
from faceedit.core.model_dir import ModelInfo
from faceedit.core.implied import MIN_SHARE, derive_rules, rule_table
from faceedit.core.strength import top_multipliers
from faceedit.core.tiers import TIERS
from faceedit.export.tiers import draw_tiers


AUTO_MEANING = ("an edit the model's own attribute head does not read as asked is rendered again with the "
                "attribute's gain x 1.5, 2, ... up to top_multiplier (faceedit.core.strength); others stay fixed")


class UpdateError(ExportError):
    """A request that would make the manifest describe something that was not measured."""


def _read(path: Path, flag: str) -> dict:
    obj = load_eval_json(path)
    if "edit_success" not in obj or "attributes" not in obj:
        raise UpdateError(f"{flag}: {path} is not a `faceedit eval` JSON")
    return obj


def _same_model(result: dict, manifest: dict, path, flag: str, what: str):
    measured = result.get("model_decoder_sha256")
    if measured != decoder_fingerprint(manifest):
        raise UpdateError(f"{flag}: {path} did not measure this model directory (run `faceedit eval --model DIR` on it)")
    names = [a["name"] for a in manifest["attributes"]]
    gains = dict(zip(names, edit_gains(manifest.get("edit_strength"), names)))
    if {a: float(g) for a, g in (result.get("edit_gains") or {}).items()} != gains:
        raise UpdateError(f"{flag}: {path} measured other edit gains than this manifest's; {what}")
    if ((result.get("implied") or {}).get("rules") or {}) != ((manifest.get("implied") or {}).get("rules") or {}):
        raise UpdateError(f"{flag}: {path} measured other implied attributes than this manifest's; {what}")


def _measured_as_is(path, flag: str, manifest: dict, names) -> dict:
    """A `faceedit eval` JSON that measured this directory with its current settings (weights, gains, implied
    rules, auto strength and edit filter), or UpdateError."""
    result = _read(path, flag)
    _same_model(result, manifest, path, flag, "re-run the evaluation")
    tops = dict(zip(names, top_multipliers(manifest.get("edit_strength"), names)))
    measured = (result.get("auto_strength") or {}).get("top_multiplier") or {}
    if {a: float(measured.get(a, 1.0)) for a in names} != tops:
        raise UpdateError(f"{flag}: {path} measured other auto strength settings than this manifest's; "
                          "re-run the evaluation on the updated directory")
    if "edit_filter" in result and (_filter_of(result.get("edit_filter"), names)
                                    != _filter_of(manifest.get("edit_filter"), names)):
        raise UpdateError(f"{flag}: {path} measured another edit filter than this manifest's; "
                          "re-run the evaluation on the updated directory")
    return result


def _with_samples(summary: dict, path, manifest: dict, temperature: float) -> dict:
    """summary with its samples_* entries replaced by those of the eval JSON at path, which must have measured
    the prior file this manifest lists at its own temperature (what users draw). Samples also pass through the
    edit gains and implied rules: an eval with edits records those and they are checked; a --no-edits eval
    records only the decoder's fingerprint, so only that is."""
    from faceedit.eval.report import samples_summary
    result = load_eval_json(path)
    if "samples" not in result or "attributes" not in result:
        raise UpdateError(f"--samples-from: {path} is not a `faceedit eval` JSON with a samples step")
    if "edit_gains" in result:  # an eval with edits recorded the settings samples share with edits: all checked
        _same_model(result, manifest, path, "--samples-from", "re-run the evaluation")
    elif result.get("model_decoder_sha256") != decoder_fingerprint(manifest):  # --no-edits records the decoder
        raise UpdateError(f"--samples-from: {path} did not measure this model directory (run `faceedit eval --model DIR` on it)")
    block = result.get("samples") or {}
    if not block or "skipped" in block:
        raise UpdateError(f"--samples-from: {path} has no samples figures (run faceedit eval with --samples)")
    want = (manifest.get("latent_prior") or {}).get("sha256")
    if not want or (block.get("prior") or {}).get("sha256") != want:
        raise UpdateError(f"--samples-from: {path} measured another latent prior than this directory's; "
                          "re-run the evaluation on it")
    if abs(float(block["prior"].get("temperature", 1.0)) - temperature) > 1e-4:
        raise UpdateError(f"--samples-from: {path} drew at temperature {block['prior'].get('temperature')}, this "
                          f"directory's prior draws at {temperature:g}; re-run the evaluation without --sample-temperature")
    out = {k: v for k, v in summary.items() if not k.startswith("samples_")}
    out.update(samples_summary(result), samples_split=result.get("split"), samples_faces=block.get("faces"))
    return out


def _filter_of(entry, names):
    """What of an edit_filter entry changes pixels (each attribute's filter), for comparing two of them."""
    from faceedit.engine.edit_filter import EditFilter
    f = EditFilter.from_manifest(entry, names)
    return None if f is None else f.filters


# What an edit is made with beyond the weights: gains and auto strength tops, implied rules, the edit filter.
EDIT_SETTINGS = ("edit_strength", "implied", "edit_filter")


def copy_settings(manifest: dict, names: list, source, log=print) -> None:
    """Give manifest the editing settings (EDIT_SETTINGS) of the model directory at source, as they are there: an
    entry source lacks is removed here too, so the copy edits exactly as source does but for the weights. Both
    must edit the same attributes in the same order (the settings are per attribute)."""
    src = ModelInfo.load(Path(source))
    if src.attribute_names != names:
        raise UpdateError(f"--settings-from: {source} edits other attributes ({', '.join(src.attribute_names)}) "
                          f"than this model ({', '.join(names)})")
    for key in EDIT_SETTINGS:
        if key in src.manifest:
            manifest[key] = {**src.manifest[key], "copied_from": str(source)}
        else:
            manifest.pop(key, None)
    log(f"editing settings from {source}: " + ", ".join(
        f"{key} {'copied' if key in src.manifest else 'removed (absent there)'}" for key in EDIT_SETTINGS))


def implied_rules(data, names, attributes) -> tuple[dict, int]:
    """Rules for the given attributes from the train split's labels of a CelebA-layout dataset."""
    from faceedit.train.data import load_celeba
    unknown = [a for a in attributes if a not in names]
    if unknown:
        raise UpdateError(f"--implied-for: {', '.join(unknown)} not among this model's attributes ({', '.join(names)})")
    ds = load_celeba(data)
    cols, labels = ds.select(names)
    train = labels[ds.split_indices("train")]
    rules = derive_rules(train, cols, attributes)
    bare = [a for a in attributes if not any(k.startswith(f"{a}=") for k in rules)]
    if bare:
        raise UpdateError(f"--implied-for: no value of {', '.join(bare)} implies another attribute on "
                          f">= {MIN_SHARE:.0%} of the {len(train)} training faces")
    return rules, len(train)


def update_model(model_dir, auto_strength_from=None, note: str = "", eval_json=None, log=print,
                 implied_for=None, implied_data=None, implied_note: str = "", edit_filter: list | None = None,
                 edit_filter_note: str = "", auto_strength_tops: dict | None = None, tiers_from=None,
                 tiers_demote: dict | None = None, samples_from=None, settings_from=None) -> dict:
    """Returns the new manifest. settings_from: another model directory whose editing settings (gains, auto
    strength tops, implied rules, edit filter) replace this one's first, so the options below may still change
    them. auto_strength_from: a validation sweep (`faceedit eval --model MODEL_DIR
    --split val --intensities 1,1.25,1.5,1.75,2 --json F`); each attribute gets the top multiplier with the
    best net effect there (faceedit.eval.report.best_tops). eval_json: a `faceedit eval` of this directory with its
    current settings, whose summary becomes the manifest's "eval". implied_for: attributes whose edits get
    implied rules from implied_data's train labels ([] removes them); applied first, so a sweep or an eval
    given with it must have measured the new rules. edit_filter: ["RADIUS,EPS"], ["NAME=RADIUS,EPS", ...] or
    ["off"], the guided filter on the edit's change (faceedit.engine.edit_filter), also applied before an eval
    given with it is checked. auto_strength_tops: {attribute: top} set as they are (chosen elsewhere, e.g. a
    recipe that pins a shipped model's tops), instead of auto_strength_from. tiers_from: a validation `faceedit
    eval` JSON (realism on) of this directory as it is; every attribute's quality tier is drawn from it by
    faceedit.export.tiers' rule, tiers_demote ({attribute: why}) moving attributes the pictures show failing
    to experimental. samples_from: a `faceedit eval` JSON whose samples step measured this directory's prior
    file (its sha256); its samples figures replace the "samples_*" entries of the manifest's "eval" (the rest of
    it stays), so `sample`, /v1/samples and the page warn with them."""
    from faceedit.eval.report import best_tops
    model_dir = Path(model_dir)
    info = ModelInfo.load(model_dir)
    manifest, names = info.manifest, info.attribute_names
    if settings_from is not None:
        copy_settings(manifest, names, settings_from, log)
    if implied_for is not None:
        if implied_for:
            rules, n_train = implied_rules(implied_data, names, list(implied_for))
            manifest["implied"] = {
                "rules": rules, "min_share": MIN_SHARE,
                "source": f"train-split labels of {Path(implied_data).name} ({n_train} faces)",
                "chosen": implied_note or f"for {', '.join(implied_for)}",
                "meaning": "an attribute set fully on or off also sets, where the user left them alone, the attributes "
                           "that >= min_share of the training faces with that value have (faceedit.core.implied)"}
            rule_table(manifest["implied"], names)  # the engine's own check
            log("implied: " + "; ".join(f"{k} -> " + ", ".join(f"{b}={w}" for b, w in v.items()) for k, v in rules.items()))
        else:
            manifest.pop("implied", None)
            log("implied attributes: removed")
    if edit_filter is not None:
        from faceedit.engine.edit_filter import EditFilter
        try:
            f = EditFilter.from_specs(list(edit_filter), names)
        except ValueError as e:
            raise UpdateError(f"--edit-filter: {e}") from None
        if f is None:
            manifest.pop("edit_filter", None)
            log("edit filter: removed (the change is added as the decoder makes it)")
        else:
            manifest["edit_filter"] = {**f.to_manifest(names), "chosen": edit_filter_note or "set by export-update",
                                       "meaning": "the edit's change (edited - reconstruction) passes a guided filter "
                                                  "whose guide is the input crop before it is added, where every "
                                                  "attribute the user set has one (faceedit.engine.edit_filter)"}
            log("edit filter: " + ", ".join(f"{n} r{g.radius} eps {g.eps:g}" for n, g in zip(names, f.filters) if g))
    if auto_strength_tops is not None:
        if auto_strength_from is not None:
            raise UpdateError("--auto-strength and --auto-strength-from: give one of them")
        unknown = sorted(set(auto_strength_tops) - set(names))
        if unknown:
            raise UpdateError(f"--auto-strength: {', '.join(unknown)} not among this model's attributes ({', '.join(names)})")
        strength = dict(manifest.get("edit_strength") or {})
        strength["auto"] = {
            "top_multiplier": {a: float(auto_strength_tops[a]) for a in names if float(auto_strength_tops.get(a, 1.0)) > 1.0},
            "chosen": note or "set as given (export-update --auto-strength)", "meaning": AUTO_MEANING}
        try:
            top_multipliers(strength, names)  # the engine's own check
        except ValueError as e:
            raise UpdateError(f"--auto-strength: {e}") from None
        manifest["edit_strength"] = strength
        log("auto strength: " + (", ".join(f"{a} up to x{t:g}" for a, t in strength["auto"]["top_multiplier"].items())
                                 or "off for every attribute"))
    if auto_strength_from is not None:
        sweep = _read(auto_strength_from, "--auto-strength-from")
        if sweep.get("split") == "test":
            raise UpdateError(f"--auto-strength-from: {auto_strength_from} measures the test split; choose on validation (--split val)")
        if "auto_strength_sweep" not in sweep:
            raise UpdateError(f"--auto-strength-from: {auto_strength_from} has no auto strength sweep; "
                              "run eval with --intensities 1,1.25,1.5,1.75,2")
        _same_model(sweep, manifest, auto_strength_from, "--auto-strength-from", "re-run the sweep")
        tops = best_tops(sweep)
        strength = dict(manifest.get("edit_strength") or {})
        strength["auto"] = {
            "top_multiplier": {a: float(tops[a]) for a in names if tops.get(a, 1.0) > 1.0},
            "chosen": note or f"per attribute: the top with the best net effect (edit success - 13 x disturbance) "
                              f"in {Path(auto_strength_from).name} ({sweep.get('split')}, {sweep.get('faces')} faces)",
            "meaning": AUTO_MEANING}
        top_multipliers(strength, names)  # the engine's own check
        manifest["edit_strength"] = strength
        log("auto strength: " + (", ".join(f"{a} up to x{t:g}" for a, t in strength["auto"]["top_multiplier"].items())
                                 or "off for every attribute (fixed strength had the better net effect)"))
    if eval_json is not None:
        result = _measured_as_is(eval_json, "--eval-json", manifest, names)
        manifest["eval"] = _read_eval(eval_json)
        log(f"eval summary from {eval_json}: {result['split']} split, edit success "
            f"{manifest['eval']['edit_success_mean13']:.1%}")
    if samples_from is not None:
        from faceedit.engine.prior import load_for
        manifest["eval"] = _with_samples(manifest.get("eval") or {}, samples_from, manifest, load_for(info).temperature)
        e = manifest["eval"]
        log(f"samples figures from {samples_from}: {e['samples_split']} split, read as asked "
            f"{e['samples_read_balanced_mean13']:.1%} balanced by {e['samples_judge']}")
    if tiers_from is not None:
        result = _measured_as_is(tiers_from, "--tiers-from", manifest, names)
        try:
            manifest["tiers"] = draw_tiers(result, Path(tiers_from), names, tiers_demote)
        except ValueError as e:
            raise UpdateError(f"--tiers-from: {e}") from None
        per = manifest["tiers"]["per_attribute"]
        for tier in TIERS:
            log(f"{tier}: " + (", ".join(n for n in names if per[n]["tier"] == tier) or "none"))
    elif tiers_demote:
        raise UpdateError("--demote needs --tiers-from: tiers are drawn from a validation evaluation first")
    write_manifest(model_dir, manifest)
    ModelInfo.load(model_dir)  # the engine's own reader accepts what was written
    return manifest
