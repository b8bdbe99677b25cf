"""`faceedit train` (the CVAE-GAN; every TrainConfig field is an option) with its subcommands judge, guide,
from-model, bundle and recipe (train_recipe.py). They need the [train] extra: torch. (`faceedit eval` is in
eval_cmd.py.)"""
from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from faceedit.cli.reporting import UserError, friendly
from faceedit.cli.train_recipe import register as register_recipe
from faceedit.train.config import TrainConfig, config_options


def _need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("this command needs PyTorch: pip install 'faceedit[train]'") from None


class _TrainGroup(TyperGroup):
    def resolve_command(self, ctx, args):
        # older recipes wrote switches with a value (--cls-aug true): say so instead of "no such command 'true'"
        if args and args[0].lower() in ("true", "false"):
            raise typer.BadParameter(f"'{args[0]}' after a switch: switches take no value (--cls-aug or "
                                      f"--no-cls-aug, not --cls-aug {args[0]})")
        return super().resolve_command(ctx, args)


train_app = typer.Typer(cls=_TrainGroup, add_completion=False, rich_markup_mode="rich", no_args_is_help=True)
bundle_app = typer.Typer(add_completion=False, rich_markup_mode="rich", no_args_is_help=True,
                         help="Carry training to another machine: the packed data, a slim checkpoint.")
train_app.add_typer(bundle_app, name="bundle")


@train_app.callback(invoke_without_command=True,
                    short_help="Train the CVAE-GAN (every TrainConfig field is an option); judge, guide, from-model, bundle, recipe.")
@friendly
@config_options
def train(ctx: typer.Context, cfg: TrainConfig, resume: bool):
    """Train the CVAE-GAN with the options below (each a field of faceedit/train/config.py), or run one of the
    commands listed at the end: judge, guide, from-model, bundle, recipe.

    Example: faceedit train --data ../shared/celeba --out runs/celeba64 --steps 4000 --eval-every 400

    On several processes (DDP: gloo on CPU, nccl on GPU), the same options:
    torchrun --nproc_per_node=N -m faceedit.train --data ... --out ...
    """
    if ctx.invoked_subcommand is not None:
        return
    cfg.check()
    _need_torch()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from faceedit.train.train import Trainer
    with Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), TextColumn("{task.fields[stats]}")) as bar:
        trainer = Trainer(cfg, resume=resume, log=bar.console.print)
        task = bar.add_task("train", total=trainer.total_steps, completed=trainer.step, stats="")

        def progress(step, total, s):
            bar.update(task, completed=step, stats=(
                f"G {s['loss_g']:.3g} D {s['loss_d']:.3g} L1 {s['pixel']:.3f} edit {s['edit']:.3f} "
                f"attr {s['attr']:.3f} {s['img_per_s']:.0f} img/s"))
        trainer.fit(progress)
    typer.echo(f"done: {cfg.out}/last.pt (best by validation: {cfg.out}/best.pt)")


@train_app.command("judge")
@friendly
def judge_cmd(data: Path = typer.Option(..., "--data", help="CelebA-layout folder (its train split trains, val chooses)."),
              out: Path = typer.Option(..., "--out", help="Judge checkpoint to write (.pt)."),
              epochs: int = typer.Option(6, "--epochs", help="Passes over the train split (used when --steps is 0)."),
              steps: int = typer.Option(0, "--steps", help="Total steps instead of --epochs (0: use --epochs)."),
              batch_size: int = typer.Option(64, "--batch-size"),
              lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (one-cycle schedule)."),
              seed: int = typer.Option(1, "--seed"),
              arch: str = typer.Option("judge", "--arch", help="judge (the choice judge, judge.onnx) or reporting (the test split's judge, reporting_judge.onnx: another architecture, used for reporting only).")):
    """Train the independent judge classifier that scores edits (train split only; the best epoch on val is kept).

    Example: faceedit train judge --data ../shared/celeba --out runs/judge/judge.pt
    """
    _need_torch()
    from faceedit.train.judge import ARCHS, train_judge
    if arch not in ARCHS:
        raise UserError(f"--arch must be one of {', '.join(ARCHS)}, got '{arch}'")
    train_judge(data, out, epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, seed=seed, arch=arch)


