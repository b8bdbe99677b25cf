"""`faceedit train`, `faceedit train-judge`, `faceedit eval` (need the [train] extra: torch)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.errors import UserError, friendly
from faceedit.core.files import sha256_file


def _need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("this command needs PyTorch: pip install 'faceedit[train]'") from None


def register(app: typer.Typer):
    @app.command("train")
    @friendly
    def train(data: Path = typer.Option(..., "--data", help="CelebA-layout folder."),
              out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, log.csv, samples/."),
              image_size: int = typer.Option(64, "--image-size", help="64 (default) or 128."),
              attrs: Optional[List[str]] = typer.Option(None, "--attrs", help="Attribute names (repeat); default: the 14 standard ones."),
              epochs: int = typer.Option(20, "--epochs"),
              steps: int = typer.Option(0, "--steps", help="Train this many steps instead of --epochs."),
              batch_size: int = typer.Option(64, "--batch-size"),
              resume: bool = typer.Option(False, "--resume", help="Continue exactly from OUT/last.pt."),
              seed: int = typer.Option(0, "--seed"),
              ckpt_every: int = typer.Option(200, "--ckpt-every", help="Steps between last.pt checkpoints."),
              eval_every: int = typer.Option(0, "--eval-every", help="Steps between validations (0: each epoch)."),
              bf16: bool = typer.Option(True, "--bf16/--fp32", help="bf16 autocast (CPUs with AVX512-bf16/AMX, and GPUs)."),
              threads: int = typer.Option(0, "--threads", help="torch threads (0: all cores)."),
              device: str = typer.Option("auto", "--device", help="auto (a CUDA GPU when there is one), cpu or cuda."),
              time_limit: float = typer.Option(0, "--time-limit", help="Stop after this many seconds (validated and checkpointed); 0: no limit.")):
        """Train the CVAE-GAN. Runs under torchrun for DDP (gloo on CPU, nccl on GPU).

        Example: faceedit train --data ../shared/celeba --out runs/celeba64 --epochs 20
        """
        _need_torch()
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from faceedit.core.attributes import DEFAULT_ATTRIBUTES
        from faceedit.train.train import TrainConfig, Trainer
        if image_size not in (64, 128):
            raise UserError("--image-size must be 64 or 128")
        cfg = TrainConfig(data=str(data), out=str(out), image_size=image_size,
                          attributes=list(attrs or DEFAULT_ATTRIBUTES), epochs=epochs, steps=steps,
                          batch_size=batch_size, seed=seed, ckpt_every=ckpt_every, eval_every=eval_every,
                          bf16=bf16, threads=threads, device=device, time_limit=time_limit)
        with Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), TextColumn("{task.fields[stats]}")) as bar:
            trainer = Trainer(cfg, resume=resume, log=bar.console.print)
            task = bar.add_task("train", total=trainer.total_steps, completed=trainer.step, stats="")

            def progress(step, total, s):
                bar.update(task, completed=step, stats=(
                    f"G {s['loss_g']:.3g} D {s['loss_d']:.3g} L1 {s['pixel']:.3f} edit {s['edit']:.3f} "
                    f"attr {s['attr']:.3f} {s['img_per_s']:.0f} img/s"))
            trainer.fit(progress)
        typer.echo(f"done: {out}/last.pt (best by validation: {out}/best.pt)")

    @app.command("train-judge")
    @friendly
    def train_judge_cmd(data: Path = typer.Option(..., "--data"),
                        out: Path = typer.Option(..., "--out", help="Judge checkpoint to write (.pt)."),
                        epochs: int = typer.Option(6, "--epochs")):
        """Train the independent judge classifier that scores edits (train split only).

        Example: faceedit train-judge --data ../shared/celeba --out runs/judge/judge.pt
        """
        _need_torch()
        from faceedit.train.judge import train_judge
        train_judge(data, out, epochs=epochs)

    @app.command("train-guide")
    @friendly
    def train_guide_cmd(data: Path = typer.Option(..., "--data"),
                        out: Path = typer.Option(..., "--out", help="Guide checkpoint to write (.pt)."),
                        steps: int = typer.Option(1000, "--steps"),
                        eps: float = typer.Option(8 / 255, "--eps", help="Adversarial budget per pixel, images in [-1, 1].")):
        """Train the robust guide classifier the edit loss can consult (--guide; train split only).

        Example: faceedit train-guide --data ../shared/celeba --out runs/guide/guide.pt
        """
        _need_torch()
        from faceedit.train.guide import train_guide
        train_guide(data, out, steps=steps, eps=eps)

    @app.command("checkpoint-from-model")
    @friendly
    def checkpoint_from_model_cmd(model: Path = typer.Option(..., "--model", help="An exported model directory (e.g. faceedit/models/default)."),
                                  data: Path = typer.Option(..., "--data", help="Training faces (CelebA layout): BatchNorm statistics come from its train split."),
                                  out: Path = typer.Option(..., "--out", help="Run directory: OUT/last.pt is written, for `train --resume`."),
                                  faces: int = typer.Option(2048, "--faces", help="Training faces the BatchNorm statistics are measured on.")):
        """Rebuild a training checkpoint from an exported model (the shipped weights have no checkpoint in the repo).

        Example: faceedit checkpoint-from-model --model faceedit/models/default --data ../shared/celeba --out runs/ft
        """
        _need_torch()
        from faceedit.core.manifest import ManifestError
        from faceedit.train.from_model import checkpoint_from_model
        if faces < 64:
            raise UserError(f"--faces must be at least 64, got {faces}")
        try:
            checkpoint_from_model(model, data, out, faces=faces, log=typer.echo)
        except (ManifestError, ValueError) as e:
            raise UserError(str(e).splitlines()[0]) from None

    @app.command("eval")
    @friendly
    def eval_cmd(model: Optional[Path] = typer.Option(None, "--model", help="Model directory or training checkpoint (default: the shipped model)."),
                 data: Path = typer.Option(..., "--data"),
                 split: str = typer.Option("test", "--split", help="train, val or test."),
                 judge: Optional[Path] = typer.Option(None, "--judge", help="Judge (.pt or .onnx); default: the model directory's judge.onnx."),
                 json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full results here."),
                 limit: int = typer.Option(0, "--limit", help="Evaluate only the first N faces of the split."),
                 edit_gain: Optional[float] = typer.Option(None, "--edit-gain", help="Decoder gain for set values, every attribute (default: the model directory's gains, 1 for a checkpoint)."),
                 intensities: str = typer.Option("1,2", "--intensities", help="Edit values to score, comma-separated (1 is the headline; must include it).")):
        """Attribute accuracy, edit success (judged), reconstruction PSNR/SSIM, edit disturbance.

        Example: faceedit eval --data ../shared/celeba --split test --json eval.json
        """
        from rich.console import Console
        from rich.table import Table

        from faceedit.models import DEFAULT_MODEL
        from faceedit.train.evaluate import (JudgeModel, attribute_strengths, best_gains, best_tops, evaluate,
                                             open_model, strength_table, summary, write_json)
        model = model or DEFAULT_MODEL
        if judge is None:
            cand = Path(model) / "judge.onnx" if Path(model).is_dir() else None
            if not cand or not cand.exists():
                raise UserError("no judge: pass --judge (a judge .pt from train-judge, or a judge.onnx)")
            judge = cand
        console = Console()
        try:
            levels = tuple(sorted({float(v) for v in intensities.split(",") if v.strip()}))
        except ValueError:
            raise UserError(f"--intensities must be numbers separated by commas, got '{intensities}'") from None
        if 1.0 not in levels or not all(-1 <= v <= 2 for v in levels):
            raise UserError(f"--intensities must include 1 and stay within -1..2, got '{intensities}'")
        under_test = open_model(model)
        if edit_gain is not None:
            if not 0.5 <= edit_gain <= 4:
                raise UserError(f"--edit-gain must be within 0.5..4, got {edit_gain:g}")
            under_test.edit_gains = [edit_gain] * len(under_test.edit_gains)
        res = evaluate(under_test, JudgeModel(judge), data, split, limit=limit, intensities=levels,
                       log=lambda m: console.print(m, style="dim"))
        t = Table(title=f"faceedit eval: {model} on {split} ({res['faces']} faces)")
        auto = res["auto_strength"]
        has_auto = any(v > 1 for v in auto["top_multiplier"].values())
        for c in ("attribute", "inference acc", "edit success", *(["edit (auto strength)"] if has_auto else []),
                  "edit (raw)", "edit x2", "disturbance", "judge acc"):
            t.add_column(c, justify="right" if c != "attribute" else "left")
        e1, e2 = res["edit_success"]["intensity_1"], res["edit_success"].get("intensity_2")
        d1 = res["edit_disturbance"]["intensity_1"]
        for a in res["attributes"]:
            t.add_row(a, f"{res['attribute_accuracy']['per_attribute'][a]:.1%}",
                      f"{e1['residual']['per_attribute'][a]:.1%}",
                      *([f"{auto['edit_success']['per_attribute'][a]:.1%}"] if has_auto else []),
                      f"{e1['raw']['per_attribute'][a]:.1%}",
                      f"{e2['residual']['per_attribute'][a]:.1%}" if e2 else "-",
                      f"{d1['per_attribute'][a]:.1%}",
                      f"{res['judge_accuracy_on_real']['per_attribute'][a]:.1%}")
        t.add_row("[bold]mean (13 standard)", f"{res['attribute_accuracy']['mean_standard13']:.1%}",
                  f"{e1['residual']['mean_standard13']:.1%}",
                  *([f"{auto['edit_success']['mean_standard13']:.1%}"] if has_auto else []),
                  f"{e1['raw']['mean_standard13']:.1%}",
                  f"{e2['residual']['mean_standard13']:.1%}" if e2 else "-",
                  f"{d1['mean_standard13']:.1%}",
                  f"{res['judge_accuracy_on_real']['mean_standard13']:.1%}")
        console.print(t)
        if has_auto:
            console.print(f"auto strength (the default edit): success {auto['edit_success']['mean_standard13']:.1%}, "
                          f"disturbance {auto['edit_disturbance']['mean_standard13']:.1%} (fixed strength: "
                          f"{e1['residual']['mean_standard13']:.1%}, {d1['mean_standard13']:.1%})")
        if res["implied"]["rules"]:
            free = (auto["edit_disturbance_excluding_implied"] if has_auto
                    else res["edit_disturbance_excluding_implied"]["intensity_1"])
            console.print(f"implied attributes ({', '.join(res['implied']['rules'])}): disturbance of the attributes an "
                          f"edit did not set itself {free['mean_standard13']:.1%}")
        console.print(f"reconstruction: PSNR {res['reconstruction']['psnr_db']:.2f} dB, SSIM {res['reconstruction']['ssim']:.3f}")
        rows = strength_table(res)
        if len(rows) > 1:
            uniform = len(set(under_test.edit_gains)) == 1  # else a row's "gain" multiplies each attribute's own
            gain = (lambda g: f"gain {g:g}") if uniform else (lambda g: f"gains x{g:g}")
            console.print("edit strength (13 standard, residual): " + "; ".join(
                f"value {r['intensity']:g} = {gain(r['gain'])}: success {r['edit_success']:.1%}, disturbance "
                f"{r['disturbance']:.1%}, net {r['net']:+.3f}" for r in rows))
            if uniform:
                best = max(rows, key=lambda r: r["net"])
                console.print(f"best net effect at gain {best['gain']:g} (faceedit export --edit-gain {best['gain']:g})")
            per = best_gains(res)
            console.print("best net effect per attribute (faceedit export --edit-gains-from this JSON, if it is a "
                          "validation run): " + ", ".join(f"{a} {g:g}" for a, g in per.items()))
            res["edit_strength"] = rows
            if "auto_strength_sweep" in res:
                console.print("auto strength, best top multiplier per attribute (faceedit export-update "
                              "--auto-strength-from this JSON, if it is a validation run): "
                              + ", ".join(f"{a} {g:g}" for a, g in best_tops(res).items()))
            res["edit_strength_per_attribute"] = {"best_gains": per, "rows": attribute_strengths(res)}
        if json_out:
            res["summary"] = summary(res)
            res["command"] = f"faceedit eval --model {model} --data {data} --split {split} --judge {judge}"
            if Path(model).is_file():  # lets `export --edit-gains-from` check it gets the checkpoint measured
                res["checkpoint_sha256"] = sha256_file(model)
            else:  # and `export-update` that it gets the model directory measured
                from faceedit.core.manifest import decoder_fingerprint  # torch-free: eval of a directory needs no torch
                res["model_decoder_sha256"] = decoder_fingerprint(under_test.manifest)
            write_json(res, json_out)
            console.print(f"wrote {json_out}")
