"""`faceedit export-update`: change an exported model's editing settings and figures (manifest.json only)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.reporting import UserError, friendly


def register(app: typer.Typer):
    @app.command("export-update")
    @friendly
    def export_update(model: Path = typer.Option(..., "--model", help="An exported model directory (its manifest.json is rewritten atomically)."),
                      auto_strength_from: Optional[Path] = typer.Option(None, "--auto-strength-from", help="A validation sweep of this directory (`faceedit eval --model DIR --split val --intensities 1,1.25,1.5,1.75,2 --json F`): each attribute gets the auto strength top with the best net effect there."),
                      auto_strength: List[str] = typer.Option([], "--auto-strength", help="NAME=TOP: that attribute's auto strength top as given (1, 1.5, ... 4; repeat or separate with commas), e.g. chosen on an earlier sweep; instead of --auto-strength-from."),
                      auto_strength_note: str = typer.Option("", "--auto-strength-note", help="How auto strength was chosen (recorded in the manifest)."),
                      eval_json: Optional[Path] = typer.Option(None, "--eval-json", help="A `faceedit eval` JSON of this directory, with its current settings, whose summary goes into the manifest."),
                      implied_for: Optional[str] = typer.Option(None, "--implied-for", help="Attributes (comma-separated) whose edits also set what every training face with that value has (faceedit.core.implied); '' removes the rules. Needs --implied-data."),
                      implied_data: Optional[Path] = typer.Option(None, "--implied-data", help="The dataset (CelebA layout) whose train-split labels the implied rules come from."),
                      implied_note: str = typer.Option("", "--implied-note", help="How the implied attributes were chosen (recorded in the manifest)."),
                      edit_filter: List[str] = typer.Option([], "--edit-filter", help="The guided filter on the edit's change: RADIUS,EPS for every attribute (e.g. 2,0.001), NAME=RADIUS,EPS for one (repeat), or off. Choose on validation."),
                      edit_filter_note: str = typer.Option("", "--edit-filter-note", help="How the edit filter was chosen (recorded in the manifest)."),
                      tiers_from: Optional[Path] = typer.Option(None, "--tiers-from", help="A validation `faceedit eval` JSON (realism on) of this directory as it is: every attribute's quality tier, stable or experimental, is drawn from it by the rule in docs/eval/tier-rule.txt."),
                      demote: List[str] = typer.Option([], "--demote", help="NAME=WHY: with --tiers-from, rate NAME experimental whatever its figures (a failure seen in the pictures that the figures miss). Repeatable."),
                      settings_from: Optional[Path] = typer.Option(None, "--settings-from", help="Another model directory (the same attributes) whose editing settings (edit gains and auto strength tops, implied rules, edit filter) this one takes first, e.g. to score a candidate as the shipped model edits; the other options may then change them."),
                      samples_from: Optional[Path] = typer.Option(None, "--samples-from", help="A `faceedit eval` JSON whose samples step measured this directory's latent prior file: its samples figures go into the manifest's eval summary (the rest stays), so sampling warns with them.")):
        """Update an exported model's editing settings and figures without re-exporting (only manifest.json changes).

        Example: faceedit export-update --model faceedit/models/default --auto-strength-from val-sweep.json
        """
        if (auto_strength_from is None and eval_json is None and implied_for is None
                and not edit_filter and not auto_strength and tiers_from is None and not demote
                and samples_from is None and settings_from is None):
            raise UserError("nothing to update: give --settings-from, --auto-strength-from or --auto-strength, "
                            "--implied-for, --edit-filter, --tiers-from, --samples-from and/or --eval-json")
        demoted = {}
        for item in demote:
            name, sep, why = item.partition("=")
            if not sep or not name.strip() or not why.strip():
                raise UserError(f"--demote expects NAME=WHY (e.g. --demote 'Bald=a colour wash inside a square'), got {item!r}")
            demoted[name.strip()] = why.strip()
        from faceedit.cli.options import name_numbers
        tops = name_numbers(auto_strength, "--auto-strength") if auto_strength else None
        implied = None if implied_for is None else [a.strip() for a in implied_for.split(",") if a.strip()]
        if implied and implied_data is None:
            raise UserError("--implied-for needs --implied-data: the dataset whose train labels the rules come from")
        try:
            from faceedit.export.update import update_model
        except ImportError as e:  # the export package needs the [train] extra
            raise UserError(f"export-update needs the export stage's packages ({e.name} missing): "
                            "pip install 'faceedit[train]'") from None
        from faceedit.export import ExportError
        from faceedit.core.manifest import ManifestError
        try:
            update_model(model, auto_strength_from, auto_strength_note, eval_json, log=typer.echo,
                         implied_for=implied, implied_data=implied_data, implied_note=implied_note,
                         edit_filter=edit_filter or None, edit_filter_note=edit_filter_note,
                         auto_strength_tops=tops, tiers_from=tiers_from, tiers_demote=demoted,
                         samples_from=samples_from, settings_from=settings_from)
        except (ExportError, ManifestError) as e:
            raise UserError(str(e)) from None
        typer.echo(f"updated {model / 'manifest.json'}")
