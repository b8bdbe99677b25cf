"""`faceedit run`, `faceedit attrs`, `faceedit sample`, `faceedit backends`: thin shells over faceedit.engine
(all the logic lives there). No torch is imported on these paths."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.errors import UserError, friendly

MODEL_HELP = "Model directory or name (default: the shipped model)."
BACKEND_HELP = "auto, onnxruntime, openvino, onnxruntime-cuda, onnxruntime-tensorrt or tensorrt."
PRECISION_HELP = "auto (bf16 on OpenVINO where the CPU has bf16 and the export accepted it, fp16 on GPUs where the model has it, else fp32), fp32, int8, bf16 (OpenVINO) or fp16 (GPU), if the model has it."


def _load(model, backend, precision, auto_strength=True, implied=True):
    from faceedit.engine import Editor
    editor = Editor.load(model, backend=backend, precision=precision, auto_strength=auto_strength, implied=implied)
    typer.echo(f"model {editor.model.path} | backend {editor.selection} | {editor.describe()}", err=True)
    return editor


def _attribute_lines(before: dict, after: dict | None, changed: set) -> list[str]:
    width = max(len(n) for n in before)
    lines = []
    for name, p in before.items():
        mark = "  <- set" if name in changed else ""
        if after is None:
            lines.append(f"  {name:<{width}}  {p:.3f}")
        else:
            lines.append(f"  {name:<{width}}  {p:.3f} -> {after[name]:.3f}{mark}")
    return lines


def _face_dict(f, with_after: bool) -> dict:
    d = {"box": list(f.box), "found": f.how, "attributes": {k: round(v, 5) for k, v in f.before.items()}}
    if with_after:
        d["attributes_after"] = {k: round(v, 5) for k, v in f.after.items()}
        d["auto_strength"] = dict(f.pushed)  # attribute -> multiplier on its gain, for edits pushed harder
        d["implied"] = dict(f.implied)       # attribute -> value the edit set because a set attribute implies it
    return d


def register(app: typer.Typer):
    @app.command("run")
    @friendly
    def run(image: str = typer.Option(..., "--image", help="A photo, a folder of photos, or a glob ('shots/*.jpg')."),
            set_: List[str] = typer.Option([], "--set", help="NAME=VALUE: 0 off, 1 on, in between interpolates, -1..2 extrapolates. Repeatable."),
            out: Optional[Path] = typer.Option(None, "--out", help="Output file (format from its suffix), or a folder for several inputs. Default: IN.edited.EXT next to the input, never overwriting."),
            model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
            backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
            precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
            aligned: bool = typer.Option(False, "--aligned", help="Inputs are already aligned faces (CelebA framing, or the model's square crop): no detection."),
            face: str = typer.Option("largest", "--face", help="Which faces to edit: largest, all, or a number (0 = leftmost)."),
            raw: bool = typer.Option(False, "--raw", help="Paste the decoder's raw output (colour-matched) instead of the residual edit that keeps the photo's detail."),
            fixed_strength: bool = typer.Option(False, "--fixed-strength", help="Render every edit at its attribute's gain: no auto strength (which pushes an edit harder where the model does not see it land)."),
            literal: bool = typer.Option(False, "--literal", help="Change only the attributes named: no implied attributes (e.g. mustache=1 also sets male=1, no_beard=0, as every training face with a mustache has them)."),
            detector_model: Optional[Path] = typer.Option(None, "--detector-model", help="YuNet face detector .onnx (OpenCV zoo) instead of Haar cascades."),
            max_pixels: float = typer.Option(50.0, "--max-pixels", help="Refuse images over this many megapixels (decompression bombs)."),
            as_json: bool = typer.Option(False, "--json", help="Print the attributes before/after as JSON.")):
        """Edit the face attributes of photos: `faceedit run --image me.jpg --set young=1 --set smiling=0.5`."""
        from faceedit.engine import files
        from faceedit.engine.photo import PhotoEditor, parse_face_choice
        changes = files.parse_sets(set_)
        if not changes:
            raise UserError("nothing to change: give at least one --set NAME=VALUE (see `faceedit attrs` for names)")
        which = parse_face_choice(face)
        inputs, batch = files.collect_inputs(image)
        jobs = files.plan_outputs(inputs, out, batch)
        editor = _load(model, backend, precision, auto_strength=not fixed_strength, implied=not literal)
        _, mask = editor.change_vectors(changes)
        changed = {n for n, m in zip(editor.attribute_names, mask) if m}
        for name, rate, split in editor.model.weak_edits(sorted(changed)):
            typer.secho(f"note: {name} edits landed on {rate:.0%} of the {split} faces this model was measured on; "
                        "expect little change or artefacts", fg="yellow", err=True)
        pe = PhotoEditor(editor, detector_model)
        failures, report = 0, []
        for o in files.run_jobs(pe, jobs, changes, which, aligned, raw, int(max_pixels * 1e6)):
            if o.error is not None:
                failures += 1
                msg = str(o.error).splitlines()[0]
                if not batch:
                    raise UserError(msg)
                typer.secho(f"error: {o.job.src.name}: {msg}", fg="red", err=True)
                continue
            if as_json:
                report.append({"image": str(o.job.src), "out": str(o.written),
                               "faces": [_face_dict(f, True) for f in o.faces]})
                continue
            typer.echo(f"{o.job.src} -> {o.written}")
            for i, f in enumerate(o.faces):
                typer.echo(f" face {i} at {f.box} ({f.how}): attribute probability before -> after")
                for line in _attribute_lines(f.before, f.after, changed):
                    typer.echo(line)
                if f.pushed:
                    typer.echo("  auto strength pushed: " + ", ".join(f"{n} x{m:g}" for n, m in f.pushed.items()))
                if f.implied:
                    typer.echo("  implied (--literal to leave alone): " + ", ".join(f"{n}={v}" for n, v in f.implied.items()))
        if as_json:
            typer.echo(json.dumps(report if batch else (report[0] if report else {}), indent=2))
        if failures:
            typer.secho(f"{failures} of {len(jobs)} images failed", fg="red", err=True)
            raise typer.Exit(1)

    @app.command("attrs")
    @friendly
    def attrs(image: str = typer.Option(..., "--image", help="A photo, a folder of photos, or a glob."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON."),
              model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
              backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
              precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
              aligned: bool = typer.Option(False, "--aligned", help="Inputs are already aligned faces: no detection."),
              face: str = typer.Option("largest", "--face", help="largest, all, or a number (0 = leftmost)."),
              literal: bool = typer.Option(False, "--literal", help="Change only the attributes named: no implied attributes (e.g. mustache=1 also sets male=1, no_beard=0, as every training face with a mustache has them)."),
            detector_model: Optional[Path] = typer.Option(None, "--detector-model", help="YuNet .onnx instead of Haar."),
              max_pixels: float = typer.Option(50.0, "--max-pixels", help="Refuse images over this many megapixels.")):
        """Infer the attributes of the faces in photos."""
        from faceedit.engine import files
        from faceedit.engine.imageio import read_photo
        from faceedit.engine.photo import PhotoEditor, parse_face_choice
        which = parse_face_choice(face)
        inputs, batch = files.collect_inputs(image)
        editor = _load(model, backend, precision)
        pe = PhotoEditor(editor, detector_model)
        report, failures = [], 0
        for src in inputs:
            try:
                photo = read_photo(src, int(max_pixels * 1e6))
                prepared = pe.prepare(photo, which, aligned)
            except (ValueError, OSError) as e:
                if not batch:
                    raise
                failures += 1
                typer.secho(f"error: {src.name}: {str(e).splitlines()[0]}", fg="red", err=True)
                continue
            probs = editor.attributes([c for c, _, _ in prepared])
            faces = []
            for (_, _, info), row in zip(prepared, probs):
                info.before = dict(zip(editor.attribute_names, map(float, row)))
                faces.append(info)
            if as_json:
                report.append({"image": str(src), "faces": [_face_dict(f, False) for f in faces]})
                continue
            typer.echo(f"{src}")
            for i, f in enumerate(faces):
                typer.echo(f" face {i} at {f.box} ({f.how}): attribute probability")
                for line in _attribute_lines(f.before, None, set()):
                    typer.echo(line)
        if as_json:
            typer.echo(json.dumps(report if batch else (report[0] if report else {}), indent=2))
        if failures:
            raise typer.Exit(1)

    @app.command("sample")
    @friendly
    def sample(out: Path = typer.Option(..., "--out", help="Grid image to write (format from its suffix)."),
               set_: List[str] = typer.Option([], "--set", help="NAME=VALUE for every sample; others at the model's defaults."),
               count: int = typer.Option(16, "--count", min=1, max=1024, help="How many faces."),
               seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same faces)."),
               model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
               backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
               precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP)):
        """Draw new faces with chosen attributes into one grid image."""
        from faceedit.engine import files
        from faceedit.engine.grid import grid
        from faceedit.engine.imageio import output_format, write_photo
        changes = files.parse_sets(set_)
        output_format(out)
        editor = _load(model, backend, precision)
        faces = editor.sample(count, changes, seed)
        written = write_photo(out, grid(faces))
        typer.echo(f"wrote {count} samples to {written}")

    @app.command("backends")
    @friendly
    def backends(model: Optional[str] = typer.Option(None, "--model", help="Also load this model with auto and say which backend wins.")):
        """Which inference backends are installed here, and which `--backend auto` picks."""
        from faceedit.engine.backends import availability
        for name, ok, why in availability():
            typer.echo(f"{name:<22} {'available' if ok else 'unavailable: ' + why}")
        if model is not None:
            _load(model, "auto", "auto")
