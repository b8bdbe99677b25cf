"""The reporting judge in a model directory: reporting_judge.onnx (image -> probabilities, features) and its
manifest entry "reporting_judge" (a FILE, hashed and checked like every other file, plus the attribute names,
image size and where it was trained). `faceedit export-update --reporting-judge JUDGE.pt` adds or replaces it;
only that file and manifest.json change. `faceedit eval --split test` reads edits with it, and KID uses its
features; nothing else may (it is the judge no choice ever used)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from faceedit.export.onnx_graphs import ExportError, export_graph, fold_batchnorm, load_judge_checkpoint, signature

FILE_NAME = "reporting_judge.onnx"


class ReportingJudgeGraph(nn.Module):
    def __init__(self, judge):
        super().__init__()
        self.judge = judge

    def forward(self, image):
        features = self.judge.features(image)
        return torch.sigmoid(self.judge.fc(features)), features


def export_reporting_judge(checkpoint, path) -> dict:
    """Reporting judge checkpoint (`faceedit train judge --arch reporting`) -> ONNX; returns its manifest entry."""
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


def add_reporting_judge(model_dir, checkpoint, log=print) -> dict:
    """Export the reporting judge into MODEL_DIR and list it in the manifest; returns the new manifest."""
    import os
    from faceedit.core.manifest import load_manifest, write_manifest
    model_dir = Path(model_dir)
    manifest = load_manifest(model_dir)
    names = [a["name"] for a in manifest["attributes"]]
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".reporting-judge-") as tmp:
        entry = export_reporting_judge(checkpoint, Path(tmp) / FILE_NAME)
        if entry["attributes"] != names or entry["image_size"] != manifest["image_size"]:
            raise ExportError(f"{checkpoint} judges {entry['image_size']}px faces for {', '.join(entry['attributes'])}; "
                              f"this model has {manifest['image_size']}px and {', '.join(names)}")
        os.replace(Path(tmp) / FILE_NAME, model_dir / FILE_NAME)
    manifest["reporting_judge"] = entry
    write_manifest(model_dir, manifest)
    load_manifest(model_dir)
    log(f"exported {FILE_NAME} ({entry['bytes']} bytes, validation accuracy {entry['val_accuracy_mean']})")
    return manifest
