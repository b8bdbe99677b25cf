"""`faceedit run`: edit the faces in photos (a thin shell over faceedit.engine; no torch on this path)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from faceedit.core.tiers import experimental_among

from faceedit.cli.reporting import UserError, friendly, one_line
from faceedit.cli.options import (BACKEND_HELP, DETECTOR_HELP, DETECTOR_MODEL_HELP, MAX_PIXELS_HELP, MODEL_HELP, PRECISION_HELP,
                                  attribute_lines, face_dict, load_editor)


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
            unfiltered: bool = typer.Option(False, "--unfiltered", help="Add the model's change as it comes: no guided filter (which keeps the photo's own edges and drops stripes and colour noise the photo does not have)."),
            detector: Optional[str] = typer.Option(None, "--detector", help=DETECTOR_HELP),
            detector_model: Optional[Path] = typer.Option(None, "--detector-model", help=DETECTOR_MODEL_HELP),
            max_pixels: float = typer.Option(50.0, "--max-pixels", help=MAX_PIXELS_HELP),
            as_json: bool = typer.Option(False, "--json", help="Print the attributes before/after as JSON.")):
        """Edit the face attributes of photos: `faceedit run --image me.jpg --set young=1 --set smiling=0.5`."""
        from faceedit.cli import photo_jobs
        from faceedit.engine.request import parse_changes
        from faceedit.engine.photo import PhotoEditor, parse_face_choice
        changes = parse_changes(set_)
        if not changes:
            raise UserError("nothing to change: give at least one --set NAME=VALUE (see `faceedit attrs` for names)")
        which = parse_face_choice(face)
        inputs, batch = photo_jobs.collect_inputs(image)
        jobs = photo_jobs.plan_outputs(inputs, out, batch)
        editor = load_editor(model, backend, precision)
        # resolved once, with this run's options; this object travels down to the decoder
        request = editor.request(changes, raw=raw, auto_strength=not fixed_strength, implied=not literal,
                                 filtered=not unfiltered)
        # the line above describes what the model can do; say which of it this run's options leave out
        off = [step for step, has, on in (("auto strength", editor.auto_strength, request.auto_strength),
                                          ("implied attributes", editor.implied, request.implied),
                                          ("edit filter", editor.edit_filter, request.filtered)) if has and not on]
        if off:
            typer.echo("turned off for this run: " + ", ".join(off), err=True)
        changed = request.changed
        experimental = experimental_among(editor.model.tiers, sorted(changed))
        if experimental:
            typer.secho(f"note: {', '.join(experimental)}: experimental (this model's edits of "
                        f"{'it' if len(experimental) == 1 else 'them'} often fail or do not look like a photo yet; "
                        "see the model card's quality tiers)", fg="yellow", err=True)
        for name, rate, split in editor.model.weak_edits(sorted(changed)):
            typer.secho(f"note: {name} edits landed on {rate:.0%} of the {split} faces this model was measured on; "
                        "expect little change or artefacts", fg="yellow", err=True)
        pe = PhotoEditor(editor, detector_model, detector)
        failures, report = 0, []
        for o in photo_jobs.run_jobs(pe, jobs, request, which, aligned, int(max_pixels * 1e6)):
            if o.error is not None:
                failures += 1
                msg = one_line(o.error)
                if not batch:
                    raise UserError(msg)
                typer.secho(f"error: {o.job.src.name}: {msg}", fg="red", err=True)
                continue
            if as_json:
                report.append({"image": str(o.job.src), "out": str(o.written),
                               "faces": [face_dict(f, True) for f in o.faces]})
                continue
            typer.echo(f"{o.job.src} -> {o.written}")
            for i, f in enumerate(o.faces):
                if f.skipped:
                    typer.echo(f" face {i} at {f.box} skipped: {f.skipped}")
                    continue
                typer.echo(f" face {i} at {f.box} ({f.how}): attribute probability before -> after")
                for line in attribute_lines(f.before, f.after, changed, editor.model.tiers):
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
