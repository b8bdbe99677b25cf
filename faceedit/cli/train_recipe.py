"""`faceedit train recipe FILE`: run a recipe (faceedit/train/recipe.py), each stage in its own folder of --out,
through the functions the stages' commands call. Registered on `faceedit train` by train_cmd.py."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.reporting import UserError, friendly


def _datasets(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--dataset takes NAME=FOLDER (e.g. celeba=../shared/celeba), got '{item}'")
        out[name] = Path(folder)
    return out


def _progress(log, every: float = 60.0):
    """One line per train stage every `every` seconds (and at its last step): readable in a log file too."""
    last = {}

    def show(stage, step, total, s):
        now = time.time()
        if now - last.get(stage, 0.0) >= every or step == total:
            last[stage] = now
            log(f"{stage}: step {step}/{total}  G {s['loss_g']:.3g} D {s['loss_d']:.3g} L1 {s['pixel']:.3f} "
                f"edit {s['edit']:.3f} attr {s['attr']:.3f} {s['img_per_s']:.0f} img/s")
    return show


def register(train_app: typer.Typer):
    @train_app.command("recipe")
    @friendly
    def recipe_cmd(recipe: Path = typer.Argument(..., help="A recipe file (TOML): recipes/default-18001.toml is the shipped model's, recipes/tiny.toml a toy one."),
                   out: Path = typer.Option(..., "--out", help="Run folder: one sub-folder per stage (OUT/NAME, with its stage.json once it has finished)."),
                   data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the recipe's data names are: data = [\"celeba\"] is DATA_ROOT/celeba."),
                   dataset: List[str] = typer.Option([], "--dataset", help="NAME=FOLDER: where one data name is, over --data-root (repeat)."),
                   from_stage: Optional[str] = typer.Option(None, "--from-stage", help="Run this stage and every later one afresh (their earlier folders are moved aside, not deleted); earlier stages are left as they are."),
                   dry_run: bool = typer.Option(False, "--dry-run", help="Print the equivalent commands, stage by stage; run nothing.")):
        """Run a recipe: every stage that makes a model (judge, guide, from-model, train, export,
        export-update), in order, each in OUT/NAME. A stage that finished is skipped on a re-run, and a train stage
        that was cut off resumes from its last.pt.

        Example: faceedit train recipe recipes/default-18001.toml --data-root ../shared --out runs/repro --dry-run
        """
        from faceedit.train.recipe import RecipeError, RecipeRun, load_recipe, run_recipe
        try:
            from faceedit.export.recipe_stages import ALL_KINDS
        except ImportError as e:  # the export room needs the [train] extra
            raise UserError(f"recipes need the [train] extra ({e.name} missing): pip install 'faceedit[train]'") from None
        try:
            r = load_recipe(recipe, ALL_KINDS)
            if from_stage is not None:
                r.stage(from_stage)
            if not dry_run:
                from faceedit.cli.train_cmd import _need_torch
                _need_torch()
            run = RecipeRun(r, out, ALL_KINDS, data_root=data_root, datasets=_datasets(dataset), log=typer.echo,
                            progress=_progress(typer.echo), dry_run=dry_run)
            product = run_recipe(run, from_stage)
        except RecipeError as e:
            raise UserError(str(e)) from None
        if not dry_run:
            typer.echo(f"done: {product}")
