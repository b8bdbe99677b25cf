"""`faceedit export-judge`: a judge checkpoint -> its ONNX graph in a judge set, what `faceedit eval` scores
edits with (never part of a model directory). Needs the [train] extra (torch, onnx)."""
from __future__ import annotations

from pathlib import Path

import typer

from faceedit.cli.reporting import UserError, friendly


def register(app: typer.Typer):
    @app.command("export-judge")
    @friendly
    def export_judge(checkpoint: Path = typer.Option(..., "--checkpoint", help="A judge checkpoint from `faceedit train judge` (--arch judge or reporting)."),
                     out: Path = typer.Option(..., "--out", help="The judge set to write into (a folder; made if need be): evaluation/judges for the repository's own.")):
        """Export a judge into a judge set: a choice judge as judge.onnx, a reporting judge as reporting_judge.onnx,
        listed with its sha256 in the set's judges.json (the other judge's entry kept).

        Example: faceedit export-judge --checkpoint runs/judge/judge.pt --out evaluation/judges
        """
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UserError("export-judge needs PyTorch: pip install 'faceedit[train]'") from None
        from faceedit.core.judge_set import JudgeSetError
        from faceedit.export.judges import add_judge
        from faceedit.export.onnx_graphs import ExportError
        if not checkpoint.is_file():
            raise UserError(f"judge checkpoint not found: {checkpoint}")
        try:
            add_judge(out, checkpoint, log=typer.echo)
        except (ExportError, JudgeSetError) as e:
            raise UserError(str(e)) from None
