"""`faceedit sample`: new faces with chosen attributes, in one grid image."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.reporting import friendly
from faceedit.cli.options import BACKEND_HELP, MODEL_HELP, PRECISION_HELP, load_editor


def register(app: typer.Typer):
    @app.command("sample")
    @friendly
    def sample(out: Path = typer.Option(..., "--out", help="Grid image to write (format from its suffix)."),
               set_: List[str] = typer.Option([], "--set", help="NAME=VALUE for every sample; others at the model's defaults (and implied attributes, e.g. mustache=1 draws men)."),
               count: int = typer.Option(16, "--count", min=1, max=1024, help="How many faces."),
               seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same faces; default: a fresh one, printed)."),
               temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature of the latent prior, 0..2 (default: the prior's own; below 1: nearer the faces the model saw most)."),
               model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
               backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
               precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP)):
        """Draw new faces with chosen attributes into one grid image."""
        from faceedit.engine.request import parse_changes
        from faceedit.engine.grid import grid
        from faceedit.engine.imageio import output_format, write_photo
        from faceedit.engine.prior import fresh_seed
        changes = parse_changes(set_)
        output_format(out)
        editor = load_editor(model, backend, precision)
        seed = fresh_seed() if seed is None else seed
        how = editor.sampling(changes, seed, temperature)
        for line in how["warnings"]:
            typer.secho(f"warning: {line}", fg="yellow", err=True)
        faces = editor.sample(count, changes, seed, temperature)
        written = write_photo(out, grid(faces))
        p = how["prior"]
        typer.echo(f"wrote {count} samples to {written} (prior {p['kind']}, temperature {p['temperature']:g}, seed {seed})")
