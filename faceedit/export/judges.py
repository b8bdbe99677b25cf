"""The judges `faceedit eval` scores edits with, exported into a judge set (core.judge_set; the repository's
is evaluation/judges/), never into a model directory: the runtime does not use them. `faceedit export-judge
--checkpoint JUDGE.pt --out DIR` adds or replaces one; only its ONNX file and judges.json change.

- judge.onnx, the choice judge (image -> probabilities; onnx_graphs.export_judge): every choice on the
  validation split is made with it.
- reporting_judge.onnx, the reporting judge (image -> probabilities, features): `faceedit eval --split test`
  reads edits with it and KID uses its features; nothing else may (it is the judge no choice ever used)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from faceedit.core.judge_set import CHOICE, REPORTING, load_judge_set, write_judge_entry
from faceedit.export.onnx_graphs import (ExportError, export_graph, export_judge, fold_batchnorm, load_judge_checkpoint,
                                         signature)


class ReportingJudgeGraph(nn.Module):
    def __init__(self, judge):
        super().__init__()
        self.judge = judge

    def forward(self, image):
        features = self.judge.features(image)
        return torch.sigmoid(self.judge.fc(features)), features


def export_reporting_judge(checkpoint, path) -> dict:
    """Reporting judge checkpoint (`faceedit train judge --arch reporting`) -> ONNX; returns its judge-set entry."""
    from faceedit.core.manifest import file_entry
    judge, state = load_judge_checkpoint(checkpoint, "reporting judge")
    if state.get("arch") != "reporting":
        raise ExportError(f"{checkpoint} is a choice judge (arch {state.get('arch', 'judge')}); the reporting judge is "
                          "trained with `faceedit train judge --arch reporting`")
    size = state["image_size"]
    example = (torch.rand(2, 3, size, size) * 2 - 1,)
    model = export_graph(ReportingJudgeGraph(fold_batchnorm(judge)), example, path, ("image",),
                         ("probabilities", "features"))
    entry = file_entry(path, *signature(model))
    acc = state.get("val_accuracy") or []
    entry.update({"attributes": list(state["attributes"]), "image_size": size, "arch": "reporting",
                  "val_accuracy_mean": round(sum(acc) / len(acc), 4) if acc else None,
                  "role": "reports the test split (faceedit eval --split test) and gives KID its features; "
                          "never used for a choice"})
    return entry


def add_judge(judges_dir, checkpoint, log=print) -> dict:
    """Export a judge checkpoint (`faceedit train judge`) into the judge set JUDGES_DIR (made if need be): a
    choice judge as judge.onnx, a reporting judge (--arch reporting) as reporting_judge.onnx, listed with its
    sha256 in judges.json (the other judge's entry kept). Returns its entry."""
    _, state = load_judge_checkpoint(checkpoint, "judge")
    key = REPORTING if state.get("arch") == "reporting" else CHOICE
    folder = Path(judges_dir)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder} is not a folder (a judge set is a folder with judges.json)")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{key}.onnx"
    with tempfile.TemporaryDirectory(dir=folder, prefix=".judge-") as tmp:
        entry = (export_reporting_judge if key == REPORTING else export_judge)(checkpoint, Path(tmp) / name)
        os.replace(Path(tmp) / name, folder / name)
    write_judge_entry(folder, key, entry)
    load_judge_set(folder)  # the check `faceedit eval` makes
    log(f"exported {folder / name} ({entry['bytes']} bytes, {len(entry['attributes'])} attributes at "
        f"{entry['image_size']} px); listed in {folder / 'judges.json'}")
    return entry
