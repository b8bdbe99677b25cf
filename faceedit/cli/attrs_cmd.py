"""`faceedit attrs`: the attributes the model reads in the faces of photos."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from faceedit.cli.reporting import friendly, one_line
from faceedit.cli.options import (BACKEND_HELP, DETECTOR_HELP, DETECTOR_MODEL_HELP, MAX_PIXELS_HELP, MODEL_HELP, PRECISION_HELP,
                                  attribute_lines, face_dict, load_editor)


def register(app: typer.Typer):
    @app.command("attrs")
    @friendly
    def attrs(image: str = typer.Option(..., "--image", help="A photo, a folder of photos, or a glob."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON."),
              model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
              backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
              precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
              aligned: bool = typer.Option(False, "--aligned", help="Inputs are already aligned faces: no detection."),
              face: str = typer.Option("largest", "--face", help="largest, all, or a number (0 = leftmost)."),
              detector: Optional[str] = typer.Option(None, "--detector", help=DETECTOR_HELP),
              detector_model: Optional[Path] = typer.Option(None, "--detector-model", help=DETECTOR_MODEL_HELP),
              max_pixels: float = typer.Option(50.0, "--max-pixels", help=MAX_PIXELS_HELP)):
        """Infer the attributes of the faces in photos."""
        from faceedit.cli.photo_jobs import collect_inputs
        from faceedit.engine.imageio import read_photo
        from faceedit.engine.photo import PhotoEditor, parse_face_choice
        which = parse_face_choice(face)
        inputs, batch = collect_inputs(image)
        editor = load_editor(model, backend, precision)
        pe = PhotoEditor(editor, detector_model, detector)
        report, failures = [], 0
        for src in inputs:
            try:
                photo = read_photo(src, int(max_pixels * 1e6))
                prepared = pe.prepare(photo, which, aligned)
            except (ValueError, OSError) as e:
                if not batch:
                    raise
                failures += 1
                typer.secho(f"error: {src.name}: {one_line(e)}", fg="red", err=True)
                continue
            editable = [j for j in prepared if j.editable]  # the others: found, too small to read
            probs = editor.attributes([j.crop for j in editable]) if editable else []
            for j, p in zip(editable, probs):
                j.face.before = dict(zip(editor.attribute_names, map(float, p)))
            faces = [j.face for j in prepared]
            if as_json:
                report.append({"image": str(src), "faces": [face_dict(f, False) for f in faces],
                               "edit_tiers": dict(editor.model.tiers)})
                continue
            typer.echo(f"{src}")
            for i, f in enumerate(faces):
                if f.skipped:
                    typer.echo(f" face {i} at {f.box} skipped: {f.skipped}")
                    continue
                typer.echo(f" face {i} at {f.box} ({f.how}): attribute probability")
                for line in attribute_lines(f.before, None, set(), editor.model.tiers):
                    typer.echo(line)
        if as_json:
            typer.echo(json.dumps(report if batch else (report[0] if report else {}), indent=2))
        if failures:
            raise typer.Exit(1)
