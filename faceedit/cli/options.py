"""What the editing commands share: option help texts, loading the Editor, printing attributes."""
from __future__ import annotations

import typer

from faceedit.core.tiers import EXPERIMENTAL

MODEL_HELP = "Model directory or name (default: the shipped model)."
BACKEND_HELP = "auto (the fastest available here), onnxruntime, openvino, onnxruntime-cuda, onnxruntime-tensorrt or tensorrt."
PRECISION_HELP = ("auto (the fastest variant the export accepted for that backend: bf16 on OpenVINO with a bf16 CPU, "
                  "fp16 on GPUs, else fp32), fp32, int8, bf16 (OpenVINO) or fp16 (GPU), if the model has it.")
DETECTOR_HELP = ("Face detector: blazeface (default, shipped: face box and eye landmarks), haar (OpenCV cascades) "
                 "or yunet (needs --detector-model).")
DETECTOR_MODEL_HELP = "YuNet face detector .onnx (OpenCV zoo), for --detector yunet."
MAX_PIXELS_HELP = "Refuse images over this many megapixels (decompression bombs)."


def name_numbers(items: list[str], flag: str) -> dict[str, float]:
    """NAME=NUMBER options (repeated, or comma-separated in one) -> {NAME: NUMBER}; a bad item is one line."""
    from faceedit.cli.reporting import UserError
    out = {}
    for item in (part.strip() for text in items for part in text.split(",") if part.strip()):
        name, sep, number = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(number)
        except ValueError:
            raise UserError(f"{flag} takes NAME=NUMBER (e.g. Blond_Hair=1.5), got '{item}'") from None
    return out


def load_editor(model, backend, precision, auto_strength=True, implied=True, edit_filter=True):
    from faceedit.engine import Editor
    editor = Editor.load(model, backend=backend, precision=precision, auto_strength=auto_strength, implied=implied,
                         edit_filter=edit_filter)
    typer.echo(f"model {editor.model.path} | backend {editor.selection} | {editor.describe()}", err=True)
    return editor


def attribute_lines(before: dict, after: dict | None, changed: set, tiers: dict | None = None) -> list[str]:
    """One line per attribute: its probability (before -> after for an edit), '<- set' where the user set it,
    and '[experimental edit]' where the model's quality tier says its edits often fail (core.tiers)."""
    width = max(len(n) for n in before)
    lines = []
    for name, p in before.items():
        mark = "  <- set" if name in changed else ""
        tier = "  [experimental edit]" if (tiers or {}).get(name) == EXPERIMENTAL else ""
        if after is None:
            lines.append(f"  {name:<{width}}  {p:.3f}{tier}")
        else:
            lines.append(f"  {name:<{width}}  {p:.3f} -> {after[name]:.3f}{mark}{tier}")
    return lines


def face_dict(f, with_after: bool) -> dict:
    if f.skipped:  # found, too small to edit
        return {"box": list(f.box), "found": f.how, "skipped": f.skipped}
    d = {"box": list(f.box), "found": f.how, "attributes": {k: round(v, 5) for k, v in f.before.items()}}
    if with_after:
        d["attributes_after"] = {k: round(v, 5) for k, v in f.after.items()}
        d["auto_strength"] = dict(f.pushed)  # attribute -> multiplier on its gain, for edits pushed harder
        d["implied"] = dict(f.implied)       # attribute -> value the edit set because a set attribute implies it
    return d
