"""`python -m faceedit.train`: `faceedit train` for torchrun, with the very same options (TrainConfig's fields).

    torchrun --nproc_per_node=N -m faceedit.train --data DIR --out RUN [--steps N] ...

One process per device, DDP (gloo on CPU, nccl on GPU); rank 0 writes the checkpoints and prints a progress
line every 20 steps.
"""
from __future__ import annotations

import os

import typer

from faceedit.train.config import TrainConfig, config_options


@config_options
def main(cfg: TrainConfig, resume: bool):
    """Train the CVAE-GAN (one process of a torchrun job, or a plain single process)."""
    import torch.distributed as dist

    from faceedit.train.train import Trainer
    rank = int(os.environ.get("RANK", 0))

    def progress(step, total, stats):
        if rank == 0 and (step % 20 == 0 or step == total):
            print(f"step {step}/{total} " + " ".join(f"{k}={v:.3g}" for k, v in stats.items()), flush=True)

    try:
        cfg.check()
        Trainer(cfg, resume=resume).fit(progress)
    except ValueError as e:  # a bad option or data folder: one line, not a traceback
        typer.secho(f"error: {str(e).splitlines()[0]}", fg="red", err=True)
        raise typer.Exit(2) from None
    if dist.is_initialized():
        dist.destroy_process_group()


app = typer.Typer(add_completion=False, rich_markup_mode="rich")
app.command()(main)

if __name__ == "__main__":
    app(prog_name="python -m faceedit.train")
