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
                 two_sample_faces: int = typer.Option(300, "--two-sample-faces", help="Two-sample test: faces drawn (once, at random) from those evaluated; 0 = all."),
                 samples: bool = typer.Option(True, "--samples/--no-samples", help="Measure new faces drawn from the model's latent prior, one per evaluated face with its labels: how often the reporting judge reads each attribute asked for, a two-sample test against the real faces, KID."),
                 edits: bool = typer.Option(True, "--edits/--no-edits", help="Evaluate edits (--no-edits: the samples step alone, e.g. to compare latent priors)."),
                 sample_seed: int = typer.Option(0, "--sample-seed", help="Samples: the seed they are drawn with."),
                 sample_temperature: Optional[float] = typer.Option(None, "--sample-temperature", help="Samples: draw at this temperature instead of the prior's own (0..2)."),
                 card: Optional[Path] = typer.Option(None, "--card", help="Write the model card's \"New faces\" section (markdown) from the samples' figures.")):
        """Attribute accuracy, edit success (judged and realistic), disturbance, reconstruction, realism.

        Example: faceedit eval --data ../shared/celeba --split val --json eval.json --figure edits.png
        (new faces alone: faceedit eval --data ../shared/celeba --split val --no-edits --json samples.json)
        """
        from rich.console import Console

        from faceedit.eval.report import print_report, print_samples, summary, write_json
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
        if not edits and not samples:
            raise UserError("--no-edits with --no-samples leaves nothing to evaluate")
        if figure is not None and not edits:
            raise UserError("--figure shows edits: it cannot go with --no-edits")
        if figure is not None and figure.suffix.lower() != ".png":  # lossless: the figure is read for stripes
            raise UserError(f"--figure must be a .png file, got '{figure.name}'")
        if card is not None and not samples:
            raise UserError("--card writes the samples' figures: it needs --samples")
        if sample_temperature is not None and not 0 < sample_temperature <= 2:
            raise UserError(f"--sample-temperature must be within 0..2 (above 0), got {sample_temperature:g}")
        under_test = _model_under_test(model, edit_gain, edit_filter)
        choice, reporting, scoring, alongside, feature_net = _judges(under_test, split, judge, reporting_judge, judges)
        console = Console()
        cfg = EvalConfig(data, split, limit=limit, intensities=levels, realism=two_sample, folds=folds, epochs=epochs,
                         two_sample_faces=two_sample_faces, alongside=alongside, features=feature_net,
                         keep={} if figure else None, log=lambda m: console.print(m, style="dim"),
                         edits=edits, samples=samples, sample_seed=sample_seed, sample_temperature=sample_temperature)
        res = evaluate(under_test, scoring, cfg)
        if edits:
            print_report(console, res, f"faceedit eval: {model} on {split} ({res['faces']} faces, judge {scoring.name})",
                         uniform_gains=len(set(under_test.edit_gains)) == 1)
        print_samples(console, res)
        command = (f"faceedit eval --model {model} --data {data} --split {split} --judge {choice} "
                   f"--reporting-judge {reporting} --intensities {intensities}"
                   + ("" if two_sample else " --no-two-sample") + (f" --limit {limit}" if limit else "")
                   + "".join(f" --edit-filter {s}" for s in edit_filter) + ("" if edits else " --no-edits")
                   + ("" if samples else " --no-samples") + (f" --sample-seed {sample_seed}" if sample_seed else "")
                   + (f" --sample-temperature {sample_temperature:g}" if sample_temperature is not None else ""))
        if card is not None:
            from faceedit.core.files import atomic_write_text
            from faceedit.eval.report import samples_card
            atomic_write_text(card, samples_card(res, command))
            console.print(f"wrote {card}")
        if figure:
            from faceedit.eval.figure import write_figure
            write_figure(figure, under_test, data, cfg.keep)
            console.print(f"wrote {figure}")
        if json_out:
            res["summary"] = summary(res)
            res["command"] = command
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