@train_app.command("guide")
@friendly
def guide_cmd(data: Path = typer.Option(..., "--data", help="CelebA-layout folder (its train split trains)."),
              out: Path = typer.Option(..., "--out", help="Guide checkpoint to write (.pt)."),
              steps: int = typer.Option(1000, "--steps"),
              eps: float = typer.Option(8 / 255, "--eps", help="Adversarial budget per pixel, images in [-1, 1]; 0: a plain classifier."),
              width: int = typer.Option(48, "--width", help="Channels of the first stage of its trunk."),
              batch_size: int = typer.Option(64, "--batch-size"),
              lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (one-cycle schedule)."),
              seed: int = typer.Option(2, "--seed")):
    """Train the robust guide classifier the edit loss can consult (`faceedit train --guide`; train split only).

    Example: faceedit train guide --data ../shared/celeba --out runs/guide/guide.pt
    """
    _need_torch()
    from faceedit.train.guide import train_guide
    train_guide(data, out, steps=steps, eps=eps, width=width, batch_size=batch_size, lr=lr, seed=seed)


@train_app.command("from-model")
@friendly
def from_model_cmd(model: Path = typer.Option(..., "--model", help="An exported model directory (e.g. faceedit/models/default)."),
                   data: Path = typer.Option(..., "--data", help="Training faces (CelebA layout): BatchNorm statistics come from its train split."),
                   out: Path = typer.Option(..., "--out", help="Run directory: OUT/last.pt is written, for `faceedit train --resume`."),
                   faces: int = typer.Option(2048, "--faces", help="Training faces the BatchNorm statistics are measured on."),
                   edit_mask: bool = typer.Option(False, "--edit-mask/--no-edit-mask", help="Rebuild as an edit mask model (train --edit-mask): a model without a mask gets one that starts at ~0.95 everywhere (the full-face edit).")):
    """Rebuild a training checkpoint from an exported model (the shipped weights have no checkpoint in the repo).

    Example: faceedit train from-model --model faceedit/models/default --data ../shared/celeba --out runs/ft
    """
    _need_torch()
    from faceedit.core.manifest import ManifestError
    from faceedit.train.from_model import checkpoint_from_model
    if faces < 64:
        raise UserError(f"--faces must be at least 64, got {faces}")
    try:
        checkpoint_from_model(model, data, out, faces=faces, log=typer.echo, edit_mask=edit_mask)
    except (ManifestError, ValueError) as e:
        raise UserError(str(e).splitlines()[0]) from None


@bundle_app.command("pack-data")
@friendly
def pack_data_cmd(data: Path = typer.Option(..., "--data", help="CelebA-layout folder."),
                  out: Path = typer.Option(..., "--out", help="Bundle folder to write (never commit it: it holds crops of the data)."),
                  image_size: int = typer.Option(64, "--image-size", help="Crop size, as the training will use."),
                  max_val: int = typer.Option(256, "--max-val", help="Validation faces packed (the first N of the val split)."),
                  quality: int = typer.Option(97, "--quality", help="WebP quality, 1-100.")):
    """Pack the train split and the first validation faces as WebP crops with their label files.

    Example: faceedit train bundle pack-data --data ../shared/celeba --out gpu/data
    """
    from faceedit.train.bundle import pack_data
    n = pack_data(data, out, image_size, max_val, quality)
    typer.echo(f"packed {n} faces into {out}")


@bundle_app.command("unpack-data")
@friendly
def unpack_data_cmd(bundle: Path = typer.Option(..., "--bundle", help="A pack-data folder.")):
    """Decode a bundle's crops into the crop cache that training reads (no photos needed).

    Example: faceedit train bundle unpack-data --bundle gpu/data
    """
    from faceedit.train.bundle import unpack_data
    typer.echo(f"crops decoded into {unpack_data(bundle)}")


@bundle_app.command("slim")
@friendly
def slim_cmd(checkpoint: Path = typer.Option(..., "--checkpoint", help="A training checkpoint (.pt)."),
             out: Path = typer.Option(..., "--out", help="Slim checkpoint to write (.pt)."),
             generator_only: bool = typer.Option(False, "--generator-only", help="Leave the discriminator out too (what eval and export need).")):
    """fp16 weights without optimizer state: what a run elsewhere resumes from or sends back.

    Example: faceedit train bundle slim --checkpoint runs/x/best.pt --out gpu/start.pt
    """
    _need_torch()
    from faceedit.train.bundle import slim_checkpoint
    slim_checkpoint(checkpoint, out, generator_only)
    typer.echo(f"wrote {out}")


register_recipe(train_app)


def register(app: typer.Typer):
    app.add_typer(train_app, name="train")
