"""`faceedit train`, `faceedit train-judge`, `faceedit train-guide`, `faceedit checkpoint-from-model` (need the
[train] extra: torch). `faceedit eval` is in eval_cmd.py."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.errors import UserError, friendly


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
                        epochs: int = typer.Option(6, "--epochs"),
                        arch: str = typer.Option("judge", "--arch", help="judge (the choice judge, judge.onnx) or reporting (the test split's judge, reporting_judge.onnx).")):
        """Train an independent judge classifier that scores edits (train split only).

        Example: faceedit train-judge --data ../shared/celeba --out runs/judge/judge.pt
        """
        _need_torch()
        from faceedit.train.judge import ARCHS, train_judge
        if arch not in ARCHS:
            raise UserError(f"--arch must be one of {', '.join(ARCHS)}, got '{arch}'")
        train_judge(data, out, epochs=epochs, arch=arch)

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
