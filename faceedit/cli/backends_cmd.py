"""`faceedit backends`: which inference backends are installed here, and which auto picks."""
from __future__ import annotations

from typing import Optional

import typer

from faceedit.cli.reporting import friendly
from faceedit.cli.options import load_editor


def register(app: typer.Typer):
    @app.command("backends")
    @friendly
    def backends(model: Optional[str] = typer.Option(None, "--model", help="Also load this model with auto and say which backend wins.")):
        """Which inference backends are installed here; with --model, also which one `--backend auto` picks for it."""
        from faceedit.engine.backends import availability
        for name, ok, why in availability():
            typer.echo(f"{name:<22} {'available' if ok else 'unavailable: ' + why}")
        if model is not None:
            load_editor(model, "auto", "auto")
