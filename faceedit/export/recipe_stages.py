"""The export room's recipe stages (faceedit.train.recipe has the format and the runner):

- `export`: a checkpoint -> RUN/NAME/model, through export_model (what `faceedit export` calls);
- `export-update`: a model directory copied to RUN/NAME/model and changed there through update_model (what
  `faceedit export-update` calls), so every stage's product stays as it made it;
- `export-judge`: judge checkpoints -> a judge set RUN/NAME/judges through add_judge (what `faceedit
  export-judge` calls): what `faceedit eval` scores edits with, never part of a model directory.

Settings chosen on validation elsewhere (gains, auto strength tops, the edit filter) are pinned as values:
a recipe says what the shipped manifest holds; the sweeps that chose them are in docs/training-log.md.
"""
from __future__ import annotations

import shutil

from faceedit.train.recipe import (BOOL, DATA, FLOAT, INT, NAMES, REF, STR, TABLE, TRAIN_KINDS, StageKind, shell_word)

MODEL = "model"  # an export's product: RUN/NAME/model

EXPORT_FLAGS = {"calib_data": "data", "calib_size": "flag", "eval_size": "flag", "int8": "switch", "fp16": "switch",
                "openvino": "switch", "min_agreement": "flag", "min_psnr": "flag", "edit_gain": "flag",
                "edit_gains": "pairs", "edit_gain_note": "flag", "threads": "flag"}
EXPORT_KEYS = dict(checkpoint=REF, calib_data=DATA, calib_size=INT, eval_size=INT, int8=BOOL, fp16=BOOL, openvino=BOOL,
                   min_agreement=FLOAT, min_psnr=FLOAT, edit_gain=FLOAT, edit_gains=TABLE, edit_gain_note=STR,
                   threads=INT)

UPDATE_FLAGS = {"implied_for": "comma", "implied_data": "data", "implied_note": "flag", "edit_filter": "repeat",
                "edit_filter_note": "flag", "auto_strength": "pairs", "auto_strength_note": "flag"}
UPDATE_KEYS = dict(model=REF, implied_for=NAMES, implied_data=DATA, implied_note=STR, edit_filter=NAMES,
                   edit_filter_note=STR, auto_strength=TABLE, auto_strength_note=STR)

JUDGES = "judges"  # an export-judge stage's product: RUN/NAME/judges, a judge set
JUDGE_FILES = {"judge": "judge.onnx", "reporting_judge": "reporting_judge.onnx"}  # faceedit.core.judge_set's names


def _export_check(stage):
    o = stage.options
    if "min_agreement" in o and not 0 < o["min_agreement"] <= 1:
        raise ValueError(f"min_agreement must be in (0, 1], got {o['min_agreement']}")
    for name, gain in {"all": o.get("edit_gain", 1.0), **o.get("edit_gains", {})}.items():
        if not 0.5 <= gain <= 4:
            raise ValueError(f"edit gain must be within 0.5..4, got {gain:g} ({name})")


def _export_commands(stage, run):
    return [" ".join(["faceedit export", *run.flags(stage, {"checkpoint": "path"}),
                      "--out", shell_word(run.product(stage)), *run.flags(stage, EXPORT_FLAGS)])]


def _export_run(stage, run):
    from faceedit.export import export_model
    o = stage.options
    kw = {k: o[k] for k in ("calib_size", "eval_size", "int8", "fp16", "openvino", "edit_gain", "edit_gain_note",
                            "threads") if k in o}
    budget = {b: o[k] for k, b in (("min_agreement", "min_attribute_agreement"), ("min_psnr", "min_psnr_db")) if k in o}
    export_model(run.path(stage, "checkpoint"), run.product(stage),
                 calib_data=run.data(stage, o["calib_data"]) if "calib_data" in o else None,
                 edit_gains={a: float(g) for a, g in o["edit_gains"].items()} if "edit_gains" in o else None,
                 budget=budget or None, log=run.log, **kw)


def _update_check(stage):
    from faceedit.core.strength import top_multipliers
    o = stage.options
    if not set(o) & (set(UPDATE_KEYS) - {"model"} - {k for k in UPDATE_KEYS if k.endswith("_note")}):
        raise ValueError("nothing to update: give implied_for, auto_strength and/or edit_filter")
    if o.get("implied_for") and "implied_data" not in o:
        raise ValueError("implied_for needs implied_data: the data whose train labels the rules come from")
    if "auto_strength" in o:
        top_multipliers({"auto": {"top_multiplier": o["auto_strength"]}}, list(o["auto_strength"]))


def _update_commands(stage, run):
    out = run.product(stage)
    return [f"mkdir -p {shell_word(out.parent)} && cp -r {shell_word(run.path(stage, 'model'))} {shell_word(out)}",
            " ".join(["faceedit export-update --model", shell_word(out), *run.flags(stage, UPDATE_FLAGS)])]


def _update_run(stage, run):
    from faceedit.export import atomic
    from faceedit.export.update import update_model
    o = stage.options
    with atomic.staging_dir(run.product(stage)) as tmp:  # the copy becomes RUN/NAME/model only once updated
        shutil.copytree(run.path(stage, "model"), tmp, dirs_exist_ok=True)
        update_model(tmp, note=o.get("auto_strength_note", ""), log=run.log, implied_for=o.get("implied_for"),
                     implied_data=run.data(stage, o["implied_data"]) if "implied_data" in o else None,
                     implied_note=o.get("implied_note", ""), edit_filter=o.get("edit_filter"),
                     edit_filter_note=o.get("edit_filter_note", ""), auto_strength_tops=o.get("auto_strength"))


def _judges_check(stage):
    if not set(stage.options) & set(JUDGE_FILES):
        raise ValueError("give judge and/or reporting_judge: the judge checkpoints to export")


def _judges_commands(stage, run):
    return [f"faceedit export-judge --checkpoint {shell_word(run.path(stage, key))} --out {shell_word(run.product(stage))}"
            for key in JUDGE_FILES if key in stage.options]


def _judges_run(stage, run):
    from faceedit.export.judges import add_judge
    for key, file in JUDGE_FILES.items():
        if key in stage.options:
            add_judge(run.product(stage), run.path(stage, key), log=run.log)
            if not (run.product(stage) / file).is_file():  # add_judge files a judge by its own architecture
                raise ValueError(f"{key} = '{stage.options[key]}' is not a {key.replace('_', ' ')} (no {file} written); "
                                 "a choice judge is `judge`, an --arch reporting one `reporting_judge`")


EXPORT_KINDS = {
    "export": StageKind("export", EXPORT_KEYS, ("checkpoint",), MODEL, takes={"checkpoint": ("train", "from-model")},
                        check=_export_check, commands=_export_commands, run=_export_run),
    "export-update": StageKind("export-update", UPDATE_KEYS, ("model",), MODEL,
                               takes={"model": ("export", "export-update")},
                               check=_update_check, commands=_update_commands, run=_update_run),
    "export-judge": StageKind("export-judge", dict(judge=REF, reporting_judge=REF), (), JUDGES,
                              takes={"judge": ("judge",), "reporting_judge": ("judge",)},
                              check=_judges_check, commands=_judges_commands, run=_judges_run),
}
ALL_KINDS = {**TRAIN_KINDS, **EXPORT_KINDS}  # what `faceedit train recipe` runs
