"""`faceedit data check` and `faceedit data synth`."""
from __future__ import annotations

from pathlib import Path

import typer

from faceedit.cli.reporting import fail, friendly

app = typer.Typer(no_args_is_help=True, help="Validate a CelebA-layout folder or draw synthetic faces.")


def register(parent: typer.Typer):
    parent.add_typer(app, name="data")


@app.command("check")
@friendly
def check(data: Path = typer.Argument(..., help="Folder in CelebA's layout, e.g. ../shared/celeba."),
          images: bool = typer.Option(True, help="Decode every image (slower, finds corrupt files).")):
    """Validate labels, partitions and images; exit non-zero on any fault.

    Example: faceedit data check ../shared/celeba
    """
    from rich.console import Console  # here, not at the top: every other command's start-up would pay for it
    from rich.table import Table

    from faceedit.core.attributes import DEFAULT_ATTRIBUTES
    from faceedit.train.data import IMAGE_DIR, check_images, load_celeba

    ds = load_celeba(data)
    console = Console()
    n = len(ds.names)
    counts = {s: int((ds.partition == p).sum()) for s, p in (("train", 0), ("val", 1), ("test", 2))}
    console.print(f"[bold]{data}[/]: {n:,} images listed, {len(ds.all_attributes)} attributes")
    if ds.identity is not None:
        console.print(f"identities: {len(set(ds.identity.tolist()) - {-1}):,}")
    console.print("splits: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    problems = []
    if ds.identity is not None and (ds.identity == -1).any():
        problems.append(f"{int((ds.identity == -1).sum())} images have no identity line")
    if images:
        sizes, bad = check_images(ds)
        console.print("image sizes (w x h): " + ", ".join(f"{w}x{h}" for w, h in sizes))
        problems += bad
    else:
        missing = [x for x in ds.names if not (ds.root / IMAGE_DIR / x).is_file()]
        problems += [f"image listed but absent: {x}" for x in missing]
    table = Table(title="attribute frequencies (train+val+test)")
    table.add_column("attribute")
    table.add_column("positive", justify="right")
    for a in DEFAULT_ATTRIBUTES:
        if a in ds.all_attributes:
            table.add_row(a, f"{ds.labels[:, ds.all_attributes.index(a)].mean():.1%}")
    console.print(table)
    if counts["train"] == 0:
        problems.append("no training images (partition 0)")
    empty = [k for k, v in counts.items() if v == 0 and k != "train"]
    if empty:  # a train-only folder is valid beside another (faceedit train --data A --data B)
        console.print(f"note: no {' or '.join(empty)} images: usable as an extra training folder after one that has them")
    if problems:
        for p in problems[:20]:
            console.print(f"[red]problem:[/] {p}")
        fail(f"{len(problems)} problem(s) in {data}; first: {problems[0]}")
    console.print("[green]ok[/]")


@app.command("synth")
@friendly
def synth(out: Path = typer.Option(..., "--out", help="Folder to write (CelebA layout)."),
          count: int = typer.Option(1000, "--count", min=10, help="Number of faces."),
          size: int = typer.Option(89, "--size", min=32, help="Image width; height is width*218/178 like CelebA."),
          seed: int = typer.Option(0, "--seed", help="Same seed, same faces.")):
    """Draw synthetic faces with exact labels in CelebA's layout.

    Example: faceedit data synth --out /tmp/synth --count 2000 --seed 1
    """
    from faceedit.train.synth import DRAWN, write_synthetic_celeba

    write_synthetic_celeba(out, count, size, seed)
    typer.echo(f"wrote {count} faces to {out} (labelled attributes: {', '.join(DRAWN)})")
