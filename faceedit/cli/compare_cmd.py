"""`faceedit compare`: the same faces edited by several models, one row per model (faceedit/eval/compare.py)."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from faceedit.cli.reporting import UserError, friendly


def register(app: typer.Typer):
    @app.command("compare")
    @friendly
    def compare(model: List[Path] = typer.Option(..., "--model", help="Model directory or training checkpoint; repeat for each model (the first one's reading picks each edit's direction)."),
                data: Path = typer.Option(..., "--data", help="A CelebA-layout data folder."),
                out: Path = typer.Option(..., "--out", help="The sheet to write (.png)."),
                split: str = typer.Option("val", "--split", help="train, val or test."),
                start: int = typer.Option(0, "--start", min=0, help="The split's first face shown (0-based)."),
                count: int = typer.Option(12, "--count", min=1, max=200, help="How many faces."),
                tile: int = typer.Option(96, "--tile", min=32, max=256, help="Pixels per shown crop.")):
        """The same faces edited by each model: per face, one row per model, every attribute flipped.

        Example: faceedit compare --model faceedit/models/default --model models/mine --data ../shared/celeba
        --split val --start 100 --count 20 --out sheet.png
        """
        if out.suffix.lower() != ".png":
            raise UserError(f"--out must be a .png file, got '{out.name}'")
        from faceedit.eval.compare import write_sheet
        from faceedit.eval.subject import open_model
        models = [open_model(m) for m in model]      # a missing model or bad data: one line (friendly)
        labels = [_label(m) for m in model]
        n = write_sheet(out, models, labels, data, split, start, count, tile)
        typer.echo(f"wrote {out}: {n} {split} faces from {start}, rows per face: {', '.join(labels)}")


def _label(path: Path) -> str:
    """A model's row label: its folder (or checkpoint) name with the one above it, e.g. whole/model-24503ema."""
    p = Path(path).resolve()
    return f"{p.parent.name}/{p.name}"
