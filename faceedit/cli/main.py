"""The `faceedit` command. Each room adds its commands from its own small module; imports stay lazy so
`faceedit run` never pays for torch."""
from __future__ import annotations

import typer

from faceedit import __version__
from faceedit.cli import data_cmd

app = typer.Typer(add_completion=False, rich_markup_mode="rich", no_args_is_help=True,
                  help="Infer, reconstruct and edit face attributes with a conditional VAE-GAN.")
app.add_typer(data_cmd.app, name="data")


def _register():
    # Modules that may be missing while a room is being built are skipped, never half-registered.
    import importlib
    for mod in ("train_cmd", "eval_cmd", "export_cmd", "run_cmd", "bench_cmd"):
        try:
            m = importlib.import_module(f"faceedit.cli.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"faceedit.cli.{mod}":
                raise
            continue
        m.register(app)


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    if version:
        typer.echo(__version__)
        raise typer.Exit()


_register()
