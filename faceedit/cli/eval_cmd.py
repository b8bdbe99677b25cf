"""`faceedit eval`: the CLI front end of faceedit/eval (figures, realism, both judges)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.reporting import UserError, friendly


def register(app: typer.Typer):
    @app.command("eval")
    @friendly
    def eval_cmd(model: Optional[Path] = typer.Option(None, "--model", help="Model directory or training checkpoint (default: the shipped model)."),
                 data: Path = typer.Option(..., "--data"),
                 split: str = typer.Option("test", "--split", help="train, val or test. The test split is read by the reporting judge, the others by the choice judge."),
                 judge: Optional[Path] = typer.Option(None, "--judge", help="Choice judge (.pt or .onnx); default: the judge set's judge.onnx."),
                 reporting_judge: Optional[Path] = typer.Option(None, "--reporting-judge", help="Reporting judge (.pt or .onnx) for the test split and KID; default: the judge set's reporting_judge.onnx."),
                 judges: Optional[Path] = typer.Option(None, "--judges", help="Judge set the default judges come from (a folder with judges.json); default: evaluation/judges/ of this clone (an installed package has none)."),
                 json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full results here."),
                 figure: Optional[Path] = typer.Option(None, "--figure", help="Write a PNG of the median and worst edit per attribute (by artifact ratio)."),
                 limit: int = typer.Option(0, "--limit", help="Evaluate only the first N faces of the split."),
                 edit_gain: Optional[float] = typer.Option(None, "--edit-gain", help="Decoder gain for set values, every attribute (default: the model directory's gains, 1 for a checkpoint)."),
                 edit_filter: List[str] = typer.Option([], "--edit-filter", help="The guided filter on the edit's change instead of the model directory's: RADIUS,EPS for every attribute, NAME=RADIUS,EPS for one (repeat), or off."),
                 intensities: str = typer.Option("1,2", "--intensities", help="Edit values to score, comma-separated (1 is the headline; must include it)."),
                 two_sample: bool = typer.Option(True, "--two-sample/--no-two-sample", help="Run the two-sample test (a small CNN per attribute; needs torch)."),
                 folds: int = typer.Option(3, "--folds", help="Two-sample test: folds, split by identity."),
                 epochs: int = typer.Option(6, "--epochs", help="Two-sample test: epochs of each fold's CNN."),
                 two_sample_faces: int = typer.Option(300, "--two-sample-faces", help="Two-sample test: faces drawn (once, at random) from those evaluated; 0 = all.")):
        """Attribute accuracy, edit success (judged and realistic), disturbance, reconstruction, realism.

        Example: faceedit eval --data ../shared/celeba --split val --json eval.json --figure edits.png
        """
        from rich.console import Console

        from faceedit.eval.report import print_report, summary, write_json
        from faceedit.eval.run import EvalConfig, evaluate
        from faceedit.models import DEFAULT_MODEL
        model = model or DEFAULT_MODEL
        try:
            levels = tuple(sorted({float(v) for v in intensities.split(",") if v.strip()}))
        except ValueError:
            raise UserError(f"--intensities must be numbers separated by commas, got '{intensities}'") from None
        if 1.0 not in levels or not all(-1 <= v <= 2 for v in levels):
            raise UserError(f"--intensities must include 1 and stay within -1..2, got '{intensities}'")
        if edit_gain is not None and not 0.5 <= edit_gain <= 4:
            raise UserError(f"--edit-gain must be within 0.5..4, got {edit_gain:g}")
        if folds < 2 or epochs < 1:
            raise UserError("--folds must be at least 2 and --epochs at least 1")
        under_test = _model_under_test(model, edit_gain, edit_filter)
        choice, reporting, scoring, alongside, feature_net = _judges(under_test, split, judge, reporting_judge, judges)
        console = Console()
        cfg = EvalConfig(data, split, limit=limit, intensities=levels, realism=two_sample, folds=folds, epochs=epochs,
                         two_sample_faces=two_sample_faces, alongside=alongside, features=feature_net,
                         keep={} if figure else None, log=lambda m: console.print(m, style="dim"))
        res = evaluate(under_test, scoring, cfg)
        print_report(console, res, f"faceedit eval: {model} on {split} ({res['faces']} faces, judge {scoring.name})",
                     uniform_gains=len(set(under_test.edit_gains)) == 1)
        if figure:
            from faceedit.eval.figure import write_figure
            write_figure(figure, under_test, data, cfg.keep)
            console.print(f"wrote {figure}")
        if json_out:
            res["summary"] = summary(res)
            res["command"] = (f"faceedit eval --model {model} --data {data} --split {split} --judge {choice} "
                              f"--reporting-judge {reporting} --intensities {intensities}"
                              + ("" if two_sample else " --no-two-sample") + (f" --limit {limit}" if limit else "")
                              + "".join(f" --edit-filter {s}" for s in edit_filter))
            _record_model(res, model, under_test)
            write_json(res, json_out)
            console.print(f"wrote {json_out}")


def _model_under_test(model, edit_gain, edit_filter):
    """The model (directory or checkpoint) as eval drives it, with --edit-gain and --edit-filter applied."""
    from faceedit.eval.subject import open_model
    under_test = open_model(model)
    if edit_gain is not None:
        under_test = under_test.with_gain(edit_gain)
    if edit_filter:
        from faceedit.engine.edit_filter import EditFilter
        try:  # the parser export-update writes manifests with, so an eval measures what it would ship
            f = EditFilter.from_specs(edit_filter, under_test.attributes)
        except ValueError as e:
            raise UserError(f"--edit-filter: {e}") from None
        under_test = under_test.with_filter(f.to_manifest(under_test.attributes) if f else None)
    return under_test


def _judges(under_test, split, judge, reporting_judge, judges):
    """(choice path, reporting path, scoring judge, alongside judge, KID feature judge): the files given, else
    the judge set's (--judges, default: the clone's evaluation/judges/). The test split is scored by the
    reporting judge with the choice judge alongside; other splits by the choice judge."""
    from faceedit.core.judge_set import JudgeSetError, clone_judges_dir
    from faceedit.eval.judge import CHOICE, REPORTING, JudgeModel, set_judge
    folder = judges or clone_judges_dir()
    try:
        choice, why_choice = (judge, "") if judge else set_judge(folder, CHOICE, under_test.attributes, under_test.image_size)
        reporting, why_reporting = ((reporting_judge, "") if reporting_judge else
                                    set_judge(folder, REPORTING, under_test.attributes, under_test.image_size))
    except JudgeSetError as e:
        raise UserError(str(e)) from None
    if split == "test":
        if reporting is None:
            raise UserError("the test split is reported by the reporting judge: pass --reporting-judge (a .pt from "
                            f"`faceedit train judge --arch reporting`, or a reporting_judge.onnx); {why_reporting}")
        scoring, alongside = JudgeModel(reporting), (JudgeModel(choice) if choice else None)
    else:
        if choice is None:
            raise UserError("no judge: pass --judge (a judge .pt from `faceedit train judge`, or a judge.onnx); "
                            + why_choice)
        scoring, alongside = JudgeModel(choice), None
    feature_net = scoring if split == "test" else (JudgeModel(reporting) if reporting else None)
    if feature_net is not None and not feature_net.has_features:
        feature_net = None
    return choice, reporting, scoring, alongside, feature_net


def _record_model(res: dict, model, under_test) -> None:
    """What the JSON measured: the checkpoint's sha256 (`export --edit-gains-from` checks it gets the
    checkpoint measured) or the directory's decoder fingerprint (`export-update` checks the same)."""
    if Path(model).is_file():
        from faceedit.core.files import sha256_file
        res["checkpoint_sha256"] = sha256_file(model)
    else:
        from faceedit.core.manifest import decoder_fingerprint
        res["model_decoder_sha256"] = decoder_fingerprint(under_test.manifest)
